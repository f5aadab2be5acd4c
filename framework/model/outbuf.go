package model

import (
	"context"
	"sync"

	"liquidlab/framework/stage"
)

// outArena gives an in-process stage's returned tensors (stage.OutputBuf)
// memory that is reused from call to call, as a plugin's reply region is:
// a fresh slice costs a page fault per 4 KiB once the Go runtime has handed
// freed memory back to the system (about 10 µs each on the README's
// machine). What one call gets is valid until the same stage's next call of
// the same method begins — the rule the model already keeps for plugins'
// lent replies (plugin.Options.LendOutputs).
//
// The model uses it for every Forward and Backward. A training Forward's
// outputs are the next stage's inputs, which that stage may keep under its
// handle until its Backward — but Run runs each chunk's Backward steps before
// the next chunk's Forward, and a chunk's handles end with it, so the next
// call of the same Forward comes after every use (TestTrainOutputsArena).
type outArena struct {
	mu   sync.Mutex
	slab []float32
	off  int // floats handed out in the current call
	used int // the current call's total, including what did not fit
	need int // the largest total of a call so far
}

// begin starts a call: the slab is reused from its start, grown first when
// an earlier call needed more than it holds.
func (a *outArena) begin() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.need > len(a.slab) {
		a.slab = make([]float32, a.need+a.need/4)
	}
	a.off, a.used = 0, 0
}

// alloc is the call's allocator: n zeroed values, or nil (OutputBuf then
// makes a slice) when the slab is full; the next call's slab is larger.
func (a *outArena) alloc(n int) []float32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	size := (n + 15) &^ 15 // 64-byte aligned offsets
	a.used += size
	a.need = max(a.need, a.used)
	if a.off+size > len(a.slab) {
		return nil
	}
	v := a.slab[a.off : a.off+n : a.off+n]
	a.off += size
	clear(v)
	return v
}

// outputs returns ctx with the allocator of kind's arena for method, the
// call beginning now.
func (m *Model) outputs(ctx context.Context, kind, method string) context.Context {
	if m.scratch.outs == nil {
		m.scratch.outs = map[string]*outArena{}
	}
	key := kind + "." + method
	a := m.scratch.outs[key]
	if a == nil {
		a = &outArena{}
		m.scratch.outs[key] = a
	}
	a.begin()
	return stage.WithOutputs(ctx, a.alloc)
}
