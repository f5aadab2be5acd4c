package tokenizer

import (
	"os"
	"testing"
)

// FuzzLoadFiles: the tokenizer file loaders (vocab.json with merges.txt, and
// tokenizer.json) never panic on any content, and a tokenizer they accept
// encodes and decodes text without panicking.
func FuzzLoadFiles(f *testing.F) {
	f.Add([]byte(`{"a":0,"b":1,"ab":2,"<unk>":3}`), []byte("#version: 0.2\na b\n"))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}`), []byte(""))
	vocab, err1 := os.ReadFile("testdata/default/vocab.json")
	merges, err2 := os.ReadFile("testdata/default/merges.txt")
	if err1 == nil && err2 == nil {
		f.Add(vocab, merges)
	}
	if js, err := os.ReadFile("testdata/hf_default_tokenizer.json"); err == nil {
		f.Add(js, []byte(""))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, load := range []func() (*Tokenizer, error){
			func() (*Tokenizer, error) { return Parse("vocab.json", a, "merges.txt", b) },
			func() (*Tokenizer, error) { return ParseJSON("tokenizer.json", a) },
		} {
			tok, err := load()
			if err != nil {
				continue
			}
			ids := tok.Encode("Hello, world! ab ba\n")
			if _, err := tok.Decode(ids, false); err != nil {
				t.Errorf("decoding what it encoded: %v", err)
			}
		}
	})
}
