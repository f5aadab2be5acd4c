package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// TrainOptions configure Train.
type TrainOptions struct {
	// VocabSize is the size of the result, special tokens included.
	VocabSize int
	// MinFrequency stops training when the best pair occurs fewer times
	// (default 2).
	MinFrequency int
}

// Trained is a learned vocabulary in the layout of vocab.json and merges.txt.
type Trained struct {
	Vocab  map[string]int
	Merges [][2]string
}

// Train learns a byte-level BPE from texts with GPT-2's pre-tokenisation. The
// vocabulary is BART's: <s>=0, <pad>=1, </s>=2, <unk>=3, the 256 byte tokens
// in GPT-2's order, the merges in the order learned, and <mask> last. Each
// step merges the most frequent adjacent pair; ties go to the pair whose
// (left, right) byte-level spelling sorts first, so training is deterministic.
func Train(texts []string, opt TrainOptions) (*Trained, error) {
	const fixed = 4 + 256 + 1
	if opt.VocabSize < fixed {
		return nil, fmt.Errorf("tokenizer: train: vocab size %d is below the %d special and byte tokens", opt.VocabSize, fixed)
	}
	if opt.MinFrequency <= 0 {
		opt.MinFrequency = 2
	}
	vocab := map[string]int{BOSToken: 0, PadToken: 1, EOSToken: 2, UnkToken: 3}
	var names []string // symbol id → byte-level spelling
	symOf := map[string]int32{}
	for _, b := range byteOrder {
		s := byteString[b]
		vocab[s] = len(vocab)
		symOf[s] = int32(len(names))
		names = append(names, s)
	}

	// Distinct words with their counts, as symbol sequences.
	counts := map[string]int{}
	for _, text := range texts {
		for i := 0; i < len(text); {
			j := nextPiece(text, i)
			counts[text[i:j]]++
			i = j
		}
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	words := make([][]int32, len(keys))
	freq := make([]int, len(keys))
	for i, w := range keys {
		freq[i] = counts[w]
		words[i] = make([]int32, len(w))
		for k := 0; k < len(w); k++ {
			words[i][k] = symOf[byteString[w[k]]]
		}
	}

	pairCount := map[uint64]int{}
	where := map[uint64]map[int]struct{}{}
	addPairs := func(wi int, sign int) {
		w := words[wi]
		for k := 0; k+1 < len(w); k++ {
			key := pairKey(w[k], w[k+1])
			pairCount[key] += sign * freq[wi]
			if sign > 0 {
				if where[key] == nil {
					where[key] = map[int]struct{}{}
				}
				where[key][wi] = struct{}{}
			}
		}
	}
	for wi := range words {
		addPairs(wi, 1)
	}

	var merges [][2]string
	for len(vocab) < opt.VocabSize-1 {
		var best uint64
		bestN := 0
		for key, n := range pairCount {
			if n > bestN || (n == bestN && n > 0 && pairLess(names, key, best)) {
				best, bestN = key, n
			}
		}
		if bestN < opt.MinFrequency {
			break
		}
		a, b := int32(best>>32), int32(uint32(best))
		merged := names[a] + names[b]
		if isReserved(merged) {
			// A merge spelling "<s>" would give that text the special id.
			delete(pairCount, best)
			continue
		}
		c, known := symOf[merged]
		if !known {
			c = int32(len(names))
			symOf[merged] = c
			names = append(names, merged)
		}
		// Two different pairs can spell the same token ("a"+"bc", "ab"+"c"):
		// both merges are kept and lead to one id.
		if _, in := vocab[merged]; !in {
			vocab[merged] = len(vocab)
		}
		merges = append(merges, [2]string{names[a], names[b]})
		affected := make([]int, 0, len(where[best]))
		for wi := range where[best] {
			affected = append(affected, wi)
		}
		sort.Ints(affected)
		for _, wi := range affected {
			addPairs(wi, -1)
			w := words[wi]
			out := w[:0]
			for k := 0; k < len(w); {
				if k+1 < len(w) && w[k] == a && w[k+1] == b {
					out = append(out, c)
					k += 2
				} else {
					out = append(out, w[k])
					k++
				}
			}
			words[wi] = out
			addPairs(wi, 1)
		}
		for key, n := range pairCount {
			if n == 0 {
				delete(pairCount, key)
				delete(where, key)
			}
		}
		delete(pairCount, best)
		delete(where, best)
	}
	vocab[MaskToken] = len(vocab)
	return &Trained{Vocab: vocab, Merges: merges}, nil
}

func isReserved(s string) bool {
	switch s {
	case BOSToken, PadToken, EOSToken, UnkToken, MaskToken, EndOfTextToken:
		return true
	}
	return false
}

func pairLess(names []string, x, y uint64) bool {
	xa, xb := names[int32(x>>32)], names[int32(uint32(x))]
	ya, yb := names[int32(y>>32)], names[int32(uint32(y))]
	if xa != ya {
		return xa < ya
	}
	return xb < yb
}

// VocabJSON renders the vocabulary as vocab.json, one token per line in id
// order.
func (tr *Trained) VocabJSON() []byte {
	var buf bytes.Buffer
	buf.WriteString("{")
	for i, tok := range sortedVocab(tr.Vocab) {
		if i > 0 {
			buf.WriteString(",")
		}
		var k bytes.Buffer
		enc := json.NewEncoder(&k)
		enc.SetEscapeHTML(false) // keep "<s>" readable, as Hugging Face files do
		_ = enc.Encode(tok)
		fmt.Fprintf(&buf, "\n  %s: %d", bytes.TrimRight(k.Bytes(), "\n"), tr.Vocab[tok])
	}
	buf.WriteString("\n}\n")
	return buf.Bytes()
}

// MergesTxt renders the merges as merges.txt with its "#version" header.
func (tr *Trained) MergesTxt() []byte {
	var buf bytes.Buffer
	buf.WriteString("#version: 0.2\n")
	for _, m := range tr.Merges {
		buf.WriteString(m[0] + " " + m[1] + "\n")
	}
	return buf.Bytes()
}

// WriteFiles writes dir/vocab.json and dir/merges.txt.
func (tr *Trained) WriteFiles(dir string) error {
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), tr.VocabJSON(), 0o644); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "merges.txt"), tr.MergesTxt(), 0o644); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}

// Tokenizer builds the tokenizer the trained files describe.
func (tr *Trained) Tokenizer() (*Tokenizer, error) { return New(tr.Vocab, tr.Merges) }
