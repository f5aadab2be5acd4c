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
				for _, n := range []string{"e", "h"} {
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

// TestChunkedBackward checks that the gradient of input "h" on a later chunk
// is that of the carried state: backward passes chained from the last chunk
// to the first (chunk k's gradient of h added to chunk k−1's output h) give
// the unchunked gradients of e, h and every parameter to 1e-3.
func TestChunkedBackward(t *testing.T) {
	ctx := context.Background()
	const H, B = 8, 2
	chunks := []int{5, 3, 7}
	S := 15
	cfg := config(H)
	rng := rand.New(rand.NewPCG(7, 7))
	p := tensor.Map{
		"input.weight":     tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(H)), H, H),
		"input.bias":       tensor.From(stagetest.Randn(rng, H, 0.3), H),
		"recurrent.weight": tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(H)), H, H),
		"tau_raw":          tensor.From(stagetest.Randn(rng, H, 0.5), H),
		"A":                tensor.From(stagetest.Randn(rng, H, 1), H),
	}
	ts := make([]float32, B*S)
	for i := range ts {
		ts[i] = 3 * rng.Float32()
	}
	for b := 0; b < B; b++ {
		slices.Sort(ts[b*S : (b+1)*S])
	}
	e := tensor.From(stagetest.Randn(rng, B*S*H, 1), B, S, H)
	h0 := tensor.From(stagetest.Randn(rng, B*H, 1), B, H)
	dy := tensor.From(stagetest.Randn(rng, B*S*H, 1), B, S, H)
	dh := tensor.From(stagetest.Randn(rng, B*H, 1), B, H)
	// cut returns columns [t0, t0+n) of a [B,S,k…] tensor.
	cut := func(x *tensor.Tensor, t0, n int) *tensor.Tensor {
		k := len(x.Data) / (B * S)
		sh := slices.Clone(x.Shape)
		sh[1] = n
		out := tensor.New(sh...)
		for b := 0; b < B; b++ {
			copy(out.Data[b*n*k:(b+1)*n*k], x.Data[(b*S+t0)*k:(b*S+t0+n)*k])
		}
		return out
	}
	st := New()
	whole, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, NeedGrad: true,
		Inputs: tensor.Map{stage.PortE: e, stage.PortTimestamps: tensor.From(ts, B, S), stage.PortH: h0}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := st.Backward(ctx, whole.Handle, tensor.Map{"y": dy, "h": dh})
	if err != nil {
		t.Fatal(err)
	}
	var handles []uint64
	var state tensor.Map
	t0 := 0
	for _, n := range chunks {
		r, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, State: state, NeedGrad: true,
			Inputs: tensor.Map{stage.PortE: cut(e, t0, n), stage.PortTimestamps: cut(tensor.From(ts, B, S), t0, n), stage.PortH: h0}})
		if err != nil {
			t.Fatal(err)
		}
		handles, state, t0 = append(handles, r.Handle), r.State, t0+n
	}
	de := tensor.New(B, S, H)
	dp := tensor.Map{}
	carry := dh
	for k := len(chunks) - 1; k >= 0; k-- {
		t0 -= chunks[k]
		g, err := st.Backward(ctx, handles[k], tensor.Map{"y": cut(dy, t0, chunks[k]), "h": carry})
		if err != nil {
			t.Fatal(err)
		}
		for b := 0; b < B; b++ {
			copy(de.Data[(b*S+t0)*H:(b*S+t0+chunks[k])*H], g.InputGrads["e"].Data[b*chunks[k]*H:(b+1)*chunks[k]*H])
		}
		for n, v := range g.ParamGrads {
			if dp[n] == nil {
				dp[n] = tensor.New(v.Shape...)
			}
			for i, x := range v.Data {
				dp[n].Data[i] += x
			}
		}
		carry = g.InputGrads["h"]
	}
	if e := stagetest.RelErr(de, want.InputGrads["e"]); e > 1e-3 {
		t.Errorf("gradient of e: chunked vs unchunked relative error %.3g > 1e-3", e)
	}
	if e := stagetest.RelErr(carry, want.InputGrads["h"]); e > 1e-3 {
		t.Errorf("gradient of h: chunked vs unchunked relative error %.3g > 1e-3", e)
	}
	for n, v := range want.ParamGrads {
		if e := stagetest.RelErr(dp[n], v); e > 1e-3 {
			t.Errorf("gradient of %s: chunked vs unchunked relative error %.3g > 1e-3", n, e)
		}
	}
}
