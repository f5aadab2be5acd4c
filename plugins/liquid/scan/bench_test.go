package scan

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/num"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// initParams draws parameters as the host initialises them from Describe.
func initParams(r *rand.Rand, H int) tensor.Map {
	bound := 1 / math.Sqrt(float64(H))
	uni := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32((2*r.Float64() - 1) * bound)
		}
		return out
	}
	A := make([]float32, H)
	for i := range A {
		A[i] = 1
	}
	return tensor.Map{
		"input.weight":     tensor.From(uni(H*H), H, H),
		"input.bias":       tensor.From(uni(H), H),
		"recurrent.weight": tensor.From(stagetest.Randn(r, H*H, bound), H, H),
		"tau_raw":          tensor.New(H),
		"A":                tensor.From(A, H),
	}
}

// benchScan runs one chunk of B×S tokens at H = 256 and reports ns/token.
func benchScan(b *testing.B, B, S int, backward bool, opts ...string) {
	const H = 256
	r := rand.New(rand.NewPCG(1, 1))
	p := initParams(r, H)
	in := tensor.Map{
		"e":          tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
		"h":          tensor.New(B, H),
	}
	og := tensor.Map{"y": tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H)}
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

func BenchmarkForwardB1S4096(b *testing.B)         { benchScan(b, 1, 4096, false) }
func BenchmarkForwardBackwardB1S4096(b *testing.B) { benchScan(b, 1, 4096, true) }
func BenchmarkForwardB8S512(b *testing.B)          { benchScan(b, 8, 512, false) }
func BenchmarkForwardBackwardB8S512(b *testing.B)  { benchScan(b, 8, 512, true) }

// The ODE mode (option method) at the same size: one odeint solve per token.
func BenchmarkODEEulerForwardBackwardB8S512(b *testing.B) {
	benchScan(b, 8, 512, true, "method", "euler")
}
func BenchmarkODERK4ForwardBackwardB8S512(b *testing.B) { benchScan(b, 8, 512, true, "method", "rk4") }
func BenchmarkODEDopri5ForwardBackwardB8S512(b *testing.B) {
	benchScan(b, 8, 512, true, "method", "dopri5")
}

// The per-token products at B = 1, H = 256: Go loops against num.Gemm (which
// chose useGoGemv).
func benchMatVec(b *testing.B, f func(y, w, x []float32)) {
	const H = 256
	r := rand.New(rand.NewPCG(2, 2))
	w, x, y := stagetest.Randn(r, H*H, 0.06), stagetest.Randn(r, H, 1), make([]float32, H)
	for b.Loop() {
		f(y, w, x)
	}
}

func BenchmarkMatVecGo(b *testing.B) {
	benchMatVec(b, func(y, w, x []float32) { gemvAdd(y, w, x, 256) })
}

func BenchmarkMatVecGemm(b *testing.B) {
	benchMatVec(b, func(y, w, x []float32) { num.Gemm(false, true, 1, 256, 256, 1, x, 256, w, 256, 1, y, 256) })
}

func BenchmarkMatVecTGo(b *testing.B) {
	benchMatVec(b, func(y, w, x []float32) { gemvTAdd(y, w, x, 256) })
}

func BenchmarkMatVecTGemm(b *testing.B) {
	benchMatVec(b, func(y, w, x []float32) { num.Gemm(false, false, 1, 256, 256, 1, x, 256, w, 256, 1, y, 256) })
}

// The per-token product at B = 8: sgemm with W_h transposed (NT) against the
// stored W_hᵀ (NN), which chose the NN form in recurrentAdd.
func benchMatMulB8(b *testing.B, transB bool) {
	const H, B = 256, 8
	r := rand.New(rand.NewPCG(2, 2))
	w, x, y := stagetest.Randn(r, H*H, 0.06), stagetest.Randn(r, B*H, 1), make([]float32, B*H)
	for b.Loop() {
		num.Gemm(false, transB, B, H, H, 1, x, H, w, H, 1, y, H)
	}
}

func BenchmarkMatMulB8NT(b *testing.B) { benchMatMulB8(b, true) }
func BenchmarkMatMulB8NN(b *testing.B) { benchMatMulB8(b, false) }
