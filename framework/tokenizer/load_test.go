package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func tinyFiles(t *testing.T) (dir, vocab, merges string) {
	t.Helper()
	dir = t.TempDir()
	vb, _ := json.Marshal(tinyVocab)
	var m strings.Builder
	m.WriteString("#version: 0.2\n")
	for _, p := range tinyMerges {
		m.WriteString(p[0] + " " + p[1] + "\r\n")
	}
	return dir, writeFile(t, dir, "vocab.json", string(vb)), writeFile(t, dir, "merges.txt", m.String())
}

func TestLoadFilesAndDir(t *testing.T) {
	dir, v, m := tinyFiles(t)
	for name, load := range map[string]func() (*Tokenizer, error){
		"Load":    func() (*Tokenizer, error) { return Load(v, m) },
		"LoadDir": func() (*Tokenizer, error) { return LoadDir(dir) },
	} {
		tok, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := tok.Encode("hello world"); !reflect.DeepEqual(got, []int{0, 17, 18, 6, 11, 2}) {
			t.Errorf("%s: Encode = %v", name, got)
		}
	}
}

// tinyJSON is a tokenizer.json for the tiny vocab; merges is spliced in.
func tinyJSON(merges, post string, prefix bool) string {
	vb, _ := json.Marshal(tinyVocab)
	p := "false"
	if prefix {
		p = "true"
	}
	return `{"version":"1.0","added_tokens":[
	 {"id":0,"content":"<s>","special":true},{"id":1,"content":"<pad>","special":true},
	 {"id":2,"content":"</s>","special":true},{"id":3,"content":"<unk>","special":true},
	 {"id":19,"content":"<mask>","lstrip":true,"special":true},
	 {"id":20,"content":"[NEW]","special":false}],
	"normalizer":null,
	"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":` + p + `,"trim_offsets":true,"use_regex":true},
	"post_processor":` + post + `,
	"model":{"type":"BPE","dropout":null,"unk_token":null,"vocab":` + string(vb) + `,"merges":` + merges + `}}`
}

func TestLoadJSON(t *testing.T) {
	dir := t.TempDir()
	roberta := `{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",0],"trim_offsets":true,"add_prefix_space":false}`
	template := `{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}],
	  "pair":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}},{"Sequence":{"id":"B","type_id":0}}],
	  "special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]},"</s>":{"id":"</s>","ids":[2],"tokens":["</s>"]}}}`
	strs := `["h e","l l","he ll","Ġ w","o r","hell o","Ġw or"]`
	pairs := `[["h","e"],["l","l"],["he","ll"],["Ġ","w"],["o","r"],["hell","o"],["Ġw","or"]]`
	cases := []struct {
		name, merges, post string
		prefix             bool
		in                 string
		want               []int
		pair               []int // EncodePair(in, in) with framing
	}{
		{"strings", strs, roberta, false, "hello world", []int{0, 17, 18, 6, 11, 2}, []int{0, 17, 18, 6, 11, 2, 2, 17, 18, 6, 11, 2}},
		{"pairs", pairs, roberta, false, "hello world", []int{0, 17, 18, 6, 11, 2}, nil},
		{"no post-processor", strs, "null", false, "hello world", []int{17, 18, 6, 11}, []int{17, 18, 6, 11, 17, 18, 6, 11}},
		{"template", pairs, template, false, "hello", []int{0, 17, 2}, []int{17, 2, 17}},
		{"prefix space", strs, "null", true, "world", []int{18, 6, 11}, nil},
		{"added token", strs, "null", false, "hello[NEW] <mask>", []int{17, 20, 19}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, dir, c.name+".json", tinyJSON(c.merges, c.post, c.prefix))
			tok, err := LoadJSON(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Encode(c.in); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
			}
			if c.pair != nil {
				e, _ := tok.EncodePair(c.in, c.in, Options{AddSpecialTokens: true})
				if !reflect.DeepEqual(e.IDs, c.pair) {
					t.Errorf("EncodePair = %v, want %v", e.IDs, c.pair)
				}
			}
		})
	}
	tok, err := LoadJSON(writeFile(t, dir, "x.json", tinyJSON(strs, "null", false)))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := tok.Decode([]int{17, 20, 19}, true); err != nil || s != "hello[NEW]" {
		t.Errorf("Decode skipping specials = %q, %v", s, err)
	}
}

