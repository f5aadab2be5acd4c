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

// image builds a safetensors file from a raw JSON header and data section.
func image(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(out, header...), data...)
}

// TestOverflowingShape: a shape whose byte size overflows int64 once panicked
// (makeslice: len out of range) or was reported as needing 0 bytes.
func TestOverflowingShape(t *testing.T) {
	cases := []struct {
		name, shape string
		offsets     string
	}{
		{"2^62 x 2^62", "[4611686018427387904,4611686018427387904]", "[0,0]"},
		{"wraps to 4 bytes", "[4611686018427387905]", "[0,4]"},
		{"wraps to 0 bytes", "[4611686018427387904]", "[0,0]"},
		{"three dims", "[2147483648,2147483648,2]", "[0,0]"},
	}
	for _, c := range cases {
		img := image(`{"w":{"dtype":"F32","shape":`+c.shape+`,"data_offsets":`+c.offsets+`}}`, make([]byte, 4))
		_, err := Parse(img)
		if err == nil || !strings.Contains(err.Error(), "needs more than 2^63 bytes") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line saying it needs more than 2^63 bytes", c.name, err)
		}
	}
	// A zero dimension makes any other size harmless.
	f, err := Parse(image(`{"w":{"dtype":"F32","shape":[4611686018427387904,0],"data_offsets":[0,0]}}`, nil))
	if err != nil || len(f.Floats["w"].Data) != 0 {
		t.Errorf("zero-size tensor: %v", err)
	}
}

// FuzzRead: the reader never panics, and what it accepts is consistent.
func FuzzRead(f *testing.F) {
	good, err := Encode(map[string]*tensor.Tensor{"w": tensor.From([]float32{1, 2, 3, 4}, 2, 2)},
		map[string]IntTensor{"ids": {Shape: []int{3}, Data: []int64{1, 2, 3}}}, map[string]string{"k": "v"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(image(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}}`, make([]byte, 6)))
	f.Add(image(`{"w":{"dtype":"I8","shape":[4611686018427387905],"data_offsets":[0,4]}}`, make([]byte, 4)))
	fixtures, _ := filepath.Glob("../../testdata/fixtures/*.safetensors")
	for _, p := range fixtures {
		if raw, err := os.ReadFile(p); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		file, err := Parse(raw)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			return
		}
		for name, x := range file.Floats {
			if tensor.Numel(x.Shape) != len(x.Data) {
				t.Errorf("%s: shape %v, %d values", name, x.Shape, len(x.Data))
			}
		}
		for name, x := range file.Ints {
			if tensor.Numel(x.Shape) != len(x.Data) {
				t.Errorf("%s: shape %v, %d values", name, x.Shape, len(x.Data))
			}
		}
	})
}
