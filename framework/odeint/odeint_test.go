package odeint

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
)

// tanhFunc is f(t, y) = tanh(W·y_r + b + t·c) on each row y_r of a [rows, d]
// state, with parameters W (d×d) and b; c is a constant.
type tanhFunc struct {
	d       int
	W, b, c []float32
	gW, gb  []float32
	nEval   int
	nVJP    int
}

func newTanhFunc(rng *rand.Rand, d int) *tanhFunc {
	f := &tanhFunc{d: d, W: make([]float32, d*d), b: make([]float32, d), c: make([]float32, d),
		gW: make([]float32, d*d), gb: make([]float32, d)}
	for i := range f.W {
		f.W[i] = float32(rng.NormFloat64()) * 0.8
	}
	for i := range f.b {
		f.b[i] = float32(rng.NormFloat64()) * 0.5
		f.c[i] = float32(rng.NormFloat64()) * 0.5
	}
	return f
}

func (f *tanhFunc) pre(t float64, y []float32, r int, z []float64) {
	d := f.d
	for i := 0; i < d; i++ {
		s := float64(f.b[i]) + t*float64(f.c[i])
		for j := 0; j < d; j++ {
			s += float64(f.W[i*d+j]) * float64(y[r*d+j])
		}
		z[i] = s
	}
}

func (f *tanhFunc) Eval(t float64, y, dy []float32) {
	f.nEval++
	z := make([]float64, f.d)
	for r := 0; r < len(y)/f.d; r++ {
		f.pre(t, y, r, z)
		for i, v := range z {
			dy[r*f.d+i] = float32(math.Tanh(v))
		}
	}
}

func (f *tanhFunc) VJP(t float64, y, g, gy []float32) {
	f.nVJP++
	d := f.d
	z := make([]float64, d)
	for r := 0; r < len(y)/d; r++ {
		f.pre(t, y, r, z)
		for i, v := range z {
			u := math.Tanh(v)
			gz := float32(float64(g[r*d+i]) * (1 - u*u))
			f.gb[i] += gz
			for j := 0; j < d; j++ {
				gy[r*d+j] += f.W[i*d+j] * gz
				f.gW[i*d+j] += gz * y[r*d+j]
			}
		}
	}
}

func randVec(rng *rand.Rand, n int, s float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64() * s)
	}
	return v
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestBackwardFD checks Backward against central finite differences for every
// method, w.r.t. y0, W and b, with a loss on the last and a middle output.
// Adaptive methods are checked twice: with the step sequence replayed (so the
// finite differences see exactly the discrete map Backward differentiates) and
// freely (step sizes then move slightly with the inputs; Stats must not change).
func TestBackwardFD(t *testing.T) {
	// 0.3 and 0.35 share an adaptive step, so one step carries two outputs.
	ts := []float64{0, 0.3, 0.35, 1.2}
	for _, m := range Methods() {
		for _, frozen := range []bool{true, false} {
			tb := lookup(m)
			// The free check is dopri5 only: bosh3's low order makes the
			// contribution of the moving step sizes (≈5% at rtol 1e-3) too large.
			if !frozen && m != "dopri5" {
				continue
			}
			name := m
			if tb.adaptive() {
				name += map[bool]string{true: "/replayed", false: "/free"}[frozen]
			}
			t.Run(name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, 2))
				f := newTanhFunc(rng, 3)
				y0 := randVec(rng, 6, 1)
				w1, w2, w3 := randVec(rng, 6, 1), randVec(rng, 6, 1), randVec(rng, 6, 1)
				opt := Options{Method: m, RTol: 1e-4, ATol: 1e-4}
				if !frozen {
					// In float32 the step after a tiny first step is set by round-off in
					// the error estimate, so the free map is only smooth at coarse
					// tolerances; there the moving step sizes (held constant by
					// Backward) shift the gradient by about 1e-3.
					opt.RTol, opt.ATol = 1e-3, 1e-3
				}
				var rp *replay
				if tb.adaptive() {
					rp = &replay{rec: true}
				}
				opt.Tape = true
				sol, err := solve(f, y0, ts, opt, rp)
				if err != nil {
					t.Fatal(err)
				}
				base := sol.Stats
				if rp != nil && frozen {
					rp.rec = false
				}
				opt.Tape = false
				loss := func() float64 {
					var r *replay
					switch {
					case rp != nil && frozen:
						r = rp
					case rp != nil:
						r = &replay{rec: true}
					}
					s, err := solve(f, y0, ts, opt, r)
					if err != nil {
						t.Fatal(err)
					}
					if s.Stats != base {
						t.Fatalf("perturbation changed the step sequence: %+v vs %+v", s.Stats, base)
					}
					if r != nil && r.rec && fmt.Sprint(r.accept) != fmt.Sprint(rp.accept) {
						t.Fatalf("perturbation changed the accept/reject sequence: %v vs %v", r.accept, rp.accept)
					}
					return dot(w1, s.Ys[3]) + dot(w2, s.Ys[1]) + dot(w3, s.Ys[2])
				}
				clear(f.gW)
				clear(f.gb)
				f.nVJP = 0
				if tb.adaptive() && sol.tape.outs[0].step != sol.tape.outs[1].step {
					t.Fatalf("outputs 1 and 2 come from different steps: %+v", sol.tape.outs)
				}
				gy0, err := sol.Backward(f, [][]float32{nil, w2, w3, w1})
				if err != nil {
					t.Fatal(err)
				}
				if f.nVJP == 0 {
					t.Fatal("no VJP calls")
				}
				step, atol, rtol := 5e-3, 2e-3, 1e-2 // float32 losses want a coarse step
				if !frozen {
					step, atol, rtol = 3e-3, 1e-2, 3e-2
				}
				numtest.CheckGrad(t, "y0", y0, gy0, loss, step, atol, rtol)
				numtest.CheckGrad(t, "W", f.W, append([]float32(nil), f.gW...), loss, step, atol, rtol)
				numtest.CheckGrad(t, "b", f.b, append([]float32(nil), f.gb...), loss, step, atol, rtol)
			})
		}
	}
}

