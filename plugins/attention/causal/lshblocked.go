package causal

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// The lsh kernel works in Reformer's sorted order. Per batch row, head and
// round, the rows of q, k, v (and, backward, of the output gradient) that the
// round's blocks use are gathered once into arrays sorted by bucket and then
// position, so that every bucket-chunk's queries and the keys of the chunk and
// the previous one are contiguous rows: the score block [≤C, <2C] and the
// weighted sum are sgemm calls on slices, with no gather per block, and the
// backward's key and value gradients accumulate into sorted arrays (beta = 1)
// that are scattered back once per round. A key can be a candidate of the same
// query in several rounds; each occurrence's score is lowered by log m(t,s),
// m the number of rounds in which s is a candidate of t, so the occurrences of
// a pair add up to exactly one exp(score) and the rounds, merged by an online
// softmax, give the softmax over the union A(t). A token with no candidate in
// any round attends to itself alone.

// lshSeg is one bucket of one round that holds queries of this chunk: its
// members m (positions, ascending), the first member at a chunk position, and
// the first member any of those queries sees (kstart). Members kstart.. sit at
// rows base.. of the round's sorted arrays.
type lshSeg struct {
	m                   []int32
	first, kstart, base int
}

// lshWork is one worker's scratch for the lsh kernels.
type lshWork struct {
	segs           []lshSeg
	pos            []int32   // [n] position of each sorted row
	rowOf          []int32   // [T] sorted row of each position ≥ lo, or −1
	lo             int       // the first position with a sorted row
	qs, ks, vs, xs []float32 // [n,d] sorted q, k, v; xs: forward's block outputs, backward's da
	dqs, dks, dvs  []float32 // [n,d] backward's sorted gradients
	S, DP          []float32 // a block's scores (probabilities) and their gradients
	obk, ork       []int32   // [(n_hashes−1)·n] the other rounds' bucket and rank of each sorted row
	cnt            []uint8   // per key of a row: in how many other rounds it is a candidate too
	mr, lr         []float32 // forward: per sorted query row, its block's max score and Σ exp
	M, L, O        []float32 // forward: per query, the running max, Σ exp and output [Sc,d]
}

func growI32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n, n+n/4)
	}
	return s[:n]
}

// layout lists round r's segments for batch row b and head h, gathers the
// sorted rows of kc, vc (every member from kstart), of q and, when extra is
// not nil, of extra into xs (members at chunk positions), and the other
// rounds' buckets and ranks. It returns the number of sorted rows.
func (w *lshWork) layout(pl *lshPlanner, r, b, h int, q, kc, vc, extra []float32, Sc, T, H, d int) int {
	C := pl.o.chunk
	rs := pl.rounds[b*pl.o.heads+h]
	w.segs = w.segs[:0]
	n := 0
	for _, m := range rs[r].members {
		first := sort.Search(len(m), func(i int) bool { return int(m[i]) >= pl.pos0 })
		if first == len(m) {
			continue
		}
		ks := max(0, (first/C-1)*C)
		w.segs = append(w.segs, lshSeg{m: m, first: first, kstart: ks, base: n})
		n += len(m) - ks
	}
	w.pos = growI32(w.pos, n)
	w.qs, w.ks, w.vs = grow(w.qs, n*d), grow(w.ks, n*d), grow(w.vs, n*d)
	if extra != nil {
		w.xs = grow(w.xs, n*d)
	}
	no := len(rs) - 1
	w.obk, w.ork = growI32(w.obk, no*n), growI32(w.ork, no*n)
	// rowOf[s]: the sorted row of position s, or −1; the copies then run in
	// position order (sequential reads, one sequential write stream per
	// bucket) instead of the sorted order's scattered reads
	w.rowOf = growI32(w.rowOf, T)
	lo := T
	for _, sg := range w.segs {
		lo = min(lo, int(sg.m[sg.kstart]))
	}
	for s := lo; s < T; s++ {
		w.rowOf[s] = -1
	}
	for _, sg := range w.segs {
		for i := sg.kstart; i < len(sg.m); i++ {
			row := sg.base + i - sg.kstart
			w.rowOf[sg.m[i]] = int32(row)
			w.pos[row] = sg.m[i]
		}
	}
	w.lo = lo
	for s := lo; s < T; s++ {
		row := int(w.rowOf[s])
		if row < 0 {
			continue
		}
		src := (b*T+s)*H + h*d
		copy(w.ks[row*d:(row+1)*d], kc[src:src+d])
		copy(w.vs[row*d:(row+1)*d], vc[src:src+d])
		if s >= pl.pos0 {
			qr := (b*Sc+s-pl.pos0)*H + h*d
			copy(w.qs[row*d:(row+1)*d], q[qr:qr+d])
			if extra != nil {
				copy(w.xs[row*d:(row+1)*d], extra[qr:qr+d])
			}
		}
		o := 0
		for r2 := range rs {
			if r2 == r {
				continue
			}
			w.obk[o*n+row], w.ork[o*n+row] = rs[r2].bucket[s], rs[r2].rank[s]
			o++
		}
	}
	return n
}

