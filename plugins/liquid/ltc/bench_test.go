package ltc

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// benchStage integrates the cell for B=1, H=256 from the seed's initial
// parameters, c ~ N(0,1) and h0 = 0 (as the seed).
func benchStage(b *testing.B, method string, backward bool) {
	const B, H = 1, 256
	r := rand.New(rand.NewPCG(1, 1))
	n := NewAdaptiveLiquidNeuron(H)
	n.InitSeed(r)
	pm := paramMap(n, []float32{0}, H, r)
	in := tensor.Map{"c": tensor.From(stagetest.Randn(r, B*H, 1), B, H), "h": tensor.New(B, H)}
	dh := tensor.From(stagetest.Randn(r, B*H, 1), B, H)
	s := New()
	cfg := testConfig(H, method)
	var nfe float64
	for b.Loop() {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: backward})
		if err != nil {
			b.Fatal(err)
		}
		nfe = res.Stats["nfe"]
		if backward {
			if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"h": dh}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(nfe, "nfe/op")
}

func BenchmarkForwardDopri5(b *testing.B)         { benchStage(b, "dopri5", false) }
func BenchmarkForwardRK4(b *testing.B)            { benchStage(b, "rk4", false) }
func BenchmarkForwardBackwardDopri5(b *testing.B) { benchStage(b, "dopri5", true) }
func BenchmarkForwardBackwardRK4(b *testing.B)    { benchStage(b, "rk4", true) }
