package model

import (
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func testParams(t *testing.T) *Params {
	var ps Params
	if err := ps.add("flows", "f.", stage.ParamSpec{Name: "net.0.weight", Shape: []int{2, 2}, Init: "linear_weight", Aliases: []string{"net.1.weight"}}); err != nil {
		t.Fatal(err)
	}
	if err := ps.add("liquid", "l.", stage.ParamSpec{Name: "warp", Shape: []int{2}, Init: "ones", NoGrad: true}); err != nil {
		t.Fatal(err)
	}
	return &ps
}

func TestLoadStateDict(t *testing.T) {
	ps := testParams(t)
	w := tensor.From([]float32{1, 2, 3, 4}, 2, 2)
	ok := map[string]*tensor.Tensor{"f.net.0.weight": w, "f.net.1.weight": w.Clone(), "l.warp": tensor.From([]float32{5, 6}, 2)}
	if err := ps.LoadStateDict(ok); err != nil {
		t.Fatal(err)
	}
	if ps.Get("f.net.1.weight").Value.Data[3] != 4 || ps.Get("l.warp").Grad != nil {
		t.Error("values not loaded or NoGrad parameter has a gradient")
	}
	if sd := ps.StateDict(); len(sd) != 3 {
		t.Errorf("state dict has %d names, want 3 (shared tensor under both)", len(sd))
	}
	differ := tensor.From([]float32{1, 2, 3, 5}, 2, 2)
	cases := []struct {
		sd   map[string]*tensor.Tensor
		want string
	}{
		{map[string]*tensor.Tensor{"f.net.0.weight": w, "l.warp": ok["l.warp"], "extra": w}, "does not have"},
		{map[string]*tensor.Tensor{"f.net.0.weight": w}, `lacks parameter "l.warp"`},
		{map[string]*tensor.Tensor{"f.net.0.weight": tensor.New(4), "l.warp": ok["l.warp"]}, "shape [4]"},
		{map[string]*tensor.Tensor{"f.net.0.weight": w, "f.net.1.weight": differ, "l.warp": ok["l.warp"]}, "different values"},
	}
	for _, c := range cases {
		if err := ps.LoadStateDict(c.sd); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("err = %v, want %q", err, c.want)
		}
	}
}

func TestInitDeterministic(t *testing.T) {
	a, b := testParams(t), testParams(t)
	a.Init(5)
	b.Init(5)
	for i, v := range a.List[0].Value.Data {
		if b.List[0].Value.Data[i] != v || v == 0 || v > 0.71 || v < -0.71 {
			t.Fatalf("init not deterministic or outside ±1/√2: %v", a.List[0].Value.Data)
		}
	}
}

func TestDimsValidate(t *testing.T) {
	for _, d := range []Dims{{Vocab: 1, D: 2, L: 1, H: 1, F: 1}, {Vocab: 5, D: 3, L: 1, H: 1, F: 1}, {Vocab: 5, D: 4, L: 5, H: 1, F: 1}, {Vocab: 5, D: 4, L: 2, H: 1, F: 1, K: -1}} {
		if err := d.Validate(); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
}
