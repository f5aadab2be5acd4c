package causal

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// The softmax kernel: per batch row b, head h and query j, the scores of the
// query against the keys its planner names, a softmax, and the weighted sum of
// their values. No score matrix is kept: forward saves the log-sum-exp of each
// (query, head), backward recomputes the scores from it (as FlashAttention
// does), so memory is O(tokens·H) for every pattern, full included.
//
// Keys and values of batch row b are rows of kv [B,T,H] (T = cache rows + Sc);
// head h is columns h·d…h·d+d−1, so a span of rows with stride r is a matrix
// with leading dimension r·H and one sgemv reads it in place. Queries with many
// short spans (lsh) gather their keys into a scratch matrix first.

// gatherAbove is the number of spans beyond which a query gathers its keys.
const gatherAbove = 6

// task is a share of the work: batch row b, head h, queries j0, j0+step, ….
// Tasks of one (b,h) split across workers interleave their queries (so the
// longer rows of full attention are shared evenly) and accumulate key and value
// gradients in private buffers.
type task struct {
	b, h, j0, step int
	priv           int // index of the private gradient buffers, or -1
}

// tasks splits B·heads·Sc queries among the cores.
func tasks(B, heads, Sc int) (ts []task, nPriv int) {
	p := runtime.GOMAXPROCS(0)
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

// run calls fn for every task on up to GOMAXPROCS goroutines, each with its
// own worker index; work is the rough flop count (small jobs run inline).
func run(ts []task, work float64, fn func(w int, t task)) {
	p := min(runtime.GOMAXPROCS(0), len(ts))
	if p <= 1 || work < 1<<17 {
		for _, t := range ts {
			fn(0, t)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < p; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ts) {
					return
				}
				fn(w, ts[i])
			}
		}(w)
	}
	wg.Wait()
}

// scratch is one worker's buffers, grown on demand.
type scratch struct {
	sp          []span
	sc, dp      []float32
	gk, gv, gdk []float32
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n, n+n/4)
	}
	return s[:n]
}

// softmaxFwd fills a [B·Sc,H] (attention before the output projection) and lse
// [B·Sc·heads] and returns the number of (query, head, key) triples.
func softmaxFwd(pl planner, q, kc, vc []float32, B, Sc, T, H, heads int, a, lse []float32) int64 {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	ts, _ := tasks(B, heads, Sc)
	scr := make([]scratch, runtime.GOMAXPROCS(0))
	var pairs atomic.Int64
	run(ts, float64(B*Sc*T)*float64(H), func(w int, tk task) {
		s := &scr[w]
		b, h := tk.b, tk.h
		kb := kc[b*T*H+h*d:]
		vb := vc[b*T*H+h*d:]
		var np int64
		for j := tk.j0; j < Sc; j += tk.step {
			r := b*Sc + j
			s.sp = pl.keys(b, h, j, s.sp[:0])
			L := 0
			for _, x := range s.sp {
				L += x.cnt
			}
			np += int64(L)
			s.sc = grow(s.sc, L)
			qv := q[r*H+h*d : r*H+h*d+d]
			av := a[r*H+h*d : r*H+h*d+d]
			clear(av)
			if len(s.sp) > gatherAbove {
				s.gk, s.gv = grow(s.gk, L*d), grow(s.gv, L*d)
				gather(s.gk, kb, s.sp, H, d)
				gather(s.gv, vb, s.sp, H, d)
				impl.Sgemv(blas.NoTrans, L, d, inv, s.gk, d, qv, 1, 0, s.sc, 1)
				lse[r*heads+h] = softmax(s.sc)
				impl.Sgemv(blas.Trans, L, d, 1, s.gv, d, s.sc, 1, 0, av, 1)
				continue
			}
			off := 0
			for _, x := range s.sp {
				impl.Sgemv(blas.NoTrans, x.cnt, d, inv, kb[x.row*H:], x.stride*H, qv, 1, 0, s.sc[off:], 1)
				off += x.cnt
			}
			lse[r*heads+h] = softmax(s.sc)
			off = 0
			for _, x := range s.sp {
				impl.Sgemv(blas.Trans, x.cnt, d, 1, vb[x.row*H:], x.stride*H, s.sc[off:], 1, 1, av, 1)
				off += x.cnt
			}
		}
		pairs.Add(np)
	})
	return pairs.Load()
}

// gather copies the d columns of the rows of sp (in src, row stride H) into
// dst [L,d].
func gather(dst, src []float32, sp []span, H, d int) {
	i := 0
	for _, x := range sp {
		for k := 0; k < x.cnt; k++ {
			row := (x.row + k*x.stride) * H
			copy(dst[i*d:(i+1)*d], src[row:row+d])
			i++
		}
	}
}

// scatterAdd adds src [L,d] to the rows of sp in dst (row stride H).
func scatterAdd(dst, src []float32, sp []span, H, d int) {
	i := 0
	for _, x := range sp {
		for k := 0; k < x.cnt; k++ {
			row := dst[(x.row+k*x.stride)*H:]
			for c, v := range src[i*d : (i+1)*d] {
				row[c] += v
			}
			i++
		}
	}
}

