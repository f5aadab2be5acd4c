package causal

import (
	"sync/atomic"

	"liquidlab/framework/num"
)

// Shared by the kernels: how work is split among the cores.

// task is a share of the work: batch row b, head h, items j0, j0+step, ….
// Tasks of one (b,h) split across workers interleave their queries (so the
// longer rows of full attention are shared evenly) and accumulate key and value
// gradients in private buffers.
type task struct {
	b, h, j0, step int
	priv           int // index of the private gradient buffers, or -1
}

// tasks splits B·heads·n work items (query blocks) among the cores.
func tasks(B, heads, Sc int) (ts []task, nPriv int) {
	p := num.Workers()
	parts := 1
	if B*heads < p {
		parts = min(Sc, (p+B*heads-1)/(B*heads))
	}
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			for k := 0; k < parts; k++ {
				t := task{b: b, h: h, j0: k, step: parts, priv: -1}
				if parts > 1 {
					t.priv = nPriv
					nPriv++
				}
				ts = append(ts, t)
			}
		}
	}
	return ts, nPriv
}

// run calls fn for every task on up to num.Workers() goroutines, each with its
// own worker index; work is the rough flop count (small jobs run inline).
func run(ts []task, work float64, fn func(w int, t task)) {
	p := min(num.Workers(), len(ts))
	if p <= 1 || work < 1<<17 {
		for _, t := range ts {
			fn(0, t)
		}
		return
	}
	var next atomic.Int64
	num.Parallel(p, func(w int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(ts) {
				return
			}
			fn(w, ts[i])
		}
	})
}

// grow returns s resized to n, reallocating when it is too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n, n+n/4)
	}
	return s[:n]
}
