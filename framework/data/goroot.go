package data

import (
	"fmt"
	"math/rand/v2"

	"liquidlab/framework/corpus"
)

// SourceGoRoot is Options.Source for the Go distribution's source tree
// (package corpus): split by file, not by sequence.
const SourceGoRoot = "goroot"

// DefaultGoRootBytes bounds the goroot training text by default.
const DefaultGoRootBytes = 4 << 20

func loadGoRoot(enc Encoder, o Options) (*Corpus, error) {
	root, err := corpus.Root()
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	g, err := corpus.Open(root, o.ValidFraction)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	maxBytes := o.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultGoRootBytes
	}
	c := &Corpus{SeqLen: o.SeqLen, Source: SourceGoRoot + " (" + g.Src + ")"}
	cut := func(split string, limit int64) ([][]int64, int64, error) {
		text, err := g.Text(split, limit)
		if err != nil {
			return nil, 0, fmt.Errorf("data: %w", err)
		}
		ids, err := enc.Encode(text)
		if err != nil {
			return nil, 0, fmt.Errorf("data: tokenising %s (%s): %w", SourceGoRoot, split, err)
		}
		n := len(ids) / o.SeqLen
		seqs := make([][]int64, n)
		for i := range seqs {
			seqs[i] = ids[i*o.SeqLen : (i+1)*o.SeqLen]
		}
		return seqs, int64(len(text)), nil
	}
	if c.Train, c.TrainBytes, err = cut("train", maxBytes); err != nil {
		return nil, err
	}
	if len(c.Train) == 0 {
		return nil, fmt.Errorf("data: %s: the training text (%d bytes) is shorter than one sequence of %d tokens: raise data.max_bytes", SourceGoRoot, c.TrainBytes, o.SeqLen)
	}
	if o.ValidFraction > 0 {
		if c.Valid, c.ValidBytes, err = cut("valid", max(1, int64(float64(maxBytes)*o.ValidFraction))); err != nil {
			return nil, err
		}
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xda7a))
	rng.Shuffle(len(c.Train), func(i, j int) { c.Train[i], c.Train[j] = c.Train[j], c.Train[i] })
	return c, nil
}