// softmax replaces s by its softmax and returns its log-sum-exp.
func softmax(s []float32) float32 {
	mx, _ := num.MaxArg(s)
	var z float32
	for i, v := range s {
		e := num.Exp32(v - mx)
		s[i] = e
		z += e
	}
	r := 1 / z
	for i := range s {
		s[i] *= r
	}
	return mx + float32(math.Log(float64(z)))
}

// softmaxBwd accumulates, for da [B·Sc,H], dq [B·Sc,H] (overwritten) and dk,
// dv [B,T,H] (added to; rows of the cache receive gradients the caller
// discards).
func softmaxBwd(pl planner, q, kc, vc, a, lse, da []float32, B, Sc, T, H, heads int, dq, dk, dv []float32) {
	d := H / heads
	inv := float32(1 / math.Sqrt(float64(d)))
	impl := blas32.Implementation()
	ts, nPriv := tasks(B, heads, Sc)
	priv := make([][2][]float32, nPriv)
	for i := range priv {
		priv[i] = [2][]float32{num.GetBuf(T * H), num.GetBuf(T * H)}
		clear(priv[i][0])
		clear(priv[i][1])
	}
	scr := make([]scratch, runtime.GOMAXPROCS(0))
	run(ts, 2.5*float64(B*Sc*T)*float64(H), func(w int, tk task) {
		s := &scr[w]
		b, h := tk.b, tk.h
		kb, vb := kc[b*T*H+h*d:], vc[b*T*H+h*d:]
		dkb, dvb := dk[b*T*H+h*d:], dv[b*T*H+h*d:]
		if tk.priv >= 0 {
			dkb, dvb = priv[tk.priv][0][h*d:], priv[tk.priv][1][h*d:]
		}
		for j := tk.j0; j < Sc; j += tk.step {
			r := b*Sc + j
			s.sp = pl.keys(b, h, j, s.sp[:0])
			L := 0
			for _, x := range s.sp {
				L += x.cnt
			}
			s.sc, s.dp = grow(s.sc, L), grow(s.dp, L)
			qv := q[r*H+h*d : r*H+h*d+d]
			dav := da[r*H+h*d : r*H+h*d+d]
			dqv := dq[r*H+h*d : r*H+h*d+d]
			var delta float32
			for c, v := range a[r*H+h*d : r*H+h*d+d] {
				delta += v * dav[c]
			}
			m := lse[r*heads+h]
			gath := len(s.sp) > gatherAbove
			if gath {
				s.gk, s.gv, s.gdk = grow(s.gk, L*d), grow(s.gv, L*d), grow(s.gdk, 2*L*d)
				gather(s.gk, kb, s.sp, H, d)
				gather(s.gv, vb, s.sp, H, d)
				impl.Sgemv(blas.NoTrans, L, d, inv, s.gk, d, qv, 1, 0, s.sc, 1)
				impl.Sgemv(blas.NoTrans, L, d, 1, s.gv, d, dav, 1, 0, s.dp, 1)
			} else {
				off := 0
				for _, x := range s.sp {
					impl.Sgemv(blas.NoTrans, x.cnt, d, inv, kb[x.row*H:], x.stride*H, qv, 1, 0, s.sc[off:], 1)
					impl.Sgemv(blas.NoTrans, x.cnt, d, 1, vb[x.row*H:], x.stride*H, dav, 1, 0, s.dp[off:], 1)
					off += x.cnt
				}
			}
			// s.sc becomes P, s.dp becomes dS = P(dP − δ).
			for i, v := range s.sc {
				p := num.Exp32(v - m)
				s.sc[i] = p
				s.dp[i] = p * (s.dp[i] - delta)
			}
			if gath {
				impl.Sgemv(blas.Trans, L, d, inv, s.gk, d, s.dp, 1, 0, dqv, 1)
				gdk, gdv := s.gdk[:L*d], s.gdk[L*d:]
				clear(s.gdk)
				impl.Sger(L, d, inv, s.dp, 1, qv, 1, gdk, d)
				impl.Sger(L, d, 1, s.sc, 1, dav, 1, gdv, d)
				scatterAdd(dkb, gdk, s.sp, H, d)
				scatterAdd(dvb, gdv, s.sp, H, d)
				continue
			}
			clear(dqv)
			off := 0
			for _, x := range s.sp {
				impl.Sgemv(blas.Trans, x.cnt, d, inv, kb[x.row*H:], x.stride*H, s.dp[off:], 1, 1, dqv, 1)
				impl.Sger(x.cnt, d, inv, s.dp[off:], 1, qv, 1, dkb[x.row*H:], x.stride*H)
				impl.Sger(x.cnt, d, 1, s.sc[off:], 1, dav, 1, dvb[x.row*H:], x.stride*H)
				off += x.cnt
			}
		}
	})
	for i, t := range ts {
		if t.priv < 0 {
			continue
		}
		_ = i
		for row := 0; row < T; row++ {
			o := (t.b*T+row)*H + t.h*d
			po := row*H + t.h*d
			for c := 0; c < d; c++ {
				dk[o+c] += priv[t.priv][0][po+c]
				dv[o+c] += priv[t.priv][1][po+c]
			}
		}
	}
	for _, p := range priv {
		num.PutBuf(p[0], p[1])
	}
}
