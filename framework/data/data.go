// Package data turns text into training batches: a built-in generator of
// structured synthetic English (so experiments run with nothing downloaded), or
// text files and directories given by path; the seed's timestamps; labels for the
// seed's copy objective or for next-token prediction.
//
// Everything is seeded: the same seed gives the same corpus, split and batches.
package data

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Encoder turns text into token ids (without <s> … </s> framing).
type Encoder interface {
	Encode(text string) ([]int64, error)
}

// Corpus is a tokenised text split into fixed-length training and validation
// sequences.
type Corpus struct {
	SeqLen       int
	Train, Valid [][]int64
	Source       string // what it was made from, for the results
	// TrainLabels and ValidLabels, when not nil, are the labels of each
	// sequence (a generated task's answers; the ignore id elsewhere), used
	// instead of the objective's labels.
	TrainLabels, ValidLabels [][]int64
	// Bytes is the UTF-8 size of the text the sequences were cut from (0 when
	// not known), so losses can be given in bits per byte.
	TrainBytes, ValidBytes int64
}

// BatchLabels returns the labels of a batch whose row i is sequence picked[i]
// of the training (valid false) or validation split: the corpus's own labels
// when it has them, else Labels(objective, …).
func (c *Corpus) BatchLabels(objective string, valid bool, picked []int, ids []int64, b, s int, ignore int64) ([]int64, error) {
	labs := c.TrainLabels
	if valid {
		labs = c.ValidLabels
	}
	if labs == nil {
		return Labels(objective, ids, b, s, ignore)
	}
	if len(picked) != b {
		return nil, fmt.Errorf("data: %d sequences picked for a batch of %d", len(picked), b)
	}
	out := make([]int64, b*s)
	for i, k := range picked {
		copy(out[i*s:(i+1)*s], labs[k])
	}
	return out, nil
}

// Options control how a corpus is made.
type Options struct {
	Source        string  // "builtin", "goroot" or a path to a .txt file or a directory of them
	SeqLen        int     // tokens per sequence
	ValidFraction float64 // share of sequences held out
	Seed          uint64
	BuiltinTokens int // approximate corpus size of the built-in generator (default 200k tokens)
	// MaxBytes bounds the text of the "goroot" source (training text; the
	// validation text gets MaxBytes·ValidFraction); 0 = DefaultGoRootBytes.
	MaxBytes int64
}

// Load makes a corpus.
func Load(enc Encoder, o Options) (*Corpus, error) {
	if o.SeqLen < 2 {
		return nil, fmt.Errorf("data: seq_len %d: need at least 2", o.SeqLen)
	}
	var text string
	switch o.Source {
	case SourceGoRoot:
		return loadGoRoot(enc, o)
	case "", "builtin":
		n := o.BuiltinTokens
		if n <= 0 {
			n = 200_000
		}
		text = Generate(o.Seed, n)
		o.Source = "builtin"
	default:
		var err error
		if text, err = readText(o.Source); err != nil {
			return nil, err
		}
	}
	ids, err := enc.Encode(text)
	if err != nil {
		return nil, fmt.Errorf("data: tokenising %s: %w", o.Source, err)
	}
	nseq := len(ids) / o.SeqLen
	if nseq < 2 {
		return nil, fmt.Errorf("data: %s gives %d tokens, fewer than two sequences of %d: give more text or a shorter seq_len", o.Source, len(ids), o.SeqLen)
	}
	seqs := make([][]int64, nseq)
	for i := range seqs {
		seqs[i] = ids[i*o.SeqLen : (i+1)*o.SeqLen]
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xda7a))
	rng.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	nv := int(float64(nseq) * o.ValidFraction)
	if o.ValidFraction > 0 && nv == 0 {
		nv = 1
	}
	return &Corpus{SeqLen: o.SeqLen, Train: seqs[nv:], Valid: seqs[:nv], Source: o.Source}, nil
}

func readText(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("data: %w", err)
		}
		return string(b), nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".txt") || strings.HasSuffix(p, ".raw")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("data: %w", err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("data: directory %s has no .txt or .raw files", path)
	}
	sort.Strings(files)
	var sb strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("data: %w", err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// Timestamps fills ts (B×S) by the seed's recipe: per row, ⌈S/10⌉ random
// positions get a uniform (0,1) value, the row is cumulatively summed and
// divided by its last value.
func Timestamps(rng *rand.Rand, ts []float32, b, s int) {
	k := max(1, (s+9)/10)
	for i := 0; i < b; i++ {
		row := ts[i*s : (i+1)*s]
		clear(row)
		for _, p := range rng.Perm(s)[:min(k, s)] {
			row[p] = rng.Float32()
		}
		var acc float32
		for j := range row {
			acc += row[j]
			row[j] = acc
		}
		last := max(row[s-1], 1e-5)
		for j := range row {
			row[j] /= last
		}
	}
}

// Labels returns the labels of a batch: the inputs themselves for the seed's
// "copy" objective, or the next token (the last position ignored) for
// "next_token". ignore is the id that the loss skips.
func Labels(objective string, ids []int64, b, s int, ignore int64) ([]int64, error) {
	switch objective {
	case "", "copy":
		return ids, nil
	case "next_token":
		out := make([]int64, len(ids))
		for i := 0; i < b; i++ {
			copy(out[i*s:(i+1)*s-1], ids[i*s+1:(i+1)*s])
			out[(i+1)*s-1] = ignore
		}
		return out, nil
	}
	return nil, fmt.Errorf("data: unknown objective %q (copy, next_token)", objective)
}
