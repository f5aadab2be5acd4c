package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/tensor"
)

func TestRoundTrip(t *testing.T) {
	fl := map[string]*tensor.Tensor{"a.weight": tensor.From([]float32{1, -2.5, 3, 4, 5, 6}, 2, 3), "gate": tensor.From([]float32{0.25})}
	ints := map[string]IntTensor{"ids": {Shape: []int{2}, Data: []int64{7, -1}}}
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := WriteFile(p, fl, ints, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Floats["a.weight"]; !tensor.SameShape(got.Shape, []int{2, 3}) || got.Data[1] != -2.5 {
		t.Errorf("a.weight = %v", got)
	}
	if got := f.Floats["gate"]; len(got.Shape) != 0 || got.Data[0] != 0.25 {
		t.Errorf("gate = %v", got)
	}
	if got := f.Ints["ids"]; got.Data[1] != -1 {
		t.Errorf("ids = %v", got)
	}
	if f.Metadata["k"] != "v" {
		t.Errorf("metadata = %v", f.Metadata)
	}
}

func TestReadFixture(t *testing.T) {
	f, err := ReadFile("../../testdata/fixtures/seed_rk4.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["ode_method"] != "rk4" {
		t.Errorf("metadata %v", f.Metadata)
	}
	if ids := f.Ints["input.input_ids"]; len(ids.Shape) != 2 {
		t.Errorf("input ids shape %v", ids.Shape)
	}
}

func TestCorrupt(t *testing.T) {
	good, err := Encode(map[string]*tensor.Tensor{"w": tensor.From([]float32{1, 2}, 2)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hl := binary.LittleEndian.Uint64(good[:8])
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"short", good[:4], "shorter than"},
		{"huge header", append([]byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0}, good[8:]...), "exceeds the file"},
		{"truncated data", good[:len(good)-1], `tensor "w"`},
		{"bad json", append(append([]byte{}, good[:8]...), strings.Repeat("x", int(hl))...), "not valid JSON"},
	}
	for _, c := range cases {
		_, err := Parse(c.img)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
