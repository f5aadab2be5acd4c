package num

import (
	"math/bits"
	"sync"
)

// Scratch vectors (ODE stage derivatives, a stage's intermediate activations) are reused
// from one call to the next: at the seed's size they are 4 MB each, ten per
// dopri5 solve, and allocating them afresh cost thousands of page faults per
// call once the Go runtime had returned the previous ones to the OS. The pool
// keeps at most maxPooled bytes, in size classes (lengths with four
// significant bits: at most 12.5% over the length asked for), so batches of
// many lengths (data.min_seq_len) reuse each other's vectors; when it is full
// a vector of one class evicts vectors of others, so it never holds more.
const maxPooled = 512 << 20

var bufs struct {
	sync.Mutex
	free  map[int][][]float32 // by class length; every vector has exactly that length
	bytes int
}

// classUp is the smallest class length ≥ n; classDown the largest ≤ n.
func classUp(n int) int {
	if n <= 16 {
		return n
	}
	shift := bits.Len(uint(n)) - 4
	c := (n + 1<<shift - 1) >> shift << shift
	return c
}

func classDown(n int) int {
	if n <= 16 {
		return n
	}
	shift := bits.Len(uint(n)) - 4
	return n >> shift << shift
}

// GetBuf returns a vector of length n; its contents are stale.
func GetBuf(n int) []float32 {
	c := classUp(n)
	bufs.Lock()
	defer bufs.Unlock()
	if l := bufs.free[c]; len(l) > 0 {
		b := l[len(l)-1]
		bufs.free[c] = l[:len(l)-1]
		bufs.bytes -= 4 * c
		return b[:n]
	}
	return make([]float32, n, c)
}

// PutBuf returns vectors to the pool; the caller must not use them again.
func PutBuf(vs ...[]float32) {
	bufs.Lock()
	defer bufs.Unlock()
	if bufs.free == nil {
		bufs.free = map[int][][]float32{}
	}
	for _, v := range vs {
		if cap(v) == 0 || 4*cap(v) > maxPooled {
			continue
		}
		c := classDown(cap(v))
		for k, l := range bufs.free {
			if bufs.bytes+4*c <= maxPooled {
				break
			}
			if k != c {
				bufs.bytes -= 4 * k * len(l)
				delete(bufs.free, k)
			}
		}
		if bufs.bytes+4*c > maxPooled {
			continue
		}
		bufs.free[c] = append(bufs.free[c], v[:c])
		bufs.bytes += 4 * c
	}
}

// DropBufs empties the pool (before a memory measurement).
func DropBufs() {
	bufs.Lock()
	defer bufs.Unlock()
	bufs.free, bufs.bytes = nil, 0
}
