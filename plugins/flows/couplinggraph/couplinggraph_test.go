package couplinggraph

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/flows/coupling"
)

type tcase struct {
	D, L, F, K   int
	share, exact bool
	B, S         int
}

func (c tcase) config() stage.Config {
	return stage.Config{
		Dims: map[string]int{"embedding_dim": c.D, "latent_dim": c.L, "hidden_dim": c.F, "num_flows": c.K},
		Options: map[string]string{coupling.OptSharePar: strconv.FormatBool(c.share),
			coupling.OptExactLogdet: strconv.FormatBool(c.exact)},
	}
}

var cases = []tcase{
	{D: 8, L: 4, F: 5, K: 0, share: true, B: 2, S: 3},
	{D: 8, L: 3, F: 5, K: 1, share: false, exact: true, B: 1, S: 4},
	{D: 8, L: 4, F: 5, K: 3, share: true, B: 2, S: 3},
	{D: 10, L: 7, F: 6, K: 4, share: false, B: 3, S: 2},
	{D: 64, L: 16, F: 32, K: 4, share: true, B: 2, S: 16}, // the quickstart's sizes
}

// TestConformance runs the contract kit (finite differences included).
func TestConformance(t *testing.T) {
	for _, c := range cases[:4] {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			stagetest.Run(t, New(), stagetest.Config{
				Dims: c.config().Dims, Options: c.config().Options, B: c.B, S: c.S, Seed: 5,
				Settings: stagetest.Settings{Step: 3e-4, ATol: 2e-3, RTol: 1e-2, Probes: 3},
			})
		})
	}
}

// params draws every declared parameter off its trivial value (gates in
// (0.1, 0.9), adapters near 1) so every path carries gradient.
func params(t testing.TB, cfg stage.Config, rng *rand.Rand) tensor.Map {
	d, err := coupling.New().Describe(context.Background(), cfg)
	if err != nil {
		panic(err) // the test configurations are valid
	}
	m := tensor.Map{}
	for _, p := range d.Params {
		v := tensor.New(p.Shape...)
		if v.Shape == nil {
			v.Shape = []int{}
		}
		for i := range v.Data {
			switch {
			case len(p.Shape) == 0:
				v.Data[i] = float32(0.1 + 0.8*rng.Float64())
			case len(p.Shape) == 1 && p.Shape[0] == 1:
				v.Data[i] = float32(0.7 + 0.6*rng.Float64())
			default:
				v.Data[i] = float32(rng.NormFloat64() / math.Sqrt(float64(max(1, p.FanIn))))
			}
		}
		m[p.Name] = v
	}
	return m
}

// TestMatchesFused is the oracle check both ways: the graph's outputs match
// the fused stage's to 1e-4 relative, and the fused hand-written backward
// matches gorgonia's symbolic gradient to 1e-3 relative (per tensor, relative
// to its largest element), for every input and parameter, at several shapes.
func TestMatchesFused(t *testing.T) {
	ctx := context.Background()
	for ci, c := range cases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			cfg := c.config()
			rng := rand.New(rand.NewPCG(uint64(ci), 77))
			p := params(t, cfg, rng)
			x := tensor.From(stagetest.Randn(rng, c.B*c.S*c.D, 1), c.B, c.S, c.D)
			req := &stage.ForwardRequest{Params: p, Inputs: tensor.Map{stage.PortX: x}, NeedGrad: true}
			fused, graph := coupling.New(), New()
			rf, err := fused.Forward(ctx, cfg, req)
			if err != nil {
				t.Fatal(err)
			}
			rg, err := graph.Forward(ctx, cfg, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range []string{stage.PortZ, stage.PortLDJ} {
				if !tensor.SameShape(rg.Outputs[o].Shape, rf.Outputs[o].Shape) {
					t.Fatalf("output %s: shape %v, fused %v", o, rg.Outputs[o].Shape, rf.Outputs[o].Shape)
				}
				if e := stagetest.RelErr(rg.Outputs[o], rf.Outputs[o]); e > 1e-4 {
					t.Errorf("output %s: relative error %.3g > 1e-4", o, e)
				}
			}
			dOut := tensor.Map{
				stage.PortZ:   tensor.From(stagetest.Randn(rng, c.B*c.S*c.L, 1), c.B, c.S, c.L),
				stage.PortLDJ: tensor.From(stagetest.Randn(rng, c.B*c.S, 1), c.B, c.S),
			}
			bf, err := fused.Backward(ctx, rf.Handle, dOut)
			if err != nil {
				t.Fatal(err)
			}
			bg, err := graph.Backward(ctx, rg.Handle, dOut)
			if err != nil {
				t.Fatal(err)
			}
			if e := stagetest.RelErr(bf.InputGrads[stage.PortX], bg.InputGrads[stage.PortX]); e > 1e-3 {
				t.Errorf("gradient of x: fused vs symbolic relative error %.3g > 1e-3", e)
			}
			if len(bf.ParamGrads) != len(bg.ParamGrads) {
				t.Errorf("%d parameter gradients, symbolic %d", len(bf.ParamGrads), len(bg.ParamGrads))
			}
			for name, want := range bg.ParamGrads {
				got := bf.ParamGrads[name]
				if got == nil {
					t.Errorf("fused gives no gradient for %s", name)
					continue
				}
				if e := stagetest.RelErr(got, want); e > 1e-3 {
					t.Errorf("gradient of %s: fused vs symbolic relative error %.3g > 1e-3", name, e)
				}
			}
		})
	}
}
