package causalgraph

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/attention/causal"
)

type tcase struct {
	pattern     string
	H, heads, W int
	B           int
	chunks      []int // chunk lengths; one chunk = the whole sequence
}

func (c tcase) config() stage.Config {
	return stage.Config{Dims: map[string]int{"hidden_size": c.H},
		Options: map[string]string{"pattern": c.pattern, "heads": fmt.Sprint(c.heads), "window": fmt.Sprint(c.W)}}
}

func (c tcase) S() int {
	s := 0
	for _, n := range c.chunks {
		s += n
	}
	return s
}

var cases = []tcase{
	{pattern: causal.Window, H: 8, heads: 1, W: 3, B: 2, chunks: []int{7}},
	{pattern: causal.Window, H: 8, heads: 2, W: 4, B: 2, chunks: []int{2, 5, 1, 6}}, // chunks shorter and longer than W
	{pattern: causal.Window, H: 12, heads: 3, W: 16, B: 1, chunks: []int{5, 4, 9}},  // the cache never full
	{pattern: causal.Window, H: 32, heads: 4, W: 8, B: 2, chunks: []int{24, 16}},
	{pattern: causal.Window, H: 64, heads: 2, W: 16, B: 2, chunks: []int{40, 24}}, // the quickstart's hidden size
	{pattern: causal.Full, H: 8, heads: 2, W: 64, B: 2, chunks: []int{3, 6, 1}},
	{pattern: causal.Full, H: 32, heads: 1, W: 64, B: 1, chunks: []int{20, 12}},
	{pattern: causal.Window, H: 4, heads: 1, W: 2, B: 1, chunks: []int{1, 1, 1, 3, 1}}, // token by token, as streaming generation
	// blocked with minBlocks = 3 (chunks of ≥ 3 whole windows): first chunk, full cache, cache not full
	{pattern: causal.Window, H: 8, heads: 2, W: 4, B: 2, chunks: []int{16, 12, 5, 16}},
	{pattern: causal.Window, H: 16, heads: 1, W: 8, B: 3, chunks: []int{3, 24, 32}},
	{pattern: causal.Window, H: 64, heads: 4, W: 16, B: 2, chunks: []int{64, 48}},
	{pattern: causal.Full, H: 4, heads: 2, W: 64, B: 1, chunks: []int{1, 1, 2, 1}},
}

// params draws every parameter non-zero (out.* included), scaled so the
// softmax is neither flat nor one-hot.
func params(t testing.TB, cfg stage.Config, rng *rand.Rand) tensor.Map {
	d, err := causal.New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := tensor.Map{}
	for _, p := range d.Params {
		std := 0.5
		if len(p.Shape) == 2 {
			std = 1.5 / math.Sqrt(float64(p.Shape[1]))
		}
		m[p.Name] = tensor.From(stagetest.Randn(rng, tensor.Numel(p.Shape), std), p.Shape...)
	}
	return m
}

// TestConformance runs the contract kit: finite differences, and chunked =
// unchunked through the carried caches.
func TestConformance(t *testing.T) {
	for _, c := range cases[:3] {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			stagetest.Run(t, New(), stagetest.Config{Dims: c.config().Dims, Options: c.config().Options, B: c.B, S: c.S(), Seed: 4})
		})
	}
	defer func(m int) { minBlocks = m }(minBlocks)
	minBlocks = 3
	blocked := tcase{pattern: causal.Window, H: 8, heads: 2, W: 4}.config() // S = 12: three blocks
	stagetest.Run(t, New(), stagetest.Config{Dims: blocked.Dims, Options: blocked.Options, B: 2, S: 12, Seed: 4})
	// Not full: stagetest reads every −1 of a declared state shape as the batch
	// size, and full's cache grows ([B,n,H]); TestMatchesFused and
	// TestChunkedFull cover it.
}

// TestChunkedFull checks chunked = unchunked for the full pattern's growing
// cache, which stagetest cannot.
func TestChunkedFull(t *testing.T) {
	ctx := context.Background()
	for ci, c := range cases {
		if c.pattern != causal.Full {
			continue
		}
		cfg := c.config()
		rng := rand.New(rand.NewPCG(uint64(ci), 17))
		p := params(t, cfg, rng)
		S := c.S()
		e := tensor.From(stagetest.Randn(rng, c.B*S*c.H, 1), c.B, S, c.H)
		st := New()
		whole, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: tensor.Map{stage.PortE: e}})
		if err != nil {
			t.Fatal(err)
		}
		got := tensor.New(c.B, S, c.H)
		var state tensor.Map
		t0 := 0
		for _, n := range c.chunks {
			part := tensor.New(c.B, n, c.H)
			for b := 0; b < c.B; b++ {
				copy(part.Data[b*n*c.H:(b+1)*n*c.H], e.Data[(b*S+t0)*c.H:(b*S+t0+n)*c.H])
			}
			r, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: tensor.Map{stage.PortE: part}, State: state})
			if err != nil {
				t.Fatal(err)
			}
			for b := 0; b < c.B; b++ {
				copy(got.Data[(b*S+t0)*c.H:(b*S+t0+n)*c.H], r.Outputs["y"].Data[b*n*c.H:(b+1)*n*c.H])
			}
			state, t0 = r.State, t0+n
		}
		if e := stagetest.RelErr(got, whole.Outputs["y"]); e > 1e-5 {
			t.Errorf("%v: chunked y vs unchunked: relative error %.3g > 1e-5", c, e)
		}
	}
}