// GPT-2's files have no <s>, </s>, <pad>: no framing, and <|endoftext|> pads.
func TestGPT2StyleVocab(t *testing.T) {
	v := map[string]int{"h": 0, "i": 1, "hi": 2, "<|endoftext|>": 3}
	tok, err := New(v, [][2]string{{"h", "i"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := tok.EncodeWith("hi<|endoftext|>", Options{AddSpecialTokens: true, MaxLength: 4, Padding: PadToMaxLength})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.IDs, []int{2, 3, 3, 3}) || !reflect.DeepEqual(e.AttentionMask, []int{1, 1, 0, 0}) {
		t.Errorf("got %v mask %v", e.IDs, e.AttentionMask)
	}
	if sp := tok.Specials(); sp.BOS != -1 || sp.EOS != -1 || sp.Pad != 3 || sp.Unk != -1 {
		t.Errorf("Specials = %+v", sp)
	}
	// Bytes missing from the vocab are dropped when there is no <unk>.
	if got := tok.Encode("hix"); !reflect.DeepEqual(got, []int{2}) {
		t.Errorf("Encode(hix) = %v", got)
	}
	noPad, _ := New(map[string]int{"a": 0}, nil)
	if _, err := noPad.EncodeWith("a", Options{MaxLength: 3, Padding: PadToMaxLength}); err == nil {
		t.Error("padding without any pad token: no error")
	}
}

func TestLoadErrors(t *testing.T) {
	dir, v, m := tinyFiles(t)
	missing := filepath.Join(dir, "nope.json")
	badJSON := writeFile(t, dir, "bad.json", "{\n  \"a\": 1,\n  \"b\": oops\n}")
	badType := writeFile(t, dir, "type.json", `{"a": "one"}`)
	empty := writeFile(t, dir, "empty.json", `{}`)
	negative := writeFile(t, dir, "neg.json", `{"a": -1}`)
	dupID := writeFile(t, dir, "dup.json", `{"a": 0, "b": 0}`)
	badLine := writeFile(t, dir, "line.txt", "#version: 0.2\nh e\nonly\n")
	unknown := writeFile(t, dir, "unknown.txt", "h e\nq z\n")
	noResult := writeFile(t, dir, "noresult.txt", "h l\n")
	cases := []struct {
		name  string
		load  func() (*Tokenizer, error)
		wants []string
	}{
		{"missing vocab", func() (*Tokenizer, error) { return Load(missing, m) }, []string{"vocab", "nope.json", "no such file"}},
		{"missing merges", func() (*Tokenizer, error) { return Load(v, missing) }, []string{"merges", "nope.json"}},
		{"syntax", func() (*Tokenizer, error) { return Load(badJSON, m) }, []string{"bad.json", "line 3"}},
		{"wrong type", func() (*Tokenizer, error) { return Load(badType, m) }, []string{"type.json", "line 1"}},
		{"empty vocab", func() (*Tokenizer, error) { return Load(empty, m) }, []string{"empty.json", "empty"}},
		{"negative id", func() (*Tokenizer, error) { return Load(negative, m) }, []string{"neg.json", "-1"}},
		{"duplicate id", func() (*Tokenizer, error) { return Load(dupID, m) }, []string{"dup.json", "id 0", `"a"`, `"b"`}},
		{"merges line", func() (*Tokenizer, error) { return Load(v, badLine) }, []string{"line.txt:3", "only"}},
		{"merge not in vocab", func() (*Tokenizer, error) { return Load(v, unknown) }, []string{"unknown.txt", "merge 2", `"q"`}},
		{"merge result not in vocab", func() (*Tokenizer, error) { return Load(v, noResult) }, []string{"noresult.txt", `"hl"`}},
		{"dir without files", func() (*Tokenizer, error) { return LoadDir(t.TempDir()) }, []string{"neither tokenizer.json nor vocab.json"}},
		{"dir missing", func() (*Tokenizer, error) { return LoadDir(missing) }, []string{"nope.json"}},
		{"json missing", func() (*Tokenizer, error) { return LoadJSON(missing) }, []string{"tokenizer.json", "nope.json"}},
		{"json syntax", func() (*Tokenizer, error) { return LoadJSON(badJSON) }, []string{"bad.json", "line 3"}},
		{"json no model", func() (*Tokenizer, error) { return LoadJSON(empty) }, []string{"empty.json", "model"}},
		{"json wordpiece", func() (*Tokenizer, error) {
			return LoadJSON(writeFile(t, dir, "wp.json", `{"model":{"type":"WordPiece","vocab":{"a":0}}}`))
		}, []string{"wp.json", "WordPiece"}},
		{"json normalizer", func() (*Tokenizer, error) {
			return LoadJSON(writeFile(t, dir, "norm.json", strings.Replace(tinyJSON(`[]`, "null", false), `"normalizer":null`, `"normalizer":{"type":"NFC"}`, 1)))
		}, []string{"norm.json", "NFC"}},
		{"json bad merges", func() (*Tokenizer, error) {
			return LoadJSON(writeFile(t, dir, "merges.json", tinyJSON(`["h e", "x"]`, "null", false)))
		}, []string{"merges.json", "model.merges", `"x"`}},
		{"json pre-tokenizer", func() (*Tokenizer, error) {
			return LoadJSON(writeFile(t, dir, "pre.json", strings.Replace(tinyJSON(`[]`, "null", false), `"type":"ByteLevel"`, `"type":"Whitespace"`, 1)))
		}, []string{"pre.json", "Whitespace"}},
		{"json post-processor", func() (*Tokenizer, error) {
			return LoadJSON(writeFile(t, dir, "post.json", tinyJSON(`[]`, `{"type":"RobertaProcessing","sep":["</s>"],"cls":["<s>",0]}`, false)))
		}, []string{"post.json", "sep"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := c.load()
			if err == nil {
				t.Fatalf("no error (tokenizer %v)", tok != nil)
			}
			for _, w := range c.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
