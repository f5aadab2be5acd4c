package coupling

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// The host's size: N = B·S = 4096 rows, the seed README's D=512, F=128, K=4, L=128.
func benchSetup(b *testing.B, exact bool) (stage.Config, tensor.Map, *tensor.Tensor) {
	cfg := testConfig(512, 128, 128, 4, true, exact)
	rng := rand.New(rand.NewPCG(11, 11))
	params := randParams(b, cfg, rng)
	return cfg, params, tensor.From(stagetest.Randn(rng, 4096*512, 1), 1, 4096, 512)
}

func benchForward(b *testing.B, exact, grad bool) {
	cfg, params, x := benchSetup(b, exact)
	s, ctx := New(), context.Background()
	b.SetBytes(int64(4 * len(x.Data)))
	for b.Loop() {
		res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}, NeedGrad: grad})
		if err != nil {
			b.Fatal(err)
		}
		if grad {
			s.Release(ctx, res.Handle)
		}
	}
}

func BenchmarkForward(b *testing.B)         { benchForward(b, false, false) }
func BenchmarkForwardExact(b *testing.B)    { benchForward(b, true, false) }
func BenchmarkForwardNeedGrad(b *testing.B) { benchForward(b, false, true) }

// BenchmarkBackward times Backward alone; each iteration's forward pass runs
// with the timer stopped.
func BenchmarkBackward(b *testing.B) {
	cfg, params, x := benchSetup(b, false)
	s, ctx := New(), context.Background()
	rng := rand.New(rand.NewPCG(12, 12))
	grads := tensor.Map{"z": tensor.From(stagetest.Randn(rng, 4096*128, 1), 1, 4096, 128), "ldj": tensor.From(stagetest.Randn(rng, 4096, 1), 1, 4096)}
	b.SetBytes(int64(4 * len(x.Data)))
	for b.Loop() {
		b.StopTimer()
		res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}, NeedGrad: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Backward(ctx, res.Handle, grads); err != nil {
			b.Fatal(err)
		}
	}
}
