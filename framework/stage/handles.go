package stage

import (
	"fmt"
	"sync"
)

// Handles keeps what forward passes saved for their backward passes, keyed by the
// handle returned to the host. Stage implementations embed one. Safe for
// concurrent use.
type Handles struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]any
}

// Put stores v and returns its handle (never 0).
func (h *Handles) Put(v any) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[uint64]any{}
	}
	h.next++
	h.m[h.next] = v
	return h.next
}

// Take removes and returns the value of a handle.
func (h *Handles) Take(id uint64) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[id]
	if !ok {
		return nil, fmt.Errorf("unknown or already released handle %d", id)
	}
	delete(h.m, id)
	return v, nil
}

// Drop removes a handle; dropping an unknown handle is not an error.
func (h *Handles) Drop(id uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.m, id)
}

// Len is the number of live handles (tests use it to find leaks).
func (h *Handles) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}