// lshLogs[c] is log c, the lowering of a pair that is a candidate in c rounds
// (n_hashes ≤ 64).
var lshLogs = func() []float32 {
	l := make([]float32, 256)
	for c := 1; c < len(l); c++ {
		l[c] = float32(math.Log(float64(c)))
	}
	return l
}()

// adjust lowers the scores of the block's rows (queries at sorted rows q0..,
// keys at k0..; row i sees lim0+i keys) by log m(t,s): m − 1 is the number of
// other rounds in which s is a candidate of t.
func (w *lshWork) adjust(pl *lshPlanner, r, b, h, n, q0, k0, nq, nk, lim0 int) {
	rs := pl.rounds[b*pl.o.heads+h]
	if len(rs) == 1 {
		return
	}
	C := pl.o.chunk
	w.cnt = w.cnt[:0]
	for len(w.cnt) < nk {
		w.cnt = append(w.cnt, 0)
	}
	for i := 0; i < nq; i++ {
		lim := lim0 + i
		if lim == 0 {
			continue
		}
		t := w.pos[q0+i]
		cnt := w.cnt[:lim]
		clear(cnt)
		o := 0
		for r2 := range rs {
			if r2 == r {
				continue
			}
			bt, lt := rs[r2].bucket[t], int32((int(rs[r2].rank[t])/C-1)*C)
			obk, ork := w.obk[o*n+k0:o*n+k0+lim], w.ork[o*n+k0:o*n+k0+lim]
			for k, bk := range obk {
				if bk == bt && ork[k] >= lt {
					cnt[k]++
				}
			}
			o++
		}
		row := w.S[i*nk : i*nk+lim]
		for k, c := range cnt {
			if c > 0 {
				row[k] -= lshLogs[c+1]
			}
		}
	}
}

// lshBlocks calls fn for every bucket-chunk of the segments: queries at sorted
// rows q0..q0+nq−1, keys at k0..k0+nk−1, query i sees the first lim0+i keys.
func lshBlocks(C int, segs []lshSeg, fn func(q0, k0, nq, nk, lim0 int)) {
	for _, sg := range segs {
		L := len(sg.m)
		for c := sg.first / C; c*C < L; c++ {
			qlo, qhi := max(c*C, sg.first), min((c+1)*C, L)
			klo := max(0, (c-1)*C)
			fn(sg.base+qlo-sg.kstart, sg.base+klo-sg.kstart, qhi-qlo, qhi-1-klo, qlo-klo)
		}
	}
}

// lshScratch returns one lshWork per worker whose float buffers (sorted rows,
// and M, L, O of the forward pass) come from num's pool, sized for the most
// sorted rows a round can have: the chunk's Sc tokens and, per bucket, fewer
// than 2·chunk earlier keys. Fresh buffers of this size every call cost more
// in page faults than the gathers themselves; release returns them.
func lshScratch(o *options, Sc, T, d int, bwd bool) (scr []lshWork, release func()) {
	nmax := min(T, Sc+o.buckets*2*o.chunk)
	scr = make([]lshWork, num.Workers())
	var held [][]float32
	get := func(n int) []float32 {
		b := num.GetBuf(n)
		held = append(held, b)
		return b[:0]
	}
	for i := range scr {
		w := &scr[i]
		w.qs, w.ks, w.vs, w.xs = get(nmax*d), get(nmax*d), get(nmax*d), get(nmax*d)
		if bwd {
			w.dqs, w.dks, w.dvs = get(nmax*d), get(nmax*d), get(nmax*d)
		} else {
			w.mr, w.lr = get(nmax), get(nmax)
			w.M, w.L, w.O = get(Sc), get(Sc), get(Sc*d)
		}
	}
	return scr, func() { num.PutBuf(held...) }
}

func lshTasks(B, heads int) []task {
	var ts []task
	for b := 0; b < B; b++ {
		for h := 0; h < heads; h++ {
			ts = append(ts, task{b: b, h: h, step: 1, priv: -1})
		}
	}
	return ts
}

