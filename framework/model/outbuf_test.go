package model

import (
	"context"
	"testing"
	"unsafe"

	"liquidlab/framework/stage"
)

// TestOutArena: a call's OutputBuf vectors come zeroed from the stage's
// slab, 64-byte aligned, in the same memory call after call; what does not
// fit is made afresh and the next call's slab holds it; Forward and Backward
// of a stage have arenas of their own.
func TestOutArena(t *testing.T) {
	m := &Model{}
	call := func(method string, sizes ...int) [][]float32 {
		ctx := m.outputs(context.Background(), "ode", method)
		var vs [][]float32
		for _, n := range sizes {
			v := stage.OutputBuf(ctx, n)
			for i, x := range v {
				if x != 0 {
					t.Fatalf("%s: OutputBuf(%d)[%d] = %v, want 0", method, n, i, x)
				}
				v[i] = 7 // the next call must zero it again
			}
			vs = append(vs, v)
		}
		return vs
	}
	inSlab := func(v []float32, method string) bool {
		a := m.scratch.outs["ode."+method]
		if len(a.slab) == 0 {
			return false
		}
		p, lo := uintptr(unsafe.Pointer(&v[0])), uintptr(unsafe.Pointer(&a.slab[0]))
		return p >= lo && p < lo+4*uintptr(len(a.slab))
	}
	first := call("Forward", 5, 100)
	if inSlab(first[0], "Forward") {
		t.Fatal("the first call had no slab yet, but a vector lies in one")
	}
	second := call("Forward", 5, 100)
	third := call("Forward", 5, 100)
	for i := range second {
		if !inSlab(second[i], "Forward") || &second[i][0] != &third[i][0] {
			t.Fatalf("vector %d: not reused from the slab call after call", i)
		}
		if uintptr(unsafe.Pointer(&second[i][0]))%64 != 0 {
			t.Errorf("vector %d is not 64-byte aligned", i)
		}
		if cap(second[i]) != len(second[i]) {
			t.Errorf("vector %d has room past its end (cap %d, len %d)", i, cap(second[i]), len(second[i]))
		}
	}
	b := call("Backward", 10)
	if inSlab(b[0], "Forward") {
		t.Error("Backward's vector lies in Forward's slab")
	}
	grown := call("Forward", 5, 100, 1000) // the third does not fit: made afresh
	if inSlab(grown[2], "Forward") {
		t.Error("a vector larger than the slab's room lies in it")
	}
	again := call("Forward", 5, 100, 1000)
	if !inSlab(again[2], "Forward") {
		t.Error("the slab did not grow to hold the larger call")
	}
}

// ForwardArenaLen is the length of kind's Forward slab (for
// TestTrainOutputsArena in package model_test).
func ForwardArenaLen(m *Model, kind string) int {
	if a := m.scratch.outs[kind+".Forward"]; a != nil {
		return len(a.slab)
	}
	return 0
}
