package odefunc

import (
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage/stagetest"
)

func TestFuncEvalMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct{ rows, h int }{{1, 1}, {3, 5}, {150, 16}, {70, 256}} {
		y := stagetest.Randn(r, tc.rows*tc.h, 1.5)
		y[0] = 9 // a saturated tanh
		if tc.rows > 2 {
			for j := 0; j < tc.h; j++ {
				y[2*tc.h+j] = 0 // a zero row (‖y‖ = 0)
			}
		}
		g := stagetest.Randn(r, tc.h, 1)
		b := stagetest.Randn(r, tc.h, 0.5)
		f, err := NewFunc(tc.rows, tc.h, g, b)
		if err != nil {
			t.Fatal(err)
		}
		yc := append([]float32(nil), y...)
		dy := make([]float32, len(y))
		f.Eval(0, y, dy)
		want := refFAll(to64(y), tc.h, to64(g), to64(b))
		for i := range dy {
			if d := math.Abs(float64(dy[i]) - want[i]); d > 2e-5*(1+math.Abs(want[i])) {
				t.Fatalf("rows %d h %d: dy[%d] = %v, want %v", tc.rows, tc.h, i, dy[i], want[i])
			}
		}
		for i := range y {
			if y[i] != yc[i] {
				t.Fatalf("Eval modified y[%d]", i)
			}
		}
	}
}

func TestFuncVJP(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ rows, h int }{{2, 3}, {150, 16}} {
		n := tc.rows * tc.h
		y := stagetest.Randn(r, n, 1.2)
		w := stagetest.Randn(r, n, 1) // loss = Σ w·f(y)
		g := stagetest.Randn(r, tc.h, 1)
		b := stagetest.Randn(r, tc.h, 0.5)
		f, err := NewFunc(tc.rows, tc.h, g, b)
		if err != nil {
			t.Fatal(err)
		}
		gy := make([]float32, n)
		for i := range gy {
			gy[i] = 1 // VJP must add, not overwrite
		}
		yc, wc := append([]float32(nil), y...), append([]float32(nil), w...)
		f.VJP(0, y, w, gy)
		f.VJP(0, y, w, gy) // twice: both gy and the parameter grads accumulate
		for i := range gy {
			gy[i] = (gy[i] - 1) / 2
		}
		dg, db := make([]float32, tc.h), make([]float32, tc.h)
		f.AddGrads(dg, db)
		for i := range dg {
			dg[i] /= 2
			db[i] /= 2
		}
		for i := range y {
			if y[i] != yc[i] || w[i] != wc[i] {
				t.Fatalf("VJP modified its inputs at %d", i)
			}
		}
		loss := func() float64 {
			out := refFAll(to64(y), tc.h, to64(g), to64(b))
			var s float64
			for i, v := range out {
				s += float64(w[i]) * v
			}
			return s
		}
		numtest.CheckGrad(t, "y", y, gy, loss, 1e-3, 2e-4, 2e-3)
		numtest.CheckGrad(t, "layer_norm.weight", g, dg, loss, 1e-3, 2e-4, 2e-3)
		numtest.CheckGrad(t, "layer_norm.bias", b, db, loss, 1e-3, 2e-4, 2e-3)

		f.ZeroGrad()
		clear(dg)
		f.AddGrads(dg, nil)
		for _, v := range dg {
			if v != 0 {
				t.Fatal("ZeroGrad left a gradient")
			}
		}
	}
}

func TestNewFuncErrors(t *testing.T) {
	if _, err := NewFunc(0, 4, make([]float32, 4), make([]float32, 4)); err == nil {
		t.Error("rows = 0 accepted")
	}
	if _, err := NewFunc(2, 4, make([]float32, 3), make([]float32, 4)); err == nil {
		t.Error("short gamma accepted")
	}
}

// TestEvalKernelBits: the cgo build's C kernel gives exactly evalRow's bits
// (the pure-Go build's path), also for large and extreme values.
func TestEvalKernelBits(t *testing.T) {
	for _, h := range []int{16, 48, 256} {
		rows := 37
		r := rand.New(rand.NewPCG(uint64(h), 3))
		y := make([]float32, rows*h)
		for i := range y {
			y[i] = float32(r.NormFloat64() * 2)
		}
		y[0], y[1], y[2], y[h+3] = 30, -9, 1e-30, -5.5
		gamma, beta := make([]float32, h), make([]float32, h)
		for j := range gamma {
			gamma[j] = 1 + float32(r.NormFloat64()*0.1)
			beta[j] = float32(r.NormFloat64() * 0.1)
		}
		got := make([]float32, rows*h)
		if !evalRowsC(got, y, gamma, beta, rows, h) {
			t.Skip("no C kernel in this build")
		}
		er := make([]float32, h)
		want := make([]float32, h)
		for i := 0; i < rows; i++ {
			evalRow(y[i*h:(i+1)*h], want, er, gamma, beta)
			for j, w := range want {
				if math.Float32bits(got[i*h+j]) != math.Float32bits(w) {
					t.Fatalf("h=%d row %d [%d]: C %v, Go %v", h, i, j, got[i*h+j], w)
				}
			}
		}
	}
}

