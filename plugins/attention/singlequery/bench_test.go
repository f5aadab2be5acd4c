package singlequery

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// benchStage runs one chunk of B=1, Sc=4096, H=256 through the stage.
func benchStage(b *testing.B, pattern string, backward bool) {
	const B, Sc, H = 1, 4096, 256
	r := rand.New(rand.NewPCG(1, 1))
	cfg := testConfig(H, pattern)
	pm := randParams(b, r, cfg)
	d := randData(r, B, Sc, H)
	in := inputs(d.slice(0, Sc))
	s := New()
	dc := tensor.From(stagetest.Randn(r, B*H, 1), B, H)
	b.SetBytes(int64(B * Sc * H * 4))
	b.ResetTimer()
	for b.Loop() {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: backward})
		if err != nil {
			b.Fatal(err)
		}
		if backward {
			if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"c": dc}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkForwardAll(b *testing.B)                  { benchStage(b, "all", false) }
func BenchmarkForwardGlobalWindow(b *testing.B)         { benchStage(b, "global_window", false) }
func BenchmarkForwardBackwardAll(b *testing.B)          { benchStage(b, "all", true) }
func BenchmarkForwardBackwardGlobalWindow(b *testing.B) { benchStage(b, "global_window", true) }
