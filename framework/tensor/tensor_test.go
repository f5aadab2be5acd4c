package tensor

import (
	"strings"
	"testing"
)

func TestNeed(t *testing.T) {
	m := Map{"x": New(2, 3), "bad": {Shape: []int{2}, Data: []float32{1}}}
	if _, err := m.Need("x", 2, -1); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		name  string
		shape []int
		want  string
	}{{"x", []int{3, 2}, "has shape [2 3]"}, {"y", nil, "missing"}, {"bad", []int{2}, "1 values"}} {
		if _, err := m.Need(c.name, c.shape...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Need(%s, %v) = %v, want %q", c.name, c.shape, err, c.want)
		}
	}
	if got := (Map{"b": nil, "a": nil}).Names(); got[0] != "a" {
		t.Errorf("Names not sorted: %v", got)
	}
}
