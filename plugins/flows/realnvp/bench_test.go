package realnvp

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// The coupling's benchmark size: N = B·S = 4096 rows, the seed's D = 512,
// F = 128, K = 4, L = 128.
func benchRealNVP(b *testing.B, backward bool) {
	cfg := testConfig(512, 128, 128, 4)
	r := rand.New(rand.NewPCG(11, 11))
	p := testParams(b, r, cfg, 0.05)
	x := tensor.From(randn(r, 4096*512, 1), 1, 4096, 512)
	og := tensor.Map{"z": tensor.From(randn(r, 4096*128, 1), 1, 4096, 128), "ldj": tensor.From(randn(r, 4096, 1), 1, 4096)}
	s, ctx := New(), context.Background()
	for b.Loop() {
		res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: tensor.Map{"x": x}, NeedGrad: backward})
		if err != nil {
			b.Fatal(err)
		}
		if backward {
			if _, err := s.Backward(ctx, res.Handle, og); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4096, "ns/row")
}

func BenchmarkForward(b *testing.B)         { benchRealNVP(b, false) }
func BenchmarkForwardBackward(b *testing.B) { benchRealNVP(b, true) }
