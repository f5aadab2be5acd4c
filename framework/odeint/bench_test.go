package odeint

import (
	"math/rand/v2"
	"testing"

	"liquidlab/framework/num"
)

// benchFunc is the elementwise f(y) = p⊙y/(1+y⊙y) − 0.1·y, itself spread across
// cores, so the benchmarks measure the solver's own vector work next to a cheap f.
type benchFunc struct{ p []float32 }

func (f *benchFunc) Eval(t float64, y, dy []float32) {
	num.ParallelRows(len(y), 4, func(lo, hi int) {
		p, yy, d := f.p[lo:hi], y[lo:hi], dy[lo:hi]
		for i, v := range yy {
			d[i] = p[i]*v/(1+v*v) - 0.1*v
		}
	})
}

func (f *benchFunc) VJP(t float64, y, g, gy []float32) {
	num.ParallelRows(len(y), 8, func(lo, hi int) {
		p, yy, gg, o := f.p[lo:hi], y[lo:hi], g[lo:hi], gy[lo:hi]
		for i, v := range yy {
			d := 1 + v*v
			o[i] += gg[i] * (p[i]*(1-v*v)/(d*d) - 0.1)
		}
	})
}

func benchSetup(n int) (*benchFunc, []float32) {
	rng := rand.New(rand.NewPCG(11, 12))
	return &benchFunc{p: randVec(rng, n, 1)}, randVec(rng, n, 1)
}

var benchTs = []float64{0, 0.25, 0.5, 0.75, 1}

func benchDopri5(b *testing.B, ser, tape bool) {
	f, y0 := benchSetup(1 << 20)
	defer func(s bool) { serial = s }(serial)
	serial = ser
	b.SetBytes(int64(4 * len(y0)))
	b.ReportAllocs()
	var st Stats
	for b.Loop() {
		sol, err := Solve(f, y0, benchTs, Options{Method: "dopri5", Tape: tape})
		if err != nil {
			b.Fatal(err)
		}
		if tape {
			g := sol.Ys[len(sol.Ys)-1]
			if _, err := sol.Backward(f, [][]float32{nil, nil, nil, nil, g}); err != nil {
				b.Fatal(err)
			}
			sol.Release()
		}
		st = sol.Stats
	}
	b.ReportMetric(float64(st.NFE), "nfe")
}

// BenchmarkDopri5 integrates 1M elements over linspace(0, 1, 5) at rtol = atol = 1e-3.
func BenchmarkDopri5(b *testing.B)               { benchDopri5(b, false, false) }
func BenchmarkDopri5Serial(b *testing.B)         { benchDopri5(b, true, false) }
func BenchmarkDopri5Backward(b *testing.B)       { benchDopri5(b, false, true) }
func BenchmarkDopri5BackwardSerial(b *testing.B) { benchDopri5(b, true, true) }

func BenchmarkRK4(b *testing.B) {
	f, y0 := benchSetup(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Solve(f, y0, benchTs, Options{Method: "rk4"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLincomb6 is one dopri5 stage combination (6 terms) over 1M elements, on one core.
func BenchmarkLincomb6(b *testing.B) {
	rng := rand.New(rand.NewPCG(13, 14))
	n := 1 << 20
	p := newPool(n)
	y, dst := randVec(rng, n, 1), make([]float32, n)
	terms := make([]term, 6)
	for i := range terms {
		terms[i] = term{float32(i) + 0.5, randVec(rng, n, 1)}
	}
	defer func(s bool) { serial = s }(serial)
	serial = true
	b.SetBytes(int64(4 * n * 8))
	for b.Loop() {
		p.lincomb(dst, y, 0.01, terms)
	}
}

// BenchmarkErrorRatioInterp compares the C block kernels of errorRatio (7
// terms) and interp (6 mid terms) with their Go loops, over 1M elements on
// one core: impl=c is what the cgo build runs, impl=go the pure-Go build.
func BenchmarkErrorRatioInterp(b *testing.B) {
	rng := rand.New(rand.NewPCG(15, 16))
	n := 1 << 20
	y, yn, f0, f1, dst := randVec(rng, n, 1), randVec(rng, n, 1), randVec(rng, n, 1), randVec(rng, n, 1), make([]float32, n)
	terms := make([]term, 7)
	for i := range terms {
		terms[i] = term{float32(i) + 0.5, randVec(rng, n, 1)}
	}
	if _, _, ok := errorRatioRangeC(y, yn, 0.01, terms, 1e-3, 1e-3, 0, 8); !ok {
		b.Skip("pure-Go build")
	}
	for _, impl := range []string{"c", "go"} {
		b.Run("kernel=errorRatio/impl="+impl, func(b *testing.B) {
			b.SetBytes(int64(4 * n * 9))
			for b.Loop() {
				for lo := 0; lo < n; lo += blockLen {
					if impl == "c" {
						errorRatioRangeC(y, yn, 0.01, terms, 1e-3, 1e-3, lo, lo+blockLen)
					} else {
						errorRatioRangeGo(y, yn, 0.01, terms, 1e-3, 1e-3, lo, lo+blockLen)
					}
				}
			}
		})
		b.Run("kernel=interp/impl="+impl, func(b *testing.B) {
			b.SetBytes(int64(4 * n * 11))
			for b.Loop() {
				for lo := 0; lo < n; lo += blockLen {
					if impl == "c" {
						interpRangeC(dst, y, yn, f0, f1, terms[:6], 0.1, 0.2, 0.5, 0.25, 0.125, 0.0625, lo, lo+blockLen)
					} else {
						interpRangeGo(dst, y, yn, f0, f1, terms[:6], 0.1, 0.2, 0.5, 0.25, 0.125, 0.0625, lo, lo+blockLen)
					}
				}
			}
		})
	}
}