// TestBackwardVJPCount checks that Backward calls VJP once per evaluation on the
// differentiable path: every stage of a fixed step; for adaptive methods the
// stages 2..s of accepted steps plus f0 (not rejected steps, not the extra
// evaluation of the initial-step rule).
func TestBackwardVJPCount(t *testing.T) {
	ts := []float64{0, 0.5, 1}
	for _, m := range Methods() {
		rng := rand.New(rand.NewPCG(3, 4))
		f := newTanhFunc(rng, 3)
		y0 := randVec(rng, 6, 1)
		sol, err := Solve(f, y0, ts, Options{Method: m, Tape: true})
		if err != nil {
			t.Fatal(err)
		}
		f.nVJP = 0
		g := randVec(rng, 6, 1)
		if _, err := sol.Backward(f, [][]float32{nil, nil, g}); err != nil {
			t.Fatal(err)
		}
		tb := lookup(m)
		want := sol.Stats.NFE
		if tb.adaptive() {
			want = sol.Stats.Accepted*(tb.stages()-1) + 1
		}
		if f.nVJP != want {
			t.Errorf("%s: %d VJP calls, want %d (stats %+v)", m, f.nVJP, want, sol.Stats)
		}
	}
}

func TestStats(t *testing.T) {
	ts := []float64{0, 0.25, 0.5, 0.75, 1}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, m := range Methods() {
		f := newTanhFunc(rng, 3)
		y0 := randVec(rng, 6, 1)
		y0c := append([]float32(nil), y0...)
		sol, err := Solve(f, y0, ts, Options{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		st := sol.Stats
		if st.NFE != f.nEval {
			t.Errorf("%s: NFE %d, f evaluated %d times", m, st.NFE, f.nEval)
		}
		tb := lookup(m)
		if tb.adaptive() {
			if want := 2 + (st.Accepted+st.Rejected)*(tb.stages()-1); st.NFE != want {
				t.Errorf("%s: NFE %d, want %d from %+v", m, st.NFE, want, st)
			}
		} else if st.Accepted != 4 || st.Rejected != 0 || st.NFE != 4*tb.stages() {
			t.Errorf("%s: stats %+v", m, st)
		}
		for i := range y0 {
			if y0[i] != y0c[i] || sol.Ys[0][i] != y0[i] {
				t.Fatalf("%s: y0 modified or Ys[0] not a copy", m)
			}
		}
		sol.Ys[0][0] = 42
		if y0[0] == 42 {
			t.Fatalf("%s: Ys[0] aliases y0", m)
		}
		if len(sol.Ys) != len(ts) {
			t.Fatalf("%s: %d outputs", m, len(sol.Ys))
		}
	}
}

// funcOf adapts closures to Func (no parameters, VJP unused).
type funcOf func(t float64, y, dy []float32)

func (f funcOf) Eval(t float64, y, dy []float32)   { f(t, y, dy) }
func (f funcOf) VJP(t float64, y, g, gy []float32) {}

func TestErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f := newTanhFunc(rng, 3)
	y0 := randVec(rng, 3, 1)
	blowup := funcOf(func(t float64, y, dy []float32) {
		for i := range y {
			dy[i] = y[i] * y[i] * 1e20
		}
	})
	nanAt := funcOf(func(t float64, y, dy []float32) {
		for i := range y {
			dy[i] = float32(-y[i])
			if t > 0.5 {
				dy[i] = float32(math.NaN())
			}
		}
	})
	// Fast dynamics far from t = 0: the first step is below the spacing of float64 at t0.
	fast := funcOf(func(t float64, y, dy []float32) {
		for i := range y {
			dy[i] = -1e8 * y[i]
		}
	})
	stiff := funcOf(func(t float64, y, dy []float32) {
		for i := range y {
			dy[i] = -1e4 * (y[i] - float32(math.Cos(t)))
		}
	})
	nan := []float32{1, float32(math.NaN()), 0}
	cases := []struct {
		name string
		f    Func
		y0   []float32
		ts   []float64
		opt  Options
		want string
	}{
		{"unknown method", f, y0, []float64{0, 1}, Options{Method: "rk45"}, "valid: euler, midpoint, heun, rk4, bosh3, dopri5"},
		{"one time", f, y0, []float64{0}, Options{Method: "rk4"}, "at least 2 times"},
		{"not increasing", f, y0, []float64{0, 1, 1}, Options{Method: "euler"}, "strictly increasing"},
		{"decreasing", f, y0, []float64{0, -1}, Options{Method: "dopri5"}, "strictly increasing"},
		{"nan time", f, y0, []float64{0, math.NaN()}, Options{Method: "dopri5"}, "not finite"},
		{"empty state", f, nil, []float64{0, 1}, Options{Method: "rk4"}, "empty state"},
		{"nil func", nil, y0, []float64{0, 1}, Options{Method: "rk4"}, "nil Func"},
		{"negative tol", f, y0, []float64{0, 1}, Options{Method: "dopri5", RTol: -1}, "tolerances"},
		{"nan y0", f, nan, []float64{0, 1}, Options{Method: "dopri5"}, "y0 holds NaN"},
		{"fixed blowup", blowup, y0, []float64{0, 1, 2}, Options{Method: "rk4"}, "NaN or Inf in the state at step"},
		{"adaptive nan", nanAt, y0, []float64{0, 1}, Options{Method: "dopri5"}, "NaN or Inf in the state at step"},
		{"bosh3 nan", nanAt, y0, []float64{0, 1}, Options{Method: "bosh3"}, "NaN or Inf in the state at step"},
		{"underflow", fast, []float32{1}, []float64{1e10, 1e10 + 1}, Options{Method: "dopri5"}, "underflow"},
		{"max steps", stiff, y0, []float64{0, 10}, Options{Method: "dopri5", MaxSteps: 50}, "MaxSteps (50) exceeded"},
	}
	for _, c := range cases {
		_, err := Solve(c.f, c.y0, c.ts, c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}

	// Backward errors.
	sol, err := Solve(f, y0, []float64{0, 1}, Options{Method: "rk4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sol.Backward(f, [][]float32{nil, y0}); err != ErrNoTape {
		t.Errorf("Backward without tape: %v", err)
	}
	sol, err = Solve(f, y0, []float64{0, 1}, Options{Method: "dopri5", Tape: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		gys  [][]float32
		want string
	}{
		{[][]float32{nil}, "got 1 output gradients for 2 times"},
		{[][]float32{nil, {1}}, "gradient 1 has length 1, state has 3"},
	} {
		if _, err := sol.Backward(f, c.gys); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Backward: error %v, want %q", err, c.want)
		}
	}
	if _, err := sol.Backward(nil, [][]float32{nil, y0}); err == nil {
		t.Error("Backward with nil Func: no error")
	}
	sol.Release()
	if _, err := sol.Backward(f, [][]float32{nil, y0}); err != ErrNoTape {
		t.Errorf("Backward after Release: %v", err)
	}
}

func TestMethodsAndDefault(t *testing.T) {
	want := "euler midpoint heun rk4 bosh3 dopri5"
	if got := strings.Join(Methods(), " "); got != want {
		t.Fatalf("Methods() = %s", got)
	}
	rng := rand.New(rand.NewPCG(9, 10))
	f := newTanhFunc(rng, 3)
	y0 := randVec(rng, 3, 1)
	a, err := Solve(f, y0, []float64{0, 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Solve(f, y0, []float64{0, 1}, Options{Method: "dopri5", RTol: 1e-3, ATol: 1e-3})
	if err != nil {
		t.Fatal(err)
	}
	if a.Stats != b.Stats || a.Ys[1][0] != b.Ys[1][0] {
		t.Fatal("empty Options is not dopri5 with rtol = atol = 1e-3")
	}
}

// TestParallelDeterministic runs a state of several blocks (with a ragged end)
// serially and across cores: outputs, stats and dL/dy0 must be bit-identical.
func TestParallelDeterministic(t *testing.T) {
	f, y0 := benchSetup(3*blockLen + 1234)
	ts := []float64{0, 0.4, 1}
	defer func(s bool) { serial = s }(serial)
	for _, m := range []string{"rk4", "dopri5"} {
		var ys [2][][]float32
		var gs [2][]float32
		var st [2]Stats
		for i, ser := range []bool{true, false} {
			serial = ser
			sol, err := Solve(f, y0, ts, Options{Method: m, Tape: true})
			if err != nil {
				t.Fatal(err)
			}
			g, err := sol.Backward(f, [][]float32{nil, sol.Ys[1], sol.Ys[2]})
			if err != nil {
				t.Fatal(err)
			}
			ys[i], gs[i], st[i] = sol.Ys, g, sol.Stats
		}
		if st[0] != st[1] {
			t.Fatalf("%s: stats %+v serial, %+v parallel", m, st[0], st[1])
		}
		for k := range ys[0] {
			for j := range ys[0][k] {
				if ys[0][k][j] != ys[1][k][j] {
					t.Fatalf("%s: Ys[%d][%d] differs: %v vs %v", m, k, j, ys[0][k][j], ys[1][k][j])
				}
			}
		}
		for j := range gs[0] {
			if gs[0][j] != gs[1][j] {
				t.Fatalf("%s: dy0[%d] differs", m, j)
			}
		}
	}
}

// TestLincombCMatchesGo checks that the vectorised linear combination gives the
// Go loop's bits, for every term count the solvers use and ragged ends.
func TestLincombCMatchesGo(t *testing.T) {
	n := 3*tileLen + 37
	mk := func(seed float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(math.Sin(float64(seed) + float64(i)*0.37))
		}
		return v
	}
	for nt := 0; nt <= 7; nt++ {
		var terms []term
		for k := 0; k < nt; k++ {
			terms = append(terms, term{c: float32(k)*0.37 - 1.1, v: mk(float32(k))})
		}
		for _, base := range [][]float32{nil, mk(9)} {
			a, b := make([]float32, n), make([]float32, n)
			accC, ok := lincombRangeC(a, base, 0.1234567, terms, 5, n)
			if !ok {
				t.Skip("pure-Go build")
			}
			for i := 0; i < 5; i++ {
				b[i] = a[i]
			}
			accGo := lincombRangeGo(b, base, 0.1234567, terms, 5, n)
			for i := range a {
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
					t.Fatalf("%d terms: [%d] C %v, Go %v", nt, i, a[i], b[i])
				}
			}
			if accC != accGo {
				t.Errorf("%d terms: finiteness %v vs %v", nt, accC, accGo)
			}
		}
	}
	// An infinity in a term, inside a tile's vector part, at a tile's
	// ragged end or in the last values: the finiteness accumulator is
	// non-zero on both paths (the C kernel keeps it in sixteen lanes), and
	// allFinite finds the same values.
	// From 0, the last tile holds 37 values: 32 in lanes, 5 in fin_tile's
	// ragged loop (n − 2 is one of those).
	for _, at := range []int{20, tileLen + 7, 3*tileLen + 33, n - 2} {
		v := mk(1)
		v[at] = float32(math.Inf(-1))
		terms := []term{{c: 0.5, v: mk(0)}, {c: 1.5, v: v}}
		a, b := make([]float32, n), make([]float32, n)
		accC, ok := lincombRangeC(a, nil, 1, terms, 0, n)
		if !ok {
			t.Skip("pure-Go build")
		}
		accGo := lincombRangeGo(b, nil, 1, terms, 0, n)
		if accC == 0 || accGo == 0 {
			t.Errorf("-Inf at %d: finiteness C %v, Go %v, want both non-zero", at, accC, accGo)
		}
		if newPool(n).allFinite(a) {
			t.Errorf("-Inf at %d: allFinite says the result is finite", at)
		}
	}
	if !newPool(n).allFinite(mk(3)) {
		t.Error("allFinite: finite values reported non-finite")
	}
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(map[string]string{"method": "rk4", "rtol": "1e-6"})
	if err != nil || o.Method != "rk4" || o.RTol != 1e-6 || o.ATol != DefaultTol {
		t.Errorf("ParseOptions = %+v, %v", o, err)
	}
	if o, _ := ParseOptions(nil); o.Method != "dopri5" {
		t.Errorf("default method %q", o.Method)
	}
	for _, bad := range []map[string]string{{"method": "rk5"}, {"rtol": "-1"}, {"atol": "x"}, {"atol": "+Inf"}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if len(OptionSpecs("x")) != 3 {
		t.Error("three solver options expected")
	}
}

// TestLastOnly: with Options.LastOnly the last output and the gradient are
// the bits of a full solve, Ys[0] is nil, and so are an adaptive method's
// intermediate outputs.
func TestLastOnly(t *testing.T) {
	f, y0 := benchSetup(2*blockLen + 77)
	ts := []float64{0, 0.3, 0.35, 1}
	for _, m := range []string{"rk4", "dopri5"} {
		var last [2][]float32
		var gs [2][]float32
		for i, only := range []bool{false, true} {
			sol, err := Solve(f, y0, ts, Options{Method: m, Tape: true, LastOnly: only})
			if err != nil {
				t.Fatal(err)
			}
			last[i] = sol.Ys[len(ts)-1]
			if only {
				if sol.Ys[0] != nil {
					t.Errorf("%s: LastOnly kept Ys[0]", m)
				}
				if m == "dopri5" && (sol.Ys[1] != nil || sol.Ys[2] != nil) {
					t.Errorf("%s: LastOnly kept intermediate outputs", m)
				}
			}
			g, err := sol.Backward(f, [][]float32{nil, nil, nil, last[i]})
			if err != nil {
				t.Fatal(err)
			}
			gs[i] = g
		}
		for j := range last[0] {
			if math.Float32bits(last[0][j]) != math.Float32bits(last[1][j]) {
				t.Fatalf("%s: last output [%d] %v vs %v", m, j, last[0][j], last[1][j])
			}
		}
		for j := range gs[0] {
			if math.Float32bits(gs[0][j]) != math.Float32bits(gs[1][j]) {
				t.Fatalf("%s: gradient [%d] %v vs %v", m, j, gs[0][j], gs[1][j])
			}
		}
	}
}

// TestErrorRatioAndInterpCMatchGo: the C kernels of errorRatio and interp
// give the Go loops' bits, for every term count and ragged ends.
func TestErrorRatioAndInterpCMatchGo(t *testing.T) {
	const n = 3*tileLen + 37
	rng := rand.New(rand.NewPCG(4, 4))
	mk := func() []float32 { return randVec(rng, n, 2) }
	y, yn, f0, f1 := mk(), mk(), mk(), mk()
	y[3], yn[4] = -0, float32(math.Inf(1))
	for nt := 0; nt <= 7; nt++ {
		var terms []term
		for k := 0; k < nt; k++ {
			terms = append(terms, term{c: float32(k)*0.37 - 1.1, v: mk()})
		}
		sumC, accC, ok := errorRatioRangeC(y, yn, 0.0123, terms, 1e-3, 1e-4, 5, n)
		if !ok {
			t.Skip("pure-Go build")
		}
		sumGo, accGo := errorRatioRangeGo(y, yn, 0.0123, terms, 1e-3, 1e-4, 5, n)
		if math.Float64bits(sumC) != math.Float64bits(sumGo) || math.Float32bits(accC) != math.Float32bits(accGo) {
			t.Errorf("errorRatio, %d terms: C %v %v, Go %v %v", nt, sumC, accC, sumGo, accGo)
		}
		sumC, _, _ = errorRatioRangeC(y, y, 0.0123, terms, 1e-3, 1e-4, 0, n-3)
		sumGo, _ = errorRatioRangeGo(y, y, 0.0123, terms, 1e-3, 1e-4, 0, n-3)
		if math.Float64bits(sumC) != math.Float64bits(sumGo) {
			t.Errorf("errorRatio (finite), %d terms: C %v, Go %v", nt, sumC, sumGo)
		}
		a, b := make([]float32, n), make([]float32, n)
		interpRangeC(a, y, yn, f0, f1, terms, 0.3, 0.6, 0.4, 0.16, 0.064, 0.0256, 5, n)
		interpRangeGo(b, y, yn, f0, f1, terms, 0.3, 0.6, 0.4, 0.16, 0.064, 0.0256, 5, n)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
				t.Fatalf("interp, %d terms: [%d] C %v, Go %v", nt, i, a[i], b[i])
			}
		}
	}
}

// TestNormsCMatchGo: the C kernels of initNorms and diffNorm give the Go
// loops' bits.
func TestNormsCMatchGo(t *testing.T) {
	const n = 1003
	rng := rand.New(rand.NewPCG(6, 6))
	y, f0, f1 := randVec(rng, n, 2), randVec(rng, n, 2), randVec(rng, n, 2)
	y[5] = -0
	for _, lo := range []int{0, 3} {
		a, b, acc, ok := initNormsRangeC(y, f0, 1e-3, 1e-4, lo, n)
		if !ok {
			t.Skip("pure-Go build")
		}
		ga, gb, gacc := initNormsRangeGo(y, f0, 1e-3, 1e-4, lo, n)
		if math.Float64bits(a) != math.Float64bits(ga) || math.Float64bits(b) != math.Float64bits(gb) || acc != gacc {
			t.Errorf("initNorms from %d: C %v %v %v, Go %v %v %v", lo, a, b, acc, ga, gb, gacc)
		}
		d, _ := diffNormRangeC(y, f0, f1, 1e-3, 1e-4, lo, n)
		if gd := diffNormRangeGo(y, f0, f1, 1e-3, 1e-4, lo, n); math.Float64bits(d) != math.Float64bits(gd) {
			t.Errorf("diffNorm from %d: C %v, Go %v", lo, d, gd)
		}
	}
}

// combTanh is tanhFunc with EvalComb, which forms the argument in the order
// CombFunc prescribes and counts its calls.
type combTanh struct {
	*tanhFunc
	nComb int
}

func (f *combTanh) EvalComb(t float64, base []float32, scale float32, cs []float32, vs [][]float32, dy []float32) {
	f.nComb++
	x := make([]float32, len(base))
	for i := range x {
		var s float32
		for k, c := range cs {
			if k == 0 {
				s = c * vs[0][i]
			} else {
				s += float32(c * vs[k][i])
			}
		}
		x[i] = base[i] + float32(scale*s)
	}
	f.Eval(t, x, dy)
}

// TestCombFunc: a Func with EvalComb gets the same solution, bit for bit, and
// is asked for the unkept stage inputs only when there is no tape.
func TestCombFunc(t *testing.T) {
	ts := []float64{0, 0.3, 1.2}
	for _, m := range []string{"rk4", "bosh3", "dopri5"} {
		rng := rand.New(rand.NewPCG(3, 3))
		plain := newTanhFunc(rng, 4)
		y0 := randVec(rng, 4*blockLen/2+8, 1)
		want, err := Solve(plain, y0, ts, Options{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		for _, tape := range []bool{false, true} {
			cf := &combTanh{tanhFunc: &tanhFunc{d: plain.d, W: plain.W, b: plain.b, c: plain.c, gW: plain.gW, gb: plain.gb}}
			got, err := Solve(cf, y0, ts, Options{Method: m, Tape: tape})
			if err != nil {
				t.Fatal(err)
			}
			if got.Stats != want.Stats {
				t.Fatalf("%s: stats %+v, want %+v", m, got.Stats, want.Stats)
			}
			for k := range want.Ys {
				for i := range want.Ys[k] {
					if math.Float32bits(got.Ys[k][i]) != math.Float32bits(want.Ys[k][i]) {
						t.Fatalf("%s tape=%v: Ys[%d][%d] = %v, want %v", m, tape, k, i, got.Ys[k][i], want.Ys[k][i])
					}
				}
			}
			if (cf.nComb > 0) == tape {
				t.Errorf("%s tape=%v: EvalComb called %d times", m, tape, cf.nComb)
			}
		}
	}
}
