package odefuncgraph

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/ode/odefunc"
)

type tcase struct {
	L, H, B, S int
	method     string
}

func (c tcase) config() stage.Config {
	return stage.Config{Dims: map[string]int{"latent_dim": c.L, "hidden_size": c.H},
		Options: map[string]string{"method": c.method}}
}

var cases = []tcase{
	{3, 4, 2, 3, "euler"}, {4, 4, 1, 4, "midpoint"}, {5, 6, 2, 2, "heun"}, {4, 4, 2, 3, "rk4"},
	{16, 32, 2, 8, "rk4"}, // the quickstart's sizes
}

// TestConformance runs the contract kit (finite differences included).
func TestConformance(t *testing.T) {
	for _, c := range cases[:4] {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			stagetest.Run(t, New(), stagetest.Config{Dims: c.config().Dims, Options: c.config().Options,
				B: c.B, S: c.S, Seed: 7, NoGrad: []string{odefunc.InputTSpan},
				Settings: stagetest.Settings{Step: 3e-4, ATol: 2e-3, RTol: 1e-2, Probes: 3}})
		})
	}
}

// TestRefusesAdaptive checks that the adaptive methods are refused.
func TestRefusesAdaptive(t *testing.T) {
	for _, m := range []string{"dopri5", "bosh3"} {
		if _, err := New().Describe(context.Background(), tcase{4, 4, 1, 1, m}.config()); err == nil {
			t.Errorf("method %q accepted", m)
		}
	}
}

// TestDefaultMethod: without a method option the stage describes itself (a
// config checker asks so before it knows the options) with rk4 as the
// method's default and the fixed-step methods as its choices.
func TestDefaultMethod(t *testing.T) {
	d, err := New().Describe(context.Background(), tcase{4, 4, 1, 1, ""}.config())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range d.Options {
		if o.Name == "method" {
			if o.Default != "rk4" || !slices.Equal(o.Choices, []string{"euler", "midpoint", "heun", "rk4"}) {
				t.Errorf("option method: default %q, choices %v; want rk4 and the fixed-step methods", o.Default, o.Choices)
			}
			return
		}
	}
	t.Error("no option method")
}

// TestMatchesFused is the oracle check both ways: outputs match odefunc to
// 1e-4 relative and odefunc's backward matches the symbolic gradient of z and
// every parameter to 1e-3, for every fixed-step method at several shapes.
func TestMatchesFused(t *testing.T) {
	ctx := context.Background()
	for ci, c := range cases {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			cfg := c.config()
			rng := rand.New(rand.NewPCG(uint64(ci), 13))
			d, err := odefunc.New().Describe(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			p := tensor.Map{}
			for _, ps := range d.Params {
				v := tensor.New(ps.Shape...)
				if v.Shape == nil {
					v.Shape = []int{}
				}
				copy(v.Data, stagetest.Randn(rng, len(v.Data), 0.5))
				if ps.Name == odefunc.ParamLNWeight {
					for i := range v.Data {
						v.Data[i] += 1
					}
				}
				p[ps.Name] = v
			}
			in := tensor.Map{odefunc.InputZ: tensor.From(stagetest.Randn(rng, c.B*c.S*c.L, 1), c.B, c.S, c.L),
				odefunc.InputTSpan: tensor.From([]float32{0, 0.25, 0.5, 0.75, 1}, 5)}
			req := &stage.ForwardRequest{Params: p, Inputs: in, NeedGrad: true}
			fused, graph := odefunc.New(), New()
			rf, err := fused.Forward(ctx, cfg, req)
			if err != nil {
				t.Fatal(err)
			}
			rg, err := graph.Forward(ctx, cfg, req)
			if err != nil {
				t.Fatal(err)
			}
			if e := stagetest.RelErr(rg.Outputs[odefunc.OutputE], rf.Outputs[odefunc.OutputE]); e > 1e-4 {
				t.Errorf("output e: relative error %.3g > 1e-4", e)
			}
			dOut := tensor.Map{odefunc.OutputE: tensor.From(stagetest.Randn(rng, c.B*c.S*c.H, 1), c.B, c.S, c.H)}
			bf, err := fused.Backward(ctx, rf.Handle, dOut)
			if err != nil {
				t.Fatal(err)
			}
			bg, err := graph.Backward(ctx, rg.Handle, dOut)
			if err != nil {
				t.Fatal(err)
			}
			if e := stagetest.RelErr(bf.InputGrads[odefunc.InputZ], bg.InputGrads[odefunc.InputZ]); e > 1e-3 {
				t.Errorf("gradient of z: fused vs symbolic relative error %.3g > 1e-3", e)
			}
			if len(bf.ParamGrads) != len(bg.ParamGrads) {
				t.Errorf("%d parameter gradients, symbolic %d", len(bf.ParamGrads), len(bg.ParamGrads))
			}
			for n, want := range bg.ParamGrads {
				if e := stagetest.RelErr(bf.ParamGrads[n], want); e > 1e-3 {
					t.Errorf("gradient of %s: fused vs symbolic relative error %.3g > 1e-3", n, e)
				}
			}
		})
	}
}
