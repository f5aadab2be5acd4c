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

// BenchmarkLayerRows is one coupling layer's per-row work on the seed's path
// (4096 rows, D=512, on one core): impl=c is the cgo build's kernel, impl=go
// the Go loop of the pure-Go build (the code before the kernel, but for the
// order of one sum).
func BenchmarkLayerRows(b *testing.B) {
	const rows, D, H = 4096, 512, 256
	r := rand.New(rand.NewPCG(12, 12))
	in, x0 := stagetest.Randn(r, rows*D, 1), stagetest.Randn(r, rows*D, 1)
	th0, ut := stagetest.Randn(r, rows*H, 1), stagetest.Randn(r, rows*H, 1)
	th, out, ldj := make([]float32, rows*H), make([]float32, rows*D), make([]float32, rows)
	if !layerRowsC(in, out, x0, ldj, th, ut, 1, D, H, 1, 1, 1, true, false) {
		b.Skip("pure-Go build")
	}
	for _, impl := range []string{"c", "go"} {
		b.Run("impl="+impl, func(b *testing.B) {
			sb, eb := make([]float32, H), make([]float32, H)
			for b.Loop() {
				copy(th, th0)
				if impl == "c" {
					layerRowsC(in, out, x0, ldj, th, ut, rows, D, H, 0.9, 0.7, 0.8, true, false)
					continue
				}
				for i := 0; i < rows; i++ {
					xi, yo := in[i*D:(i+1)*D], out[i*D:(i+1)*D]
					acc := seedRow(xi[H:], yo[H:], th[i*H:(i+1)*H], ut[i*H:(i+1)*H], sb, eb, 0.9, 0.7, 0.8)
					copy(yo[:H], xi[:H])
					for k, v := range x0[i*D : (i+1)*D] {
						yo[k] += float32(v * Residual)
					}
					ldj[i] += float32(acc)
				}
			}
		})
	}
}

// BenchmarkLayerBackRows is one coupling layer's backward per-row work on the
// seed's path (4096 rows, D=512, an odd layer, on one core): impl=c is the
// cgo build's kernel, impl=go the Go loop (the code before the kernel).
func BenchmarkLayerBackRows(b *testing.B) {
	const rows, D, H = 4096, 512, 256
	r := rand.New(rand.NewPCG(13, 13))
	in, dX0 := stagetest.Randn(r, rows*D, 1), stagetest.Randn(r, rows*D, 1)
	th0, ut0, dY0 := stagetest.Randn(r, rows*H, 0.5), stagetest.Randn(r, rows*H, 1), stagetest.Randn(r, rows*D, 1)
	dldj := stagetest.Randn(r, rows, 1)
	th, ut, dY := make([]float32, rows*H), make([]float32, rows*H), make([]float32, rows*D)
	if _, _, _, ok := layerBackRowsC(in, th, ut, dY, dX0, dldj, 1, D, H, 1, 1, 1, false, true); !ok {
		b.Skip("pure-Go build")
	}
	for _, impl := range []string{"c", "go"} {
		b.Run("impl="+impl, func(b *testing.B) {
			for b.Loop() {
				copy(th, th0)
				copy(ut, ut0)
				copy(dY, dY0)
				if impl == "c" {
					layerBackRowsC(in, th, ut, dY, dX0, dldj, rows, D, H, 0.9, 0.7, 0.8, false, true)
				} else {
					layerBackRows(in, th, ut, dY, dX0, dldj, rows, D, H, 0.9, 0.7, 0.8, false, true)
				}
			}
		})
	}
}
