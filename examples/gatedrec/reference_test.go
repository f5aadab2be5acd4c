package gatedrec

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// TestReference compares the graph's outputs with the recurrence written as a
// plain float64 loop.
func TestReference(t *testing.T) {
	H, B, S := 3, 2, 4
	r := rand.New(rand.NewPCG(1, 2))
	st := New()
	cfg := stage.Config{Dims: map[string]int{"hidden_size": H}}
	p := tensor.Map{}
	for _, n := range []string{"gate", "input"} {
		p[n+".weight"] = tensor.From(stagetest.Randn(r, H*H, 0.5), H, H)
		p[n+".bias"] = tensor.From(stagetest.Randn(r, H, 0.5), H)
	}
	e := tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H)
	h0 := tensor.From(stagetest.Randn(r, B*H, 1), B, H)
	in := tensor.Map{"e": e, "h": h0, "timestamps": tensor.New(B, S)}
	res, err := st.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	lin := func(n string, x []float32, o int) float64 {
		s := float64(p[n+".bias"].Data[o])
		for i := 0; i < H; i++ {
			s += float64(p[n+".weight"].Data[o*H+i] * x[i])
		}
		return s
	}
	for b := 0; b < B; b++ {
		h := make([]float64, H)
		for i := range h {
			h[i] = float64(h0.Data[b*H+i])
		}
		for s := 0; s < S; s++ {
			x := e.Data[(b*S+s)*H : (b*S+s+1)*H]
			for o := 0; o < H; o++ {
				g := 1 / (1 + math.Exp(-lin("gate", x, o)))
				c := math.Tanh(lin("input", x, o))
				h[o] = g*h[o] + (1-g)*c
				if got := float64(res.Outputs["y"].Data[(b*S+s)*H+o]); math.Abs(got-h[o]) > 1e-5*(1+math.Abs(h[o])) {
					t.Errorf("y[%d,%d,%d] = %v, want %v", b, s, o, got, h[o])
				}
			}
		}
		for o := 0; o < H; o++ {
			if got := float64(res.Outputs["h"].Data[b*H+o]); math.Abs(got-h[o]) > 1e-5*(1+math.Abs(h[o])) {
				t.Errorf("h[%d,%d] = %v, want %v", b, o, got, h[o])
			}
		}
	}
}
