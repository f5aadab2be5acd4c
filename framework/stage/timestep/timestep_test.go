package timestep

import (
	"math"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func TestSteps(t *testing.T) {
	ts := tensor.From([]float32{0.1, 0.3, 0.3, 0.5, 0.6, 1.3}, 2, 3)
	got, err := Steps(Spec{Name: "x", DtScale: 10, DtMin: 1}, ts, []float32{0, 0.5}, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{2, 3, 1, 1, 2, 8}
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-5 {
			t.Fatalf("Δ = %v, want %v", got, want)
		}
	}
	if _, err := Steps(Spec{Name: "x", DtScale: 10, DtMin: 1}, ts, []float32{0, 0.9}, 2, 3); err == nil ||
		!strings.Contains(err.Error(), `x: input "timestamps"[1,0]`) {
		t.Errorf("a timestamp going back: %v", err)
	}
	c, _ := Steps(Spec{Constant: true, DtConst: 0.7}, nil, nil, 1, 2)
	if c[0] != 0.7 || c[1] != 0.7 {
		t.Errorf("constant Δ %v", c)
	}
}

func TestInitialState(t *testing.T) {
	req := &stage.ForwardRequest{Inputs: tensor.Map{stage.PortH: tensor.From([]float32{1, 2}, 1, 2)}}
	h, lt, err := InitialState("x", req, 1, 2)
	if err != nil || h[1] != 2 || lt[0] != 0 {
		t.Fatalf("from the input: %v %v %v", h, lt, err)
	}
	req.State = tensor.Map{stage.PortH: tensor.From([]float32{3, 4}, 1, 2)}
	if _, _, err := InitialState("x", req, 1, 2); err == nil || !strings.Contains(err.Error(), "x: carried state") {
		t.Errorf("h carried without last_ts: %v", err)
	}
	req.State[StateLastTS] = tensor.From([]float32{0.5}, 1)
	h, lt, err = InitialState("x", req, 1, 2)
	if err != nil || h[0] != 3 || lt[0] != 0.5 {
		t.Errorf("carried: %v %v %v", h, lt, err)
	}
}
