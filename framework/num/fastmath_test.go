package num

import (
	"math"
	"testing"
)

// denseGrid is every 1e-4 in [−20, 20] plus extreme and special values.
func denseGrid() []float32 {
	xs := make([]float32, 0, 400100)
	for i := -200000; i <= 200000; i++ {
		xs = append(xs, float32(i)*1e-4)
	}
	return append(xs, 1e-30, -1e-30, 1e-8, -1e-8, 50, -50, 1e4, -1e4, 3e38, -3e38,
		float32(math.Inf(1)), float32(math.Inf(-1)))
}

func TestFastMathAccuracy(t *testing.T) {
	gelu := func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
	geluGrad := func(x float64) float64 {
		return 0.5*(1+math.Erf(x/math.Sqrt2)) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
	}
	pdf := func(x float64) float64 { return math.Exp(-0.5*x*x) / math.Sqrt(2*math.Pi) }
	cases := []struct {
		name string
		fast func(float32) float32
		ref  func(float64) float64
		// tolerance: |fast − ref| ≤ abs + rel·|ref|
		abs, rel float64
		lo, hi   float64 // range checked
	}{
		{"TanhFast", TanhFast, math.Tanh, 5e-7, 0, math.Inf(-1), math.Inf(1)},
		{"ErfFast", ErfFast, math.Erf, 5e-7, 0, math.Inf(-1), math.Inf(1)},
		{"ExpFast", ExpFast, math.Exp, 0, 3e-7, -86, 88},
		{"GELUFast", GELUFast, gelu, 1.5e-6, 1e-6, -1e4, 1e4},
		{"GELUGradFast", GELUGradFast, geluGrad, 1e-6, 0, math.Inf(-1), math.Inf(1)},
		{"NormPDFFast", NormPDFFast, pdf, 1e-6, 0, math.Inf(-1), math.Inf(1)},
	}
	for _, c := range cases {
		worst, at := 0.0, 0.0
		for _, x := range denseGrid() {
			xd := float64(x)
			if xd < c.lo || xd > c.hi {
				continue
			}
			got, want := float64(c.fast(x)), c.ref(xd)
			excess := math.Abs(got-want) - (c.abs + c.rel*math.Abs(want))
			if math.IsNaN(got) || excess > worst {
				worst, at = math.Max(excess, worst), xd
				t.Errorf("%s(%g) = %.9g, want %.9g", c.name, xd, got, want)
			}
		}
		_ = at
	}
}

func TestFastMathSpecial(t *testing.T) {
	nan := float32(math.NaN())
	for name, f := range map[string]func(float32) float32{"GELUFast": GELUFast, "ExpFast": ExpFast} {
		if v := f(nan); !math.IsNaN(float64(v)) {
			t.Errorf("%s(NaN) = %v, want NaN", name, v)
		}
	}
	if v := ExpFast(-1000); v <= 0 || v > 1e-37 {
		t.Errorf("ExpFast(-1000) = %v, want tiny positive", v)
	}
	if v := ExpFast(1000); math.IsInf(float64(v), 0) || v < 1e38 {
		t.Errorf("ExpFast(1000) = %v, want exp(88)", v)
	}
	if v := TanhFast(0); v != 0 {
		t.Errorf("TanhFast(0) = %v", v)
	}
	// odd symmetry is exact for the rational forms
	for _, x := range []float32{0.1, 0.5, 1, 2.5, 7} {
		if TanhFast(-x) != -TanhFast(x) || ErfFast(-x) != -ErfFast(x) {
			t.Errorf("not odd at %v", x)
		}
	}
}

// The slice forms must agree bit for bit with the scalar ones.
func TestFastMathSlices(t *testing.T) {
	xs := denseGrid()
	got := make([]float32, len(xs))
	check := func(name string, f func(float32) float32) {
		for i, x := range xs {
			if w := f(x); got[i] != w && !(w != w && got[i] != got[i]) {
				t.Fatalf("%s(%g): slice %v, scalar %v", name, x, got[i], w)
			}
		}
	}
	TanhFastSlice(got, xs)
	check("TanhFastSlice", TanhFast)
	ErfFastSlice(got, xs, 0.5)
	check("ErfFastSlice", func(x float32) float32 { return ErfFast(x * 0.5) })
	NormPDFFastSlice(got, xs)
	check("NormPDFFastSlice", NormPDFFast)
	in := append([]float32(nil), xs...)
	TanhFastSlice(in, in) // aliasing is allowed
	if in[1234] != TanhFast(xs[1234]) {
		t.Fatal("TanhFastSlice in place")
	}
}

