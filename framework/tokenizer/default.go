package tokenizer

import (
	_ "embed"
	"fmt"
	"sync"
)

//go:embed testdata/default/vocab.json
var defaultVocab []byte

//go:embed testdata/default/merges.txt
var defaultMerges []byte

// DefaultVocabSize is the size of the built-in vocabulary.
const DefaultVocabSize = 2000

var defaultTok = sync.OnceValues(func() (*Tokenizer, error) {
	return Parse("testdata/default/vocab.json (embedded)", defaultVocab, "testdata/default/merges.txt (embedded)", defaultMerges)
})

// Default returns the built-in tokenizer: a DefaultVocabSize-token byte-level
// BPE with BART's special tokens, trained on testdata/corpus.txt and embedded
// in the binary, so it needs no files. Experiments that name no tokenizer
// directory use it. The result is shared; it is safe for concurrent use.
func Default() *Tokenizer {
	t, err := defaultTok()
	if err != nil {
		panic(fmt.Sprintf("tokenizer: the embedded default vocabulary is corrupt: %v", err))
	}
	return t
}
