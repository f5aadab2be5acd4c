package stage

import "testing"

func TestHandles(t *testing.T) {
	var h Handles
	a, b := h.Put("a"), h.Put("b")
	if a == 0 || a == b || h.Len() != 2 {
		t.Fatalf("handles %d %d len %d", a, b, h.Len())
	}
	if v, err := h.Take(a); err != nil || v != "a" {
		t.Errorf("Take = %v, %v", v, err)
	}
	if _, err := h.Take(a); err == nil {
		t.Error("a handle was taken twice")
	}
	h.Drop(b)
	h.Drop(b)
	if h.Len() != 0 {
		t.Errorf("len %d after drop", h.Len())
	}
}

func TestConfigString(t *testing.T) {
	a := Config{Dims: map[string]int{"x": 1, "y": 2}, Options: map[string]string{"m": "a b"}}
	b := Config{Dims: map[string]int{"y": 2, "x": 1}, Options: map[string]string{"m": "a b"}}
	if a.String() != b.String() {
		t.Errorf("%q != %q", a.String(), b.String())
	}
	if _, err := a.Dim("z"); err == nil {
		t.Error("missing dimension accepted")
	}
}
