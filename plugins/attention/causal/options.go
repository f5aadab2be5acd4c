package causal

import (
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/stage"
)

// The patterns, values of option "pattern".
const (
	Full    = "full"
	Window  = "window"
	Dilated = "dilated"
	Global  = "global"
	BigBird = "bigbird"
	LSH     = "lsh"
	Linear  = "linear"
)

// Patterns lists the values of option "pattern"; DefaultPattern is today's
// behaviour (one head, a sliding window of DefaultWindow tokens).
var Patterns = []string{Full, Window, Dilated, Global, BigBird, LSH, Linear}

// DefaultPattern is the default of option "pattern".
const DefaultPattern = Window

// optionSpecs are the options Describe declares, with their defaults. Every
// pattern accepts every option and reads only its own (the host fills in all
// defaults).
var optionSpecs = []stage.OptionSpec{
	{Name: "pattern", Type: "string", Default: DefaultPattern, Choices: Patterns,
		Help: "which keys each token attends to: full, window, dilated, global, bigbird, lsh, linear"},
	{Name: "heads", Type: "int", Default: "1", Help: "number of heads; hidden_size must be divisible by it"},
	{Name: "window", Type: "int", Default: strconv.Itoa(DefaultWindow),
		Help: "window, dilated, global: the number of keys of the sliding window (itself and the previous window−1, or every dilation-th)"},
	{Name: "dilation", Type: "int", Default: "1", Help: "dilated: the step between the window's keys"},
	{Name: "global", Type: "int", Default: "4", Help: "global: the first G positions are seen by every later token"},
	{Name: "block", Type: "int", Default: "64", Help: "bigbird: block size in tokens"},
	{Name: "window_blocks", Type: "int", Default: "3", Help: "bigbird: a query block sees its own block and the previous window_blocks−1"},
	{Name: "global_blocks", Type: "int", Default: "1", Help: "bigbird: the first global_blocks blocks are seen by every later block"},
	{Name: "random_blocks", Type: "int", Default: "2", Help: "bigbird: random earlier blocks per query block"},
	{Name: "random_reach", Type: "int", Default: "16", Help: "bigbird: random blocks are drawn from the random_reach blocks before the window (bounds the streaming cache)"},
	{Name: "seed", Type: "int", Default: "0", Help: "bigbird, lsh: seed of the random blocks and of the hash rotations"},
	{Name: "n_hashes", Type: "int", Default: "2", Help: "lsh: rounds of hashing; a token attends to the union of its rounds' candidates"},
	{Name: "buckets", Type: "int", Default: "8", Help: "lsh: buckets per round (even)"},
	{Name: "chunk", Type: "int", Default: "64", Help: "lsh: a token sees its bucket's tokens in its chunk and the previous one, chunks of this many tokens of the bucket"},
	{Name: "qscale", Type: "string", Default: QScaleNone, Choices: []string{QScaleNone, QScaleLog, QScaleLogLen},
		Help: "full, window, dilated, global, bigbird: log multiplies the query of the token at position t (from 0) by ln(t+1), Scalable-Softmax (Nakanishi 2025), so a matching key keeps its weight as the sequence grows; loglen multiplies it by max(1, ln(t+1)/ln(qscale_len)): plain softmax up to the training length, sharper beyond it (log-length scaling, Chiang & Cholak 2022); none: plain softmax"},
	{Name: "qscale_len", Type: "int", Default: "0", Help: "qscale loglen: the length (≥ 2, usually the training sequence length) up to which the queries are left unscaled"},
}

// Values of option "qscale".
const (
	QScaleNone   = "none"
	QScaleLog    = "log"
	QScaleLogLen = "loglen"
)

// options is a parsed stage.Config.
type options struct {
	H, W    int
	pattern string
	heads   int
	d       int // head size H/heads
	dil, G  int
	// bigbird
	block, wblocks, gblocks, rblocks, reach int
	seed                                    uint64
	// lsh
	nHashes, buckets, chunk int
	// qscale "log" (qLen 0): queries scaled by ln(position+1); "loglen"
	// (qLen ≥ 2): by max(1, ln(position+1)/ln(qLen))
	logScale bool
	qLen     int
}

// qscale is the factor of the query at absolute position t under qscale
// "log" or "loglen".
func (o *options) qscale(t int) float32 {
	l := math.Log(float64(t + 1))
	if o.qLen == 0 {
		return float32(l)
	}
	if t+1 <= o.qLen {
		return 1
	}
	return float32(l / math.Log(float64(o.qLen)))
}