// lshFwd fills a [B·Sc,H] and lse [B·Sc·heads]; it returns the (query, key)
// occurrences allowed and computed.
func lshFwd(pl *lshPlanner, q, kc, vc []float32, B, Sc, T, H, heads int, a, lse []float32) (allowed, computed int64) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	ts := lshTasks(B, heads)
	scr, release := lshScratch(pl.o, Sc, T, d, false)
	defer release()
	al, co := make([]int64, len(ts)), make([]int64, len(ts))
	ninf := float32(math.Inf(-1))
	run(ts, float64(B*Sc*H)*float64(4*pl.o.chunk*pl.o.nHashes), func(wi int, tk task) {
		b, h := tk.b, tk.h
		w := &scr[wi]
		M, L, O := w.M[:Sc], w.L[:Sc], w.O[:Sc*d]
		for i := range M {
			M[i], L[i] = ninf, 0
		}
		var na, nc int64
		for r := 0; r < pl.o.nHashes; r++ {
			n := w.layout(pl, r, b, h, q, kc, vc, nil, Sc, T, H, d)
			w.xs, w.mr, w.lr = grow(w.xs, n*d), grow(w.mr, n), grow(w.lr, n)
			lshBlocks(pl.o.chunk, w.segs, func(q0, k0, nq, nk, lim0 int) {
				if nk <= 0 {
					clear(w.lr[q0 : q0+nq])
					return
				}
				nc += int64(nq * nk)
				w.S = grow(w.S, nq*nk)
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, nk, d, inv, w.qs[q0*d:], d, w.ks[k0*d:], d, 0, w.S, nk)
				w.adjust(pl, r, b, h, n, q0, k0, nq, nk, lim0)
				// rows less their max, exp over the block at once (the
				// entries past a row's keys are cleared after)
				for i := 0; i < nq; i++ {
					lim := lim0 + i
					row := w.S[i*nk : (i+1)*nk]
					mb := ninf
					for _, v := range row[:lim] {
						mb = max(mb, v)
					}
					if lim > 0 {
						for k := range row[:lim] {
							row[k] -= mb
						}
					}
					w.mr[q0+i] = mb
				}
				num.ExpFastSlice(w.S, w.S)
				for i := 0; i < nq; i++ {
					lim := lim0 + i
					row := w.S[i*nk : (i+1)*nk]
					clear(row[lim:])
					if lim == 0 {
						w.lr[q0+i] = 0
						continue
					}
					var lb float32
					for _, p := range row[:lim] {
						lb += p
					}
					w.lr[q0+i] = lb
					na += int64(lim)
				}
				impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, nk, 1, w.S, nk, w.vs[k0*d:], d, 0, w.xs[q0*d:], d)
			})
			// merge the round into every query's running (M, L, O), in
			// position order
			for j := 0; j < Sc; j++ {
				row := int(w.rowOf[pl.pos0+j])
				if row < 0 {
					continue
				}
				lb := w.lr[row]
				if lb == 0 {
					continue
				}
				mb := w.mr[row]
				ob, oj := w.xs[row*d:(row+1)*d], O[j*d:(j+1)*d]
				if L[j] == 0 {
					copy(oj, ob)
					M[j], L[j] = mb, lb
					continue
				}
				nm := max(M[j], mb)
				f1, f2 := num.ExpFast(M[j]-nm), num.ExpFast(mb-nm)
				for c := range oj {
					oj[c] = oj[c]*f1 + ob[c]*f2
				}
				L[j] = L[j]*f1 + lb*f2
				M[j] = nm
			}
		}
		for j := 0; j < Sc; j++ {
			r := b*Sc + j
			av := a[r*H+h*d : r*H+h*d+d]
			if L[j] == 0 { // no candidate in any round: itself
				row := (b*T+pl.pos0+j)*H + h*d
				copy(av, vc[row:row+d])
				var sc float32
				for c, x := range q[r*H+h*d : r*H+h*d+d] {
					sc += x * kc[row+c]
				}
				lse[r*heads+h] = sc * inv
				na++
				continue
			}
			rl := 1 / L[j]
			for c := range av {
				av[c] = O[j*d+c] * rl
			}
			lse[r*heads+h] = M[j] + float32(math.Log(float64(L[j])))
		}
		al[tk.b*heads+tk.h], co[tk.b*heads+tk.h] = na, nc
	})
	for i := range al {
		allowed += al[i]
		computed += co[i]
	}
	return allowed, computed
}

