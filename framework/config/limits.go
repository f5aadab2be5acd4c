package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size limits, checked with the other settings (see the package manual, "Size
// limits"). They are far above anything this framework trains on one machine and
// exist so that a typo or a hostile file is refused with a message instead of
// exhausting memory.
const (
	MaxVocabSize   = 1 << 21 // model.vocab_size: 2,097,152 tokens
	MaxDim         = 1 << 16 // model.embedding_dim, latent_dim, hidden_size, hidden_dim: 65,536
	MaxNumFlows    = 1024    // model.num_flows
	MaxSeqLen      = 1 << 20 // data.seq_len: 1,048,576 tokens
	MaxBatch       = 1 << 14 // train.batch: 16,384 sequences
	MaxBatchTokens = 1 << 24 // train.batch × data.seq_len: 16,777,216 tokens a step
	MaxBenchLength = 1 << 24 // each of bench.lengths: 16,777,216 tokens
	MaxBenchBatch  = 1 << 12 // bench.batch: 4,096 sequences
	MaxChunkSize   = 1 << 20 // run.chunk_size: 1,048,576 tokens
	MaxParamBytes  = 8 << 30 // the estimated float32 parameters: 8 GiB

	// DefaultMaxBytes is data.max_bytes unless set: 1 GiB of text.
	DefaultMaxBytes = 1 << 30
)

// atMost refuses v above limit, naming the limit.
func (c *checker) atMost(path string, v, limit int) {
	if v > limit {
		c.bad(path, v, "must be ≤ %d (the limit of this setting)", limit)
	}
}

// ParamEstimate is a lower estimate of the number of float32 parameters of the
// model: the host's own tensors exactly (the embedding, V×D; the output
// projection, V×H + V, its weight left out when tied) and the largest tensors of
// the built-in components (the coupling flows' projection D×D and one flow's two
// nets, 2×F×D; the ODE function's H×L; two H×H matrices each for attention and
// the liquid stage). It is known before any plugin or tensor exists.
func (m Model) ParamEstimate() int64 {
	v, d, l, h, f := int64(m.VocabSize), int64(m.EmbeddingDim), int64(m.LatentDim), int64(m.HiddenSize), int64(m.HiddenDim)
	n := v*d + v + d*d + 2*f*d + h*l + 4*h*h
	if !m.TieOutput {
		n += v * h
	}
	return n
}

// checkSizes refuses settings above their limits, and a model whose estimated
// parameters alone exceed MaxParamBytes.
func (c *checker) checkSizes() {
	e := c.e
	m := e.Model
	c.atMost("model.vocab_size", m.VocabSize, MaxVocabSize)
	c.atMost("model.embedding_dim", m.EmbeddingDim, MaxDim)
	c.atMost("model.latent_dim", m.LatentDim, MaxDim)
	c.atMost("model.hidden_size", m.HiddenSize, MaxDim)
	c.atMost("model.hidden_dim", m.HiddenDim, MaxDim)
	c.atMost("model.num_flows", m.NumFlows, MaxNumFlows)
	c.atMost("data.seq_len", e.Data.SeqLen, MaxSeqLen)
	c.atMost("train.batch", e.Train.Batch, MaxBatch)
	if e.Train.Batch <= MaxBatch && e.Data.SeqLen <= MaxSeqLen && e.Train.Batch*e.Data.SeqLen > MaxBatchTokens {
		c.bad("train.batch", e.Train.Batch, "with data.seq_len = %d a step holds %d tokens, more than the limit of %d; lower one of them",
			e.Data.SeqLen, e.Train.Batch*e.Data.SeqLen, MaxBatchTokens)
	}
	for i, l := range e.Bench.Lengths {
		if l > MaxBenchLength {
			c.bad("bench.lengths", e.Bench.Lengths, "element %d is %d; every length must be ≤ %d (the limit of this setting)", i, l, MaxBenchLength)
			break
		}
	}
	c.atMost("bench.batch", e.Bench.Batch, MaxBenchBatch)
	c.atMost("run.chunk_size", e.Run.ChunkSize, MaxChunkSize)
	if e.Data.MaxBytes < 0 {
		c.bad("data.max_bytes", e.Data.MaxBytes, "must be ≥ 0 (0: the default bound)")
	}

	inRange := m.VocabSize > 0 && m.VocabSize <= MaxVocabSize
	for _, x := range []int{m.EmbeddingDim, m.LatentDim, m.HiddenSize, m.HiddenDim} {
		inRange = inRange && x > 0 && x <= MaxDim
	}
	if bytes := 4 * m.ParamEstimate(); inRange && bytes > MaxParamBytes {
		c.errs = append(c.errs, fmt.Errorf("%s: model: the parameters alone need about %s (vocab_size %d, embedding_dim %d, hidden_size %d, hidden_dim %d, latent_dim %d), more than the limit of %s%s",
			e.File, gib(bytes), m.VocabSize, m.EmbeddingDim, m.HiddenSize, m.HiddenDim, m.LatentDim, gib(MaxParamBytes), e.note))
	}
}

// gib formats a byte count in GiB.
func gib(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// byteUnits are the suffixes ParseBytes accepts, longest first.
var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes reads a memory size such as "8GiB", "512MB", "1.5G" or "1000000"
// (bytes): binary units KiB…TiB and K, M, G, T, decimal units KB…TB. "" is 0
// (no limit). It refuses a negative, non-finite or unknown size, and one above
// 1 EiB.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0, fmt.Errorf("%q is not a memory size > 0 such as \"8GiB\", \"512MB\" or \"1.5G\"", s)
	}
	b := v * float64(mult)
	if b > 1<<60 {
		return 0, fmt.Errorf("%q is more than 1 EiB", s)
	}
	return int64(b), nil
}