var sinkF32 float32

func benchFast(b *testing.B, f func(float32) float32) {
	xs := make([]float32, 1024)
	for i := range xs {
		xs[i] = float32(i-512) / 100
	}
	b.ResetTimer()
	var s float32
	for i := 0; i < b.N; i++ {
		for _, x := range xs {
			s += f(x)
		}
	}
	sinkF32 = s
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/elem")
}

func BenchmarkTanhFast(b *testing.B)     { benchFast(b, TanhFast) }
func BenchmarkErfFast(b *testing.B)      { benchFast(b, ErfFast) }
func BenchmarkExpFast(b *testing.B)      { benchFast(b, ExpFast) }
func BenchmarkGELUFast(b *testing.B)     { benchFast(b, GELUFast) }
func BenchmarkGELUGradFast(b *testing.B) { benchFast(b, GELUGradFast) }
func BenchmarkNormPDFFast(b *testing.B)  { benchFast(b, NormPDFFast) }
func BenchmarkTanhMath(b *testing.B)     { benchFast(b, Tanh) }
func BenchmarkGELUMath(b *testing.B)     { benchFast(b, GELU) }

func benchSlice(b *testing.B, f func(dst, x []float32)) {
	xs := make([]float32, 1024)
	for i := range xs {
		xs[i] = float32(i-512) / 100
	}
	dst := make([]float32, len(xs))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f(dst, xs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1024, "ns/elem")
}

func BenchmarkTanhFastSlice(b *testing.B)    { benchSlice(b, TanhFastSlice) }
func BenchmarkNormPDFFastSlice(b *testing.B) { benchSlice(b, NormPDFFastSlice) }
func BenchmarkErfFastSlice(b *testing.B) {
	benchSlice(b, func(dst, x []float32) { ErfFastSlice(dst, x, invSqrt2) })
}

// TestVectorKernelsBitIdentical checks that the slice kernels (vectorised C loops
// in the cgo build, Go loops in the pure-Go build) give exactly the scalar
// functions' results, so parity does not depend on which one ran.
func TestVectorKernelsBitIdentical(t *testing.T) {
	n := 20001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i-n/2) * 0.0013
	}
	x[0], x[1], x[2], x[3], x[4] = 30, -30, 0, 100, -100
	x[5], x[6], x[7] = float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())
	got := make([]float32, n)
	kernels := []struct {
		name   string
		slice  func(d, x []float32)
		scalar func(float32) float32
	}{
		{"tanh", TanhFastSlice, TanhFast},
		{"erf", func(d, x []float32) { ErfFastSlice(d, x, invSqrt2) }, func(v float32) float32 { return ErfFast(v * invSqrt2) }},
		{"normpdf", NormPDFFastSlice, NormPDFFast},
		{"exp", ExpFastSlice, ExpFast},
	}
	for _, k := range kernels {
		k.slice(got, x)
		for i, v := range x {
			want := k.scalar(v)
			if want != want && got[i] != got[i] {
				continue // NaN payloads may differ
			}
			if math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("%s(%v): slice %v, scalar %v", k.name, v, got[i], want)
			}
		}
	}
}

func TestExpSliceAndReLU(t *testing.T) {
	n := 5001
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i-n/2) * 0.04
	}
	got := make([]float32, n)
	ExpFastSlice(got, x)
	for i, v := range x {
		if w := ExpFast(v); math.Float32bits(got[i]) != math.Float32bits(w) {
			t.Fatalf("ExpFastSlice(%v) = %v, ExpFast %v", v, got[i], w)
		}
	}
	y := append([]float32(nil), x...)
	ReLUInPlace(y)
	for i, v := range x {
		if want := max(v, 0); y[i] != want {
			t.Fatalf("relu(%v) = %v", v, y[i])
		}
	}
}
