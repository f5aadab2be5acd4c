package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestAdamWMatchesReference checks two steps against values computed by hand
// from torch.optim.AdamW's update rule.
func TestAdamWMatchesReference(t *testing.T) {
	p := &model.Param{Name: "w", Value: tensor.From([]float32{1, -2}, 2), Grad: tensor.From([]float32{0.5, -0.25}, 2), Spec: stage.ParamSpec{Name: "w"}}
	ps := &model.Params{List: []*model.Param{p}}
	o := NewAdamW(0.1, 0.01)
	want := []float64{1, -2}
	m, v := []float64{0, 0}, []float64{0, 0}
	g := []float64{0.5, -0.25}
	for step := 1; step <= 2; step++ {
		o.Step(ps, 0.1)
		for i := range want {
			want[i] *= 1 - 0.1*0.01
			m[i] = 0.9*m[i] + 0.1*g[i]
			v[i] = 0.999*v[i] + 0.001*g[i]*g[i]
			mh := m[i] / (1 - math.Pow(0.9, float64(step)))
			vh := v[i] / (1 - math.Pow(0.999, float64(step)))
			want[i] -= 0.1 * mh / (math.Sqrt(vh) + 1e-8)
		}
	}
	for i := range want {
		if math.Abs(float64(p.Value.Data[i])-want[i]) > 5e-6 {
			t.Errorf("w[%d] = %v, want %v", i, p.Value.Data[i], want[i])
		}
	}
}

func TestClipAndSchedule(t *testing.T) {
	p := &model.Param{Name: "w", Value: tensor.New(2), Grad: tensor.From([]float32{3, 4}, 2)}
	ps := &model.Params{List: []*model.Param{p}}
	if n := ClipGradNorm(ps, 1); math.Abs(n-5) > 1e-9 {
		t.Errorf("norm %v", n)
	}
	if math.Abs(float64(p.Grad.Data[0])-0.6) > 1e-5 {
		t.Errorf("clipped %v", p.Grad.Data)
	}
	s := Schedule{LR: 1, Warmup: 4, StepEvery: 10, Gamma: 0.1}
	for _, c := range []struct {
		t    int
		want float64
	}{{0, 0.25}, {3, 1}, {9, 1}, {10, 0.1}, {25, 0.01}} {
		if got := s.At(c.t); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("At(%d) = %v, want %v", c.t, got, c.want)
		}
	}
}

// TestAdamWKernelBits: the vector paths (AVX-512, AVX2 where the CPU has
// them) and the scalar loop give the Go rule's bits, tails included.
func TestAdamWKernelBits(t *testing.T) {
	defer func(p int) { adamwPath = p }(adamwPath)
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 16*40 + 8 + 5
	base := make([][]float32, 4)
	for k := range base {
		base[k] = make([]float32, n)
		for i := range base[k] {
			base[k][i] = float32(rng.NormFloat64())
			if k == 3 {
				base[k][i] *= base[k][i] // v ≥ 0
			}
		}
	}
	run := func(kernel func(w, g, m, v []float32, b1, b2, decay, step, isb, eps float32)) [][]float32 {
		w, g, m, v := slices.Clone(base[0]), base[1], slices.Clone(base[2]), slices.Clone(base[3])
		for s := 0; s < 3; s++ {
			kernel(w, g, m, v, 0.9, 0.999, 1-1e-3*0.01, 1e-3/0.1, 1/float32(math.Sqrt(1e-3)), 1e-8)
		}
		return [][]float32{w, m, v}
	}
	want := run(adamwRule)
	for _, path := range []int{0, 1, 2} {
		adamwPath = path
		got := run(adamwKernel)
		for k, name := range []string{"w", "m", "v"} {
			for i := range got[k] {
				if math.Float32bits(got[k][i]) != math.Float32bits(want[k][i]) {
					t.Fatalf("path %d: %s[%d] = %v, want %v (the Go rule's bits)", path, name, i, got[k][i], want[k][i])
				}
			}
		}
	}
}

// BenchmarkAdamW is one step over 4 Mi parameters on one core (the seed has
// 25 million, split over the cores).
// Sub-benchmarks by path: scalar is the loop gcc made of the C before.
func BenchmarkAdamW(b *testing.B) {
	for _, path := range []struct {
		name string
		p    int
	}{{"scalar", 0}, {"avx2", 1}, {"widest", 2}} {
		b.Run(path.name, func(b *testing.B) {
			defer func(p int) { adamwPath = p }(adamwPath)
			adamwPath = path.p
			benchAdamW(b)
		})
	}
}

func benchAdamW(b *testing.B) {
	const n = 4 << 20
	w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range w {
		w[i], g[i] = 0.01*float32(i%7), 1e-3*float32(i%5)
	}
	b.SetBytes(7 * 4 * n) // reads w, g, m, v; writes w, m, v
	for b.Loop() {
		adamwKernel(w, g, m, v, 0.9, 0.999, 0.99, 1e-3, 1, 1e-8)
	}
}
