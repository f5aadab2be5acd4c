package causal

import (
	"sync"
	"weak"
)

// The growing caches (full, lsh) keep every key and value. Chunk by chunk,
// copying the cache into a new state buffer would keep two copies alive and
// leave one as garbage per chunk: at 32k tokens in chunks of 1024 an
// evaluation peaked at 241 MB against 74 MB at 4k, for a cache of 32 MB.
// Instead, the state a chunk returns is the buffer its attention ran on, and
// for a batch of one row it has spare capacity (rows rounded up to a power of
// two) that the next chunk appends to in place.
//
// A state passed in is never modified (Stream relies on it to retry a failed
// Feed): appending writes only past its length, and only into a buffer this
// stage allocated and whose region past that length no other state handed out
// covers. owner keeps that record.

// owner records the growing caches a stage handed out as state, by weak
// pointer (a record never keeps a cache alive).
type owner struct {
	mu   sync.Mutex
	recs [8]ownRec // the most recent; an older cache falls back to a copy
	next int
}

type ownRec struct {
	k, v weak.Pointer[float32]
	n    int // floats in use: the length of the last state handed out
}

// claim reports whether the caches kc, vc (a state of len(kc) floats) are
// buffers this stage handed out, with no later state extending them, and
// capacity for n floats; if so it records them as extended to n, so a second
// claim of the same state (a retried or forked stream) copies instead.
func (w *owner) claim(kc, vc []float32, n int) bool {
	if len(kc) == 0 || len(kc) != len(vc) || cap(kc) < n || cap(vc) < n {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.recs {
		r := &w.recs[i]
		if r.k.Value() == &kc[0] && r.v.Value() == &vc[0] && r.n == len(kc) {
			r.n = n
			return true
		}
	}
	return false
}

// record notes new caches handed out with n floats in use.
func (w *owner) record(kc, vc []float32, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recs[w.next] = ownRec{k: weak.Make(&kc[0]), v: weak.Make(&vc[0]), n: n}
	w.next = (w.next + 1) % len(w.recs)
}

// growCaches returns the [B,T,H] key and value caches of a growing pattern's
// chunk (T = n0 + Sc rows per batch row) and whether they extend st's in
// place (rows < n0 already hold the cache). Otherwise they are new, the
// caller copies the old rows in; a batch of one row gets room for a power of
// two rows, larger batches exactly T (their rows are interleaved per batch
// row, so appending would move them anyway).
func (w *owner) growCaches(st *carry, B, n0, T, H int) (kc, vc []float32, inPlace bool) {
	n := B * T * H
	if B == 1 && n0 > 0 && w.claim(st.kc[:n0*H], st.vc[:n0*H], n) {
		return st.kc[:n], st.vc[:n], true
	}
	c := n
	if B == 1 {
		c = pow2(T) * H
	}
	kc, vc = make([]float32, n, c), make([]float32, n, c)
	if B == 1 {
		w.record(kc, vc, n)
	}
	return kc, vc, false
}
