package causal

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// BenchmarkForwardBackward runs one chunk of B=1, Sc=4096, H=256, W=64 forward
// and backward.
func BenchmarkForwardBackward(b *testing.B) {
	const B, Sc, H, W = 1, 4096, 256, 64
	r := rand.New(rand.NewPCG(1, 1))
	cfg := testConfig(H, W)
	pm := randParams(b, r, cfg)
	e := tensor.From(randn(r, B*Sc*H, 1), B, Sc, H)
	in := chunkInputs(e, 0, Sc)
	dy := tensor.From(randn(r, B*Sc*H, 1), B, Sc, H)
	s := New()
	b.SetBytes(int64(B * Sc * H * 4))
	for b.Loop() {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": dy}); err != nil {
			b.Fatal(err)
		}
	}
}
