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
		if got := LogSumExp(x, mx, d); math.Abs(got-want) > 1e-5 {
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
}

func BenchmarkLogSumExp32000(b *testing.B) {
	x := make([]float32, 32000)
	for i := range x {
		x[i] = float32(i%97) * 0.01
	}
	dst := make([]float32, len(x))
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		LogSumExp(x, 1, dst)
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
}
