package adaptive

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// benchAdaptive runs one chunk of B×S tokens at the seed's H = 256 and reports
// ns/token.
func benchAdaptive(b *testing.B, B, S int, backward bool, opts ...string) {
	const H = 256
	r := rand.New(rand.NewPCG(1, 1))
	p := testParams(b, r, H)
	in := tensor.Map{
		"e":          tensor.From(randn(r, B*S*H, 0, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S, 1), B, S),
		"h":          tensor.New(B, H),
	}
	og := tensor.Map{"y": tensor.From(randn(r, B*S*H, 0, 1), B, S, H)}
	s := New()
	cfg := testConfig(H, opts...)
	for b.Loop() {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, NeedGrad: backward})
		if err != nil {
			b.Fatal(err)
		}
		if backward {
			if _, err := s.Backward(context.Background(), res.Handle, og); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(B*S), "ns/token")
}

func BenchmarkForwardB8S512(b *testing.B)         { benchAdaptive(b, 8, 512, false) }
func BenchmarkForwardBackwardB8S512(b *testing.B) { benchAdaptive(b, 8, 512, true) }
func BenchmarkRK4ForwardBackwardB8S512(b *testing.B) {
	benchAdaptive(b, 8, 512, true, "method", "rk4")
}
