package num

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestLogSumExp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 5000)
	mx := float32(-1e9)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 5)
		mx = max(mx, x[i])
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v))
	}
	want := math.Log(s)
	dst := make([]float32, len(x))
	for _, d := range [][]float32{nil, dst} {
		if got := LogSumExp(x, mx, d, 1); math.Abs(got-want) > 1e-5 {
			t.Errorf("LogSumExp = %g, want %g", got, want)
		}
	}
	var sum float64
	for i, v := range dst {
		sum += float64(v)
		if w := math.Exp(float64(x[i]) - want); math.Abs(float64(v)-w) > 1e-5*w+1e-9 {
			t.Fatalf("softmax[%d] = %g, want %g", i, v, w)
		}
	}
	if math.Abs(sum-1) > 1e-5 {
		t.Errorf("softmax sums to %g", sum)
	}
	// With a scale, dst is the softmax times it, rounded twice: the bits of
	// multiplying the unscaled softmax afterwards (what CrossEntropy did).
	scaled := make([]float32, len(x))
	const sc = float32(1.0 / 4096)
	LogSumExp(x, mx, scaled, sc)
	for i := range scaled {
		if w := dst[i] * sc; scaled[i] != w {
			t.Fatalf("scaled softmax[%d] = %g, want %g", i, scaled[i], w)
		}
	}
}

func BenchmarkLogSumExp32000(b *testing.B) {
	x := make([]float32, 32000)
	for i := range x {
		x[i] = float32(i%97) * 0.01
	}
	dst := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		LogSumExp(x, 1, dst, 1)
	}
}

func TestMaxArg(t *testing.T) {
	x := []float32{1, 5, -2, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 1}
	if m, a := MaxArg(x); m != 7 || a != 17 {
		t.Errorf("MaxArg = %v, %v", m, a)
	}
	if m, a := MaxArg(x[:5]); m != 5 || a != 1 {
		t.Errorf("MaxArg = %v, %v", m, a)
	}
	// The first of several maxima, in the vectorised part and in the tail.
	y := make([]float32, 45)
	for i := range y {
		y[i] = float32(i % 9)
	}
	for _, n := range []int{45, 44, 9, 8, 7} {
		wantM, wantA := float32(-1), -1
		for i, v := range y[:n] {
			if v > wantM {
				wantM, wantA = v, i
			}
		}
		if m, a := MaxArg(y[:n]); m != wantM || a != wantA {
			t.Errorf("MaxArg(y[:%d]) = %v, %v, want %v, %v", n, m, a, wantM, wantA)
		}
	}
}

func BenchmarkMaxArg32000(b *testing.B) {
	x := make([]float32, 32000)
	for i := range x {
		x[i] = float32(i%97) * 0.01
	}
	x[31000] = 5
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		MaxArg(x)
	}
}

// BenchmarkLossBlock is the cross-entropy consumer's arithmetic over one head
// block (1024 rows of 32000 logits, the rows split over the cores): arg-max,
// then softmax in place as training writes it (after the first pass the rows
// hold a softmax, which costs the same). rows=block reads every row from
// memory (the head's case: the block is 131 MB); rows=cached repeats each
// part's first row, so the difference is the memory traffic. Bytes are set
// for rows=block only.
func BenchmarkLossBlock(b *testing.B) {
	const rows, v = 1024, 32000
	x := make([]float32, rows*v)
	for i := range x {
		x[i] = float32(i%97) * 0.01
	}
	for _, mode := range []string{"block", "cached"} {
		b.Run("rows="+mode, func(b *testing.B) {
			if mode == "block" {
				b.SetBytes(4 * rows * v)
			}
			for b.Loop() {
				ParallelRows(rows, 4*v, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						r := i
						if mode == "cached" {
							r = lo
						}
						row := x[r*v : (r+1)*v]
						mx, _ := MaxArg(row)
						LogSumExp(row, mx, row, 1)
					}
				})
			}
		})
	}
}
