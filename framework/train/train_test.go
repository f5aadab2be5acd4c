package train

import (
	"math"
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
