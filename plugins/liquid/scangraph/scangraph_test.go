package scangraph

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/liquid/scan"
)

func config(H int) stage.Config { return stage.Config{Dims: map[string]int{"hidden_size": H}} }

// TestConformance runs the contract kit: finite differences, and chunked =
// unchunked through the carried h and last_ts.
func TestConformance(t *testing.T) {
	for _, c := range []struct{ H, B, S int }{{4, 2, 7}, {3, 1, 5}, {32, 2, 16}} {
		stagetest.Run(t, New(), stagetest.Config{Dims: config(c.H).Dims, B: c.B, S: c.S, Seed: 9,
			NoGrad: []string{stage.PortTimestamps}})
	}
}

// TestRefusesOtherModes checks that the modes not written as a graph are
// refused by Describe.
func TestRefusesOtherModes(t *testing.T) {
	for _, opt := range [][2]string{{"method", "rk4"}, {"dt_mode", scan.ModeConstant}} {
		cfg := config(4)
		cfg.Options = map[string]string{opt[0]: opt[1]}
		if _, err := New().Describe(context.Background(), cfg); err == nil {
			t.Errorf("option %s = %s accepted", opt[0], opt[1])
		}
	}
}

// TestMatchesFused is the oracle check both ways at several shapes, on a first
// chunk and on a second chunk carrying the state: outputs and next state match
// the fused scan to 1e-4 relative, and the fused backward matches the
// symbolic gradient of e, h (first chunk) and every parameter to 1e-3.
func TestMatchesFused(t *testing.T) {
	ctx := context.Background()
	for ci, c := range []struct{ H, B, S int }{{4, 2, 7}, {8, 3, 5}, {32, 2, 16}} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			cfg := config(c.H)
			rng := rand.New(rand.NewPCG(uint64(ci), 5))
			H := c.H
			p := tensor.Map{
				"input.weight":     tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(float64(H))), H, H),
				"input.bias":       tensor.From(stagetest.Randn(rng, H, 0.3), H),
				"recurrent.weight": tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(float64(H))), H, H),
				"tau_raw":          tensor.From(stagetest.Randn(rng, H, 0.5), H),
				"A":                tensor.From(stagetest.Randn(rng, H, 1), H),
			}
			in := func(chunk int) tensor.Map {
				ts := make([]float32, c.B*c.S)
				for i := range ts {
					ts[i] = float32(chunk) + rng.Float32() // increasing across chunks
				}
				for b := 0; b < c.B; b++ {
					slices.Sort(ts[b*c.S : (b+1)*c.S])
				}
				return tensor.Map{
					stage.PortE:          tensor.From(stagetest.Randn(rng, c.B*c.S*H, 1), c.B, c.S, H),
					stage.PortTimestamps: tensor.From(ts, c.B, c.S),
					stage.PortH:          tensor.From(stagetest.Randn(rng, c.B*H, 1), c.B, H),
				}
			}
			fused, graph := scan.New(), New()
			var stF, stG tensor.Map
			for chunk := 0; chunk < 2; chunk++ {
				inputs := in(chunk)
				rf, err := fused.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: inputs, State: stF, NeedGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				rg, err := graph.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: inputs, State: stG, NeedGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range []string{"y", "h"} {
					if e := stagetest.RelErr(rg.Outputs[o], rf.Outputs[o]); e > 1e-4 {
						t.Errorf("chunk %d: output %s: relative error %.3g > 1e-4", chunk, o, e)
					}
				}
				for _, s := range []string{"h", "last_ts"} {
					if e := stagetest.RelErr(rg.State[s], rf.State[s]); e > 1e-4 {
						t.Errorf("chunk %d: state %s: relative error %.3g > 1e-4", chunk, s, e)
					}
				}
				dOut := tensor.Map{"y": tensor.From(stagetest.Randn(rng, c.B*c.S*H, 1), c.B, c.S, H),
					"h": tensor.From(stagetest.Randn(rng, c.B*H, 1), c.B, H)}
				bf, err := fused.Backward(ctx, rf.Handle, dOut)
				if err != nil {
					t.Fatal(err)
				}
				bg, err := graph.Backward(ctx, rg.Handle, dOut)
				if err != nil {
					t.Fatal(err)
				}
				grads := []string{"e"}
				if chunk == 0 {
					grads = append(grads, "h") // later chunks: see the package comment
				}
				for _, n := range grads {
					if e := stagetest.RelErr(bf.InputGrads[n], bg.InputGrads[n]); e > 1e-3 {
						t.Errorf("chunk %d: gradient of input %s: fused vs symbolic relative error %.3g > 1e-3", chunk, n, e)
					}
				}
				for n, want := range bg.ParamGrads {
					if e := stagetest.RelErr(bf.ParamGrads[n], want); e > 1e-3 {
						t.Errorf("chunk %d: gradient of %s: fused vs symbolic relative error %.3g > 1e-3", chunk, n, e)
					}
				}
				if len(bf.ParamGrads) != len(bg.ParamGrads) {
					t.Errorf("%d parameter gradients, symbolic %d", len(bf.ParamGrads), len(bg.ParamGrads))
				}
				stF, stG = rf.State, rg.State
			}
		})
	}
}