func parseOptions(cfg stage.Config) (options, error) {
	var o options
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("causal: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("causal: hidden_size must be positive, got %d", h)
	}
	o.H = h
	for name := range cfg.Options {
		known := false
		for _, sp := range optionSpecs {
			known = known || sp.Name == name
		}
		if !known {
			return o, fmt.Errorf("causal: unknown option %q", name)
		}
	}
	o.pattern = cfg.Options["pattern"]
	if o.pattern == "" {
		o.pattern = DefaultPattern
	}
	ok := false
	for _, p := range Patterns {
		ok = ok || p == o.pattern
	}
	if !ok {
		return o, fmt.Errorf("causal: option pattern = %q, want one of %v", o.pattern, Patterns)
	}
	ints := []struct {
		name   string
		dst    *int
		lo, hi int
	}{
		{"heads", &o.heads, 1, h},
		{"window", &o.W, 1, MaxWindow},
		{"dilation", &o.dil, 1, MaxWindow},
		{"global", &o.G, 0, MaxWindow},
		{"block", &o.block, 1, MaxWindow},
		{"window_blocks", &o.wblocks, 1, MaxWindow},
		{"global_blocks", &o.gblocks, 0, MaxWindow},
		{"random_blocks", &o.rblocks, 0, MaxWindow},
		{"random_reach", &o.reach, 0, MaxWindow},
		{"n_hashes", &o.nHashes, 1, 64},
		{"buckets", &o.buckets, 2, 1 << 12},
		{"chunk", &o.chunk, 1, MaxWindow},
		{"qscale_len", &o.qLen, 0, 1 << 30},
	}
	for _, it := range ints {
		v := cfg.Options[it.name]
		if v == "" {
			for _, sp := range optionSpecs {
				if sp.Name == it.name {
					v = sp.Default
				}
			}
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("causal: option %s = %q is not an integer", it.name, v)
		}
		if n < it.lo || n > it.hi {
			return o, fmt.Errorf("causal: option %s = %d, want %d..%d", it.name, n, it.lo, it.hi)
		}
		*it.dst = n
	}
	switch v := cfg.Options["qscale"]; v {
	case "", QScaleNone:
	case QScaleLog, QScaleLogLen:
		if o.pattern == LSH || o.pattern == Linear {
			return o, fmt.Errorf("causal: option qscale = %q applies to the softmax patterns with separate queries (full, window, dilated, global, bigbird), not %s", v, o.pattern)
		}
		o.logScale = true
	default:
		return o, fmt.Errorf("causal: option qscale = %q, want %q, %q or %q", v, QScaleNone, QScaleLog, QScaleLogLen)
	}
	switch {
	case cfg.Options["qscale"] == QScaleLogLen && o.qLen < 2:
		return o, fmt.Errorf("causal: option qscale = %q needs qscale_len ≥ 2 (the training length), got %d", QScaleLogLen, o.qLen)
	case cfg.Options["qscale"] != QScaleLogLen && o.qLen != 0:
		return o, fmt.Errorf("causal: option qscale_len = %d applies only with qscale = %q", o.qLen, QScaleLogLen)
	}
	if v := cfg.Options["seed"]; v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("causal: option seed = %q is not an integer", v)
		}
		o.seed = uint64(n)
	}
	if h%o.heads != 0 {
		return o, fmt.Errorf("causal: option heads = %d does not divide hidden_size %d", o.heads, h)
	}
	if o.buckets%2 != 0 {
		return o, fmt.Errorf("causal: option buckets = %d, want an even number (random-rotation hashing takes argmax over [xR, −xR])", o.buckets)
	}
	if o.pattern == Dilated && (o.W-1)*o.dil > MaxWindow {
		return o, fmt.Errorf("causal: options window %d × dilation %d span more than %d positions", o.W, o.dil, MaxWindow)
	}
	if o.pattern == BigBird && (o.wblocks+o.reach+o.gblocks)*o.block > 4*MaxWindow {
		return o, fmt.Errorf("causal: bigbird options block %d × (window_blocks %d + random_reach %d + global_blocks %d) span more than %d positions",
			o.block, o.wblocks, o.reach, o.gblocks, 4*MaxWindow)
	}
	o.d = h / o.heads
	return o, nil
}