// TestRefuses checks that the patterns and options not written as a graph
// are refused by Describe with an error that names them.
func TestRefuses(t *testing.T) {
	for _, opt := range [][2]string{{"pattern", causal.Dilated}, {"pattern", causal.Linear}, {"pattern", causal.LSH},
		{"qscale", causal.QScaleLog}, {"pattern", "nope"}, {"heads", "3"}} {
		cfg := stage.Config{Dims: map[string]int{"hidden_size": 8}, Options: map[string]string{opt[0]: opt[1]}}
		_, err := New().Describe(context.Background(), cfg)
		if err == nil {
			t.Errorf("option %s = %s accepted", opt[0], opt[1])
		} else if !strings.Contains(err.Error(), opt[0]) {
			t.Errorf("option %s = %s: error %q does not name the option", opt[0], opt[1], err)
		}
	}
}

// TestMatchesFused is the oracle check both ways, chunk by chunk with the
// state carried: outputs and next state match causal's to 1e-4 relative, and
// causal's hand-written backward matches gorgonia's symbolic gradient of e and
// of every parameter to 1e-3, at several shapes, head counts and chunkings.
func TestMatchesFused(t *testing.T) {
	defer func(m int) { minBlocks = m }(minBlocks)
	for _, minBlocks = range []int{3, minBlocks} { // 3: the blocked path on chunks of ≥ 3 windows
		t.Run(fmt.Sprint("minBlocks=", minBlocks), matchesFused)
	}
}

func matchesFused(t *testing.T) {
	ctx := context.Background()
	for ci, c := range cases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			cfg := c.config()
			rng := rand.New(rand.NewPCG(uint64(ci), 13))
			p := params(t, cfg, rng)
			fused, graph := causal.New(), New()
			var stF, stG tensor.Map
			for k, S := range c.chunks {
				e := tensor.From(stagetest.Randn(rng, c.B*S*c.H, 1), c.B, S, c.H)
				in := tensor.Map{stage.PortE: e}
				rf, err := fused.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: stF, NeedGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				rg, err := graph.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: stG, NeedGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range []string{"y", "c"} {
					if !tensor.SameShape(rg.Outputs[o].Shape, rf.Outputs[o].Shape) {
						t.Fatalf("chunk %d: output %s: shape %v, fused %v", k, o, rg.Outputs[o].Shape, rf.Outputs[o].Shape)
					}
					if e := stagetest.RelErr(rg.Outputs[o], rf.Outputs[o]); e > 1e-4 {
						t.Errorf("chunk %d: output %s: relative error %.3g > 1e-4", k, o, e)
					}
				}
				if len(rg.State) != len(rf.State) {
					t.Errorf("chunk %d: %d state tensors, fused %d", k, len(rg.State), len(rf.State))
				}
				for s, want := range rf.State {
					got := rg.State[s]
					if got == nil || !tensor.SameShape(got.Shape, want.Shape) {
						t.Fatalf("chunk %d: state %s: %v, fused shape %v", k, s, got, want.Shape)
					}
					if e := stagetest.RelErr(got, want); e > 1e-4 {
						t.Errorf("chunk %d: state %s: relative error %.3g > 1e-4", k, s, e)
					}
				}
				dOut := tensor.Map{"y": tensor.From(stagetest.Randn(rng, c.B*S*c.H, 1), c.B, S, c.H),
					"c": tensor.From(stagetest.Randn(rng, c.B*c.H, 1), c.B, c.H)}
				bf, err := fused.Backward(ctx, rf.Handle, dOut)
				if err != nil {
					t.Fatal(err)
				}
				bg, err := graph.Backward(ctx, rg.Handle, dOut)
				if err != nil {
					t.Fatal(err)
				}
				if e := stagetest.RelErr(bf.InputGrads["e"], bg.InputGrads["e"]); e > 1e-3 {
					t.Errorf("chunk %d: gradient of e: fused vs symbolic relative error %.3g > 1e-3", k, e)
				}
				if len(bf.ParamGrads) != len(bg.ParamGrads) {
					t.Errorf("%d parameter gradients, symbolic %d", len(bf.ParamGrads), len(bg.ParamGrads))
				}
				for n, want := range bg.ParamGrads {
					// a key bias's exact gradient is 0 (softmax ignores a shift
					// shared by a row): judge it against the weight's scale
					scale := want
					if n == "key.bias" {
						scale = bg.ParamGrads["key.weight"]
					}
					if e := relErrScaled(bf.ParamGrads[n], want, scale); e > 1e-3 {
						t.Errorf("chunk %d: gradient of %s: fused vs symbolic relative error %.3g > 1e-3", k, n, e)
					}
				}
				stF, stG = rf.State, rg.State
			}
		})
	}
}

// relErrScaled is max|a−b| / max|scale|.
func relErrScaled(a, b, scale *tensor.Tensor) float64 {
	var num, den float64
	for i := range b.Data {
		num = math.Max(num, math.Abs(float64(a.Data[i]-b.Data[i])))
	}
	for _, v := range scale.Data {
		den = math.Max(den, math.Abs(float64(v)))
	}
	return num / math.Max(den, 1e-30)
}