// lshBwd is lshFwd's backward: dq [B·Sc,H] overwritten, dk, dv [B,T,H] added
// to.
func lshBwd(pl *lshPlanner, q, kc, vc, a, lse, da []float32, B, Sc, T, H, heads int, dq, dk, dv []float32) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	ts := lshTasks(B, heads)
	for b := 0; b < B; b++ {
		for j := 0; j < Sc; j++ {
			clear(dq[(b*Sc+j)*H : (b*Sc+j+1)*H])
		}
	}
	scr, release := lshScratch(pl.o, Sc, T, d, true)
	defer release()
	run(ts, 2.5*float64(B*Sc*H)*float64(4*pl.o.chunk*pl.o.nHashes), func(wi int, tk task) {
		b, h := tk.b, tk.h
		w := &scr[wi]
		delta := make([]float32, Sc)
		seen := make([]bool, Sc)
		for j := 0; j < Sc; j++ {
			r := b*Sc + j
			var x float32
			for c, v := range a[r*H+h*d : r*H+h*d+d] {
				x += v * da[r*H+h*d+c]
			}
			delta[j] = x
		}
		for r := 0; r < pl.o.nHashes; r++ {
			n := w.layout(pl, r, b, h, q, kc, vc, da, Sc, T, H, d)
			w.dqs, w.dks, w.dvs = grow(w.dqs, n*d), grow(w.dks, n*d), grow(w.dvs, n*d)
			clear(w.dks)
			clear(w.dvs)
			lshBlocks(pl.o.chunk, w.segs, func(q0, k0, nq, nk, lim0 int) {
				if nk <= 0 {
					clear(w.dqs[q0*d : (q0+nq)*d])
					return
				}
				w.S, w.DP = grow(w.S, nq*nk), grow(w.DP, nq*nk)
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, nk, d, inv, w.qs[q0*d:], d, w.ks[k0*d:], d, 0, w.S, nk)
				w.adjust(pl, r, b, h, n, q0, k0, nq, nk, lim0)
				impl.Sgemm(blas.NoTrans, blas.Trans, nq, nk, d, 1, w.xs[q0*d:], d, w.vs[k0*d:], d, 0, w.DP, nk)
				for i := 0; i < nq; i++ {
					row := w.S[i*nk : (i+1)*nk]
					j := int(w.pos[q0+i]) - pl.pos0
					lm := lse[(b*Sc+j)*heads+h]
					for k := range row {
						row[k] -= lm
					}
				}
				num.ExpFastSlice(w.S, w.S) // entries past a row's keys are cleared below
				for i := 0; i < nq; i++ {
					lim := lim0 + i
					row, drow := w.S[i*nk:(i+1)*nk], w.DP[i*nk:(i+1)*nk]
					j := int(w.pos[q0+i]) - pl.pos0
					dl := delta[j]
					for k, p := range row[:lim] {
						drow[k] = p * (drow[k] - dl)
					}
					clear(row[lim:])
					clear(drow[lim:])
					if lim > 0 {
						seen[j] = true
					}
				}
				impl.Sgemm(blas.NoTrans, blas.NoTrans, nq, d, nk, inv, w.DP, nk, w.ks[k0*d:], d, 0, w.dqs[q0*d:], d)
				impl.Sgemm(blas.Trans, blas.NoTrans, nk, d, nq, inv, w.DP, nk, w.qs[q0*d:], d, 1, w.dks[k0*d:], d)
				impl.Sgemm(blas.Trans, blas.NoTrans, nk, d, nq, 1, w.S, nk, w.xs[q0*d:], d, 1, w.dvs[k0*d:], d)
			})
			// scatter the round's sorted gradients, in position order
			for s := w.lo; s < T; s++ {
				row := int(w.rowOf[s])
				if row < 0 {
					continue
				}
				o := (b*T+s)*H + h*d
				dkr, dvr := dk[o:o+d], dv[o:o+d]
				for c, v := range w.dks[row*d : (row+1)*d] {
					dkr[c] += v
				}
				for c, v := range w.dvs[row*d : (row+1)*d] {
					dvr[c] += v
				}
				if s >= pl.pos0 {
					qo := (b*Sc+s-pl.pos0)*H + h*d
					dqr := dq[qo : qo+d]
					for c, v := range w.dqs[row*d : (row+1)*d] {
						dqr[c] += v
					}
				}
			}
		}
		for j := 0; j < Sc; j++ { // tokens that attend to themselves alone
			if seen[j] {
				continue
			}
			r := b*Sc + j
			row := (b*T+pl.pos0+j)*H + h*d
			for c := 0; c < d; c++ {
				dv[row+c] += da[r*H+h*d+c]
			}
		}
	})
}
