//go:build cgo && !noopenblas

package num

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestLogSumExpPaths: the AVX-512F path of LogSumExp and MaxArg gives the
// AVX2 path's bits — the log-sum-exp, every softmax value and the argmax — on
// lengths with and without a tail, large and small values, a NaN and ties, so
// a result does not depend on which of the two the CPU runs.
func TestLogSumExpPaths(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		t.Skip("needs AVX-512F and AVX2+FMA to compare the paths")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 15, 16, 17, 31, 32, 33, 1023, 1024, 1040, 16400, 32000, 32017} {
		for trial := 0; trial < 3; trial++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 8)
			}
			switch trial {
			case 1: // extremes: clamped on both sides
				x[rng.IntN(n)] = 300
				x[rng.IntN(n)] = -300
			case 2: // ties for the maximum, and a NaN (skipped by the max)
				x[n/2], x[n-1] = 50, 50
				if n > 3 {
					x[1] = float32(math.NaN())
				}
			}
			m1, a1 := maxArgOn(1, x)
			m2, a2 := maxArgOn(2, x)
			if math.Float32bits(m1) != math.Float32bits(m2) || a1 != a2 {
				t.Fatalf("n=%d trial %d: MaxArg AVX2 %v@%d, AVX-512 %v@%d", n, trial, m1, a1, m2, a2)
			}
			d1, d2 := make([]float32, n), make([]float32, n)
			l1 := lseOn(1, x, m1, d1, 1.0/4096)
			l2 := lseOn(2, x, m1, d2, 1.0/4096)
			if math.Float64bits(l1) != math.Float64bits(l2) && !(math.IsNaN(l1) && math.IsNaN(l2)) {
				t.Fatalf("n=%d trial %d: LogSumExp AVX2 %v, AVX-512 %v", n, trial, l1, l2)
			}
			for i := range d1 {
				if math.Float32bits(d1[i]) != math.Float32bits(d2[i]) {
					t.Fatalf("n=%d trial %d: softmax[%d] AVX2 %v, AVX-512 %v", n, trial, i, d1[i], d2[i])
				}
			}
			if trial == 0 { // against the generic C path: same sums to float32's error
				g := lseOn(0, x, m1, nil, 1)
				if math.Abs(g-l1) > 1e-5*math.Max(1, math.Abs(g)) {
					t.Fatalf("n=%d: LogSumExp generic %v, AVX2 %v", n, g, l1)
				}
			}
		}
	}
}

// TestMaxArgPaths: every C path of MaxArg — generic, AVX2, AVX-512F — gives
// the pure-Go loop's value and index (NaNs skipped, the first maximum, a zero
// maximum with its first occurrence's sign) on rows where a NaN follows the
// maximum in its lane, rows of zeros of both signs, −Inf and all-NaN rows.
func TestMaxArgPaths(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX2 {
		t.Skip("needs AVX-512F and AVX2 to compare the paths")
	}
	ref := func(x []float32) (float32, int) { // vexp_purego.go's MaxArg
		m, arg := float32(math.Inf(-1)), -1
		for j, v := range x {
			if v > m || (arg < 0 && v == m) {
				m, arg = v, j
			}
		}
		return m, max(arg, 0)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	var rows [][]float32
	r := make([]float32, 64) // a NaN after the maximum in the same lane of 16 and of 32
	r[0], r[16], r[32] = 5, nan, nan
	rows = append(rows, r)
	rng := rand.New(rand.NewPCG(7, 8))
	pick := []float32{0, negZero, -inf, -1, nan}
	for k := 0; k < 3000; k++ {
		n := 1 + rng.IntN(100)
		x := make([]float32, n)
		for i := range x {
			x[i] = pick[rng.IntN(len(pick))]
			if k%3 == 0 && rng.IntN(8) == 0 {
				x[i] = float32(rng.NormFloat64())
			}
		}
		rows = append(rows, x)
	}
	rows = append(rows, []float32{nan, nan, nan}, make([]float32, 40))
	for _, x := range rows {
		wm, wa := ref(x)
		for path := 0; path <= 2; path++ {
			m, a := maxArgOn(path, x)
			if math.Float32bits(m) != math.Float32bits(wm) || a != wa {
				t.Fatalf("path %d on %v: %v@%d, want %v@%d", path, x, m, a, wm, wa)
			}
		}
		if m, a := MaxArg(x); math.Float32bits(m) != math.Float32bits(wm) || a != wa {
			t.Fatalf("MaxArg on %v: %v@%d, want %v@%d", x, m, a, wm, wa)
		}
	}
}
