package num

import "sync"

// Scratch vectors (ODE stage derivatives, a stage's intermediate activations) are reused
// from one call to the next: at the seed's size they are 4 MB each, ten per
// dopri5 solve, and allocating them afresh cost thousands of page faults per
// call once the Go runtime had returned the previous ones to the OS. The pool
// keeps at most maxPooled bytes.
const maxPooled = 512 << 20

var bufs struct {
	sync.Mutex
	free  map[int][][]float32
	bytes int
}

// GetBuf returns a vector of length n; its contents are stale.
func GetBuf(n int) []float32 {
	bufs.Lock()
	defer bufs.Unlock()
	if l := bufs.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		bufs.free[n] = l[:len(l)-1]
		bufs.bytes -= 4 * n
		return b
	}
	return make([]float32, n)
}

// PutBuf returns vectors to the pool; the caller must not use them again.
func PutBuf(vs ...[]float32) {
	bufs.Lock()
	defer bufs.Unlock()
	if bufs.free == nil {
		bufs.free = map[int][][]float32{}
	}
	for _, v := range vs {
		if v == nil || bufs.bytes+4*len(v) > maxPooled {
			continue
		}
		bufs.free[len(v)] = append(bufs.free[len(v)], v)
		bufs.bytes += 4 * len(v)
	}
}
