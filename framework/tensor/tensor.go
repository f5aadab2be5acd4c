// Package tensor is the one tensor type that crosses stage boundaries: a dense,
// row-major float32 array with a shape. It is deliberately small: kernels live in
// package num, stages in package stage. A Tensor owns nothing but its slice; who
// allocates is stated by each function that returns one.
package tensor

import (
	"fmt"
	"sort"
)

// Tensor is a dense row-major float32 array.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New allocates a zeroed tensor of the given shape.
func New(shape ...int) *Tensor {
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, Numel(shape))}
}

// From wraps data (not copied) with a shape; it panics if the sizes disagree,
// which is a programmer error.
func From(data []float32, shape ...int) *Tensor {
	if Numel(shape) != len(data) {
		panic(fmt.Sprintf("tensor: %d values for shape %v", len(data), shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}
}

// Numel is the number of elements of a shape (1 for a scalar shape []).
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// SameShape reports whether two shapes are equal.
func SameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Map is a set of named tensors, the unit that crosses a stage boundary.
type Map map[string]*Tensor

// Names returns the map's keys, sorted.
func (m Map) Names() []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Need returns m[name] and checks its shape; -1 in want matches any size.
func (m Map) Need(name string, want ...int) (*Tensor, error) {
	t, ok := m[name]
	if !ok || t == nil {
		return nil, fmt.Errorf("missing tensor %q", name)
	}
	if want != nil {
		ok := len(t.Shape) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = want[i] < 0 || want[i] == t.Shape[i]
		}
		if !ok {
			return nil, fmt.Errorf("tensor %q has shape %v, want %v", name, t.Shape, want)
		}
	}
	if len(t.Data) != Numel(t.Shape) {
		return nil, fmt.Errorf("tensor %q has %d values for shape %v", name, len(t.Data), t.Shape)
	}
	return t, nil
}