// TestEvalCombBits: EvalComb gives exactly Eval at the argument formed in
// odeint's order (combRow), for 0 to 7 terms, with and without the C kernel's
// sizes (h = 20 takes the Go loop).
func TestEvalCombBits(t *testing.T) {
	for _, h := range []int{20, 48, 256} {
		rows := 150
		r := rand.New(rand.NewPCG(uint64(h), 9))
		gamma, beta := stagetest.Randn(r, h, 1), stagetest.Randn(r, h, 0.1)
		f, err := NewFunc(rows, h, gamma, beta)
		if err != nil {
			t.Fatal(err)
		}
		base := stagetest.Randn(r, rows*h, 1)
		for nt := 0; nt <= 7; nt++ {
			var cs []float32
			var vs [][]float32
			for k := 0; k < nt; k++ {
				cs = append(cs, float32(k)*0.31-0.7)
				vs = append(vs, stagetest.Randn(r, rows*h, 1))
			}
			x := make([]float32, rows*h)
			for i := 0; i < rows; i++ {
				combRow(x[i*h:(i+1)*h], base[i*h:(i+1)*h], 0.137, cs, vs, i*h)
			}
			want, got := make([]float32, rows*h), make([]float32, rows*h)
			f.Eval(0, x, want)
			f.EvalComb(0, base, 0.137, cs, vs, got)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("h=%d, %d terms: [%d] EvalComb %v, Eval %v", h, nt, i, got[i], want[i])
				}
			}
		}
	}
}

// TestBiasResidualBits: the C loops of the stage's bias and residual give the
// Go loops' bits.
func TestBiasResidualBits(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 7))
	const rows, h = 9, 40
	a, be := stagetest.Randn(r, rows*h, 1), stagetest.Randn(r, h, 1)
	b := append([]float32(nil), a...)
	addBias(a, be, rows, h)
	addBiasGo(b, be, rows, h)
	y, e0 := stagetest.Randn(r, rows*h, 1), stagetest.Randn(r, rows*h, 1)
	e1, e2 := make([]float32, rows*h), make([]float32, rows*h)
	residual(e1, y, e0, residualScale)
	residualGo(e2, y, e0, residualScale)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) || math.Float32bits(e1[i]) != math.Float32bits(e2[i]) {
			t.Fatalf("[%d]: bias %v vs %v, residual %v vs %v", i, a[i], b[i], e1[i], e2[i])
		}
	}
}

// TestVJPKernelBits: the cgo build's VJP kernel gives exactly vjpRow's bits,
// for gy and for the float64 parameter-gradient accumulators.
func TestVJPKernelBits(t *testing.T) {
	for _, h := range []int{16, 48, 256} {
		const rows = 37
		r := rand.New(rand.NewPCG(uint64(h), 5))
		y, g := stagetest.Randn(r, rows*h, 2), stagetest.Randn(r, rows*h, 1)
		y[0], y[1], y[h+2] = 12, -7, 1e-30
		gamma := stagetest.Randn(r, h, 1)
		gyC, gyGo := stagetest.Randn(r, rows*h, 1), make([]float32, rows*h)
		copy(gyGo, gyC)
		accC, accGo := make([]float64, 2*h), make([]float64, 2*h)
		s := make([]float32, 3*h)
		if !vjpRowsC(y, g, gyC, gamma, s, accC, rows, h) {
			t.Skip("no C kernel in this build")
		}
		for i := 0; i < rows; i++ {
			vjpRow(y[i*h:(i+1)*h], g[i*h:(i+1)*h], gyGo[i*h:(i+1)*h], gamma, s, accGo)
		}
		for i := range gyC {
			if math.Float32bits(gyC[i]) != math.Float32bits(gyGo[i]) {
				t.Fatalf("h=%d gy[%d]: C %v, Go %v", h, i, gyC[i], gyGo[i])
			}
		}
		for i := range accC {
			if math.Float64bits(accC[i]) != math.Float64bits(accGo[i]) {
				t.Fatalf("h=%d acc[%d]: C %v, Go %v", h, i, accC[i], accGo[i])
			}
		}
	}
}
