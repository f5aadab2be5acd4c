package odefunc

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

const benchTokens, benchH, benchL = 4096, 256, 128

func benchFunc(b *testing.B) (*Func, []float32, []float32, []float32) {
	r := rand.New(rand.NewPCG(5, 6))
	n := benchTokens * benchH
	g, bb := stagetest.Randn(r, benchH, 1), stagetest.Randn(r, benchH, 0.1)
	f, err := NewFunc(benchTokens, benchH, g, bb)
	if err != nil {
		b.Fatal(err)
	}
	return f, stagetest.Randn(r, n, 1), stagetest.Randn(r, n, 1), make([]float32, n)
}

// perToken reports wall and CPU time per token; call its result after the loop.
// CPU time (all cores summed) is the steadier figure on a shared machine.
func perToken(b *testing.B, tokens int) func() {
	b.ResetTimer()
	cpu0 := cpuNanos()
	return func() {
		n := float64(b.N) * float64(tokens)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/token")
		if c := cpuNanos() - cpu0; c > 0 {
			b.ReportMetric(float64(c)/n, "cpu-ns/token")
		}
	}
}

// BenchmarkFuncEval is one evaluation of f over 4096 tokens of 256.
func BenchmarkFuncEval(b *testing.B) {
	f, y, _, dy := benchFunc(b)
	b.ReportAllocs()
	done := perToken(b, benchTokens)
	for i := 0; i < b.N; i++ {
		f.Eval(0, y, dy)
	}
	done()
}

// BenchmarkFuncVJP is one vector-Jacobian product over 4096 tokens of 256.
func BenchmarkFuncVJP(b *testing.B) {
	f, y, g, gy := benchFunc(b)
	b.ReportAllocs()
	done := perToken(b, benchTokens)
	for i := 0; i < b.N; i++ {
		f.VJP(0, y, g, gy)
	}
	done()
}

func benchStage(b *testing.B, method string, backward bool) {
	r := rand.New(rand.NewPCG(7, 8))
	s := New()
	cfg := stage.Config{Dims: map[string]int{"latent_dim": benchL, "hidden_size": benchH},
		Options: map[string]string{"method": method}}
	params := tensor.Map{
		ParamWeight:   tensor.From(stagetest.Randn(r, benchH*benchL, 0.09), benchH, benchL),
		ParamBias:     tensor.From(stagetest.Randn(r, benchH, 0.09), benchH),
		ParamBiasE:    tensor.New(benchH),
		ParamGate:     tensor.New(),
		ParamLNWeight: tensor.From(stagetest.Randn(r, benchH, 0.1), benchH),
		ParamLNBias:   tensor.New(benchH),
	}
	for i := range params[ParamLNWeight].Data {
		params[ParamLNWeight].Data[i] += 1
	}
	req := &stage.ForwardRequest{Params: params, NeedGrad: backward, Inputs: tensor.Map{
		InputZ:     tensor.From(stagetest.Randn(r, benchTokens*benchL, 1), 1, benchTokens, benchL),
		InputTSpan: tensor.From([]float32{0, 0.25, 0.5, 0.75, 1}, 5),
	}}
	de := tensor.Map{OutputE: tensor.From(stagetest.Randn(r, benchTokens*benchH, 1), 1, benchTokens, benchH)}
	ctx := context.Background()
	var nfe float64
	done := perToken(b, benchTokens)
	for i := 0; i < b.N; i++ {
		res, err := s.Forward(ctx, cfg, req)
		if err != nil {
			b.Fatal(err)
		}
		nfe = res.Stats["nfe"]
		if backward {
			if _, err := s.Backward(ctx, res.Handle, de); err != nil {
				b.Fatal(err)
			}
		}
	}
	done()
	b.ReportMetric(nfe, "nfe")
}

// BenchmarkStageForward is the stage's forward over 4096 tokens (B=1, L=128, H=256).
func BenchmarkStageForward(b *testing.B) {
	for _, m := range []string{"dopri5", "rk4"} {
		b.Run(m, func(b *testing.B) { benchStage(b, m, false) })
	}
}

// BenchmarkStageForwardBackward adds the backward pass (taped forward + adjoint).
func BenchmarkStageForwardBackward(b *testing.B) {
	for _, m := range []string{"dopri5", "rk4"} {
		b.Run(m, func(b *testing.B) { benchStage(b, m, true) })
	}
}

// BenchmarkFuncEvalComb is one dopri5 stage (6 terms) formed and evaluated by
// EvalComb over 4096 tokens of 256; compare BenchmarkFuncEval, which reads a
// stage input already formed.
func BenchmarkFuncEvalComb(b *testing.B) {
	f, y, _, dy := benchFunc(b)
	r := rand.New(rand.NewPCG(9, 9))
	cs := []float32{0.1, -0.2, 0.3, 0.05, -0.01, 0.2}
	vs := make([][]float32, len(cs))
	for k := range vs {
		vs[k] = stagetest.Randn(r, len(y), 1)
	}
	done := perToken(b, benchTokens)
	for i := 0; i < b.N; i++ {
		f.EvalComb(0, y, 0.01, cs, vs, dy)
	}
	done()
}
