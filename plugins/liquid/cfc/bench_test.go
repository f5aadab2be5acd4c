package cfc

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// benchCfC runs one chunk of B×S tokens at the seed's H = 256 (one backbone
// layer of 256 units) and reports ns/token.
func benchCfC(b *testing.B, B, S int, backward bool) {
	const H = 256
	r := rand.New(rand.NewPCG(1, 1))
	cfg := testConfig(H)
	p := testParams(b, r, cfg)
	in := tensor.Map{
		"e":          tensor.From(randn(r, B*S*H, 0, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
		"h":          tensor.New(B, H),
	}
	og := tensor.Map{"y": tensor.From(randn(r, B*S*H, 0, 1), B, S, H)}
	s := New()
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

func BenchmarkForwardB1S4096(b *testing.B)         { benchCfC(b, 1, 4096, false) }
func BenchmarkForwardBackwardB1S4096(b *testing.B) { benchCfC(b, 1, 4096, true) }
func BenchmarkForwardB8S512(b *testing.B)          { benchCfC(b, 8, 512, false) }
func BenchmarkForwardBackwardB8S512(b *testing.B)  { benchCfC(b, 8, 512, true) }
