package causal

import (
	"liquidlab/framework/num"
	"liquidlab/framework/tensor"
)

// saved is what a forward pass keeps for its backward pass. The buffers come
// from num.GetBuf and go back with free.
type saved struct {
	o            options
	B, Sc, T     int
	n0           int  // cache rows before this chunk
	tRows        int  // rows per batch row of the [B,·,H] cache buffers' allocations (≥ T)
	stateCache   bool // kc, vc are the state handed out (growing patterns), not pooled
	p            params
	e            []float32 // [B,Sc,H] the input, by reference
	q            []float32 // [N,H]
	kc, vc       []float32 // softmax: [B,T,H] cache then chunk; linear: k, v [N,H]
	a            []float32 // [N,H] attention before the output projection
	lse          []float32 // softmax: [N·heads] log-sum-exp; linear: denominators
	nrm          []float32 // lsh: [N·heads] ‖q‖
	fq, fk       []float32 // linear: φ(q), φ(k) [N,H]
	zsave        []float32 // linear: the running sums before every block
	pl           planner
	flopsFwd     float64
	flopsBwd     float64
	keysPerQuery float64
	pairs        float64 // (query, head, key) triples the pattern allows
	pos0         int     // qscale log: the chunk's first position
}

// scaleRows multiplies row t of each sequence's [Sc,H] block of x by
// o.qscale(pos0+t): qscale "log" or "loglen" on the queries, and on their
// gradient.
func scaleRows(o *options, x []float32, B, Sc, H, pos0 int) {
	for b := 0; b < B; b++ {
		for t := 0; t < Sc; t++ {
			s := o.qscale(pos0 + t)
			if s == 1 {
				continue
			}
			row := x[(b*Sc+t)*H : (b*Sc+t+1)*H]
			for i := range row {
				row[i] *= s
			}
		}
	}
}

func (f *saved) free() {
	if f.stateCache {
		f.kc, f.vc = nil, nil
	}
	num.PutBuf(f.q, full(f.kc), full(f.vc), f.a, f.lse, f.nrm, f.fq, f.fk, f.zsave)
	f.q, f.kc, f.vc, f.a, f.lse, f.nrm, f.fq, f.fk, f.zsave = nil, nil, nil, nil, nil, nil, nil, nil, nil
	f.pl = nil
}

// cacheBufRows is the row count per batch row to allocate the [B,T,H] cache,
// key and value buffers of a chunk of Sc tokens with: T = cached rows + Sc,
// and for the bounded patterns the most T can be (Sc + capacity). num's pool
// files buffers by length, so the first chunk (no cache yet) then takes the
// same buffers as every later one; with T-sized buffers a sequence of two or
// more chunks kept two sets in the pool (window at hidden 256, chunks of 4096:
// ≈ 18 MB more live heap, ≈ 36 MB more peak RSS from 8k tokens on than at 4k).
//
// The growing caches (full, lsh) have a new T every chunk: their buffers are
// sized to the power of two ≥ T, so that the pool reuses them from chunk to
// chunk instead of filling up (to its 512 MB cap) with buffers of sizes that
// never recur.
func cacheBufRows(o *options, Sc, T int) int {
	if c := o.capacity(); c >= 0 && Sc+c >= T {
		return Sc + c
	}
	return pow2(T)
}

// pow2 is the least power of two ≥ n.
func pow2(n int) int {
	r := 1
	for r < n {
		r *= 2
	}
	return r
}

// getRows returns a buffer of n floats allocated with room for nAlloc ≥ n;
// full gives PutBuf the whole allocation back.
func getRows(n, nAlloc int) []float32 { return num.GetBuf(nAlloc)[:n] }

func full(b []float32) []float32 { return b[:cap(b)] }

// forward runs one chunk and returns what backward needs, the outputs y and c,
// and the state after the chunk. Nothing it returns aliases e or p, nor st's
// values: the growing patterns (full, lsh) return as state the cache their
// attention ran on, which may extend st's buffer past its length when own
// allows (see grow.go).
func forward(o *options, own *owner, p params, e []float32, B, Sc int, st *carry, need []float32, out func(int) []float32) (f *saved, y, c []float32, next tensor.Map) {
	if o.pattern == Linear {
		return forwardLinear(o, p, e, B, Sc, st, out)
	}
	H, heads, d := o.H, o.heads, o.d
	N, n0, pos0 := B*Sc, st.n, st.pos
	T := n0 + Sc
	f = &saved{o: *o, B: B, Sc: Sc, T: T, n0: n0, e: e, tRows: cacheBufRows(o, Sc, T)}
	f.q = num.GetBuf(N * H)
	num.LinearForward(f.q, e, p.wq, p.bq, N, H, H)
	if o.logScale {
		f.pos0 = st.abs
		scaleRows(o, f.q, B, Sc, H, f.pos0)
	}
	tmp := num.GetBuf(N * H)
	growing := o.capacity() < 0 // every position cached: state rows = T
	inPlace := false
	if growing {
		f.kc, f.vc, inPlace = own.growCaches(st, B, n0, T, H)
		f.stateCache = true
	} else {
		f.kc, f.vc = getRows(B*T*H, B*f.tRows*H), getRows(B*T*H, B*f.tRows*H)
	}
	place := func(dst, cache []float32) {
		for b := 0; b < B; b++ {
			if n0 > 0 && !inPlace {
				copy(dst[b*T*H:(b*T+n0)*H], cache[b*st.rows*H:(b*st.rows+n0)*H])
			}
			copy(dst[(b*T+n0)*H:(b+1)*T*H], tmp[b*Sc*H:(b+1)*Sc*H])
		}
	}
	if o.pattern == LSH {
		f.nrm = num.GetBuf(N * heads)
		normalizeKeys(tmp, f.q, f.nrm, N, H, heads)
	} else {
		num.LinearForward(tmp, e, p.wk, p.bk, N, H, H)
	}
	place(f.kc, st.kc)
	num.LinearForward(tmp, e, p.wv, p.bv, N, H, H)
	place(f.vc, st.vc)
	num.PutBuf(tmp)

	var pp *posPlanner
	if o.pattern == LSH {
		f.pl = newLSHPlanner(o, f.kc, B, T, pos0)
	} else {
		pp = newPosPlanner(o, pos0)
		pp.need = need
		f.pl = pp
	}
	f.a, f.lse = num.GetBuf(N*H), num.GetBuf(N*heads)
	var pairs, computed int64
	if pp != nil {
		pairs, computed = blockedFwd(pp, f.q, f.kc, f.vc, B, Sc, T, H, heads, f.a, f.lse)
	} else {
		pairs, computed = lshFwd(f.pl.(*lshPlanner), f.q, f.kc, f.vc, B, Sc, T, H, heads, f.a, f.lse)
	}

	y = out(N * H)
	num.LinearForward(y, f.a, p.wo, p.bo, N, H, H)
	c = lastTokens(y, B, Sc, H)

	nlin := 4.0
	if o.pattern == LSH {
		nlin = 3
		f.flopsFwd += float64(B*heads*o.nHashes) * float64(T) * float64(d*o.buckets) // hashing
	}
	f.flopsFwd += nlin*2*float64(N)*float64(H*H) + 4*float64(computed)*float64(d)
	f.flopsBwd = 2*nlin*2*float64(N)*float64(H*H) + 10*float64(computed)*float64(d)
	f.pairs = float64(pairs)
	f.keysPerQuery = float64(pairs) / float64(N*heads)

	// the state after the chunk
	pos1 := pos0 + Sc
	if o.pattern == Window {
		W, n := o.W, min(o.W, T)
		kc, vc := make([]float32, B*W*H), make([]float32, B*W*H)
		for b := 0; b < B; b++ {
			copy(kc[b*W*H:(b*W+n)*H], f.kc[(b*T+T-n)*H:(b+1)*T*H])
			copy(vc[b*W*H:(b*W+n)*H], f.vc[(b*T+T-n)*H:(b+1)*T*H])
		}
		next = tensor.Map{"k_cache": tensor.From(kc, B, W, H), "v_cache": tensor.From(vc, B, W, H),
			"n_cache": tensor.From([]float32{float32(n)}, 1)}
		if o.logScale {
			next["pos"] = tensor.From([]float32{float32(st.abs + Sc)}, 1)
		}
		return f, y, c, next
	}
	if growing {
		next = tensor.Map{"k_cache": tensor.From(f.kc, B, T, H), "v_cache": tensor.From(f.vc, B, T, H),
			"n_cache": tensor.From([]float32{float32(T)}, 1), "pos": tensor.From([]float32{float32(pos1)}, 1)}
		return f, y, c, next
	}
	b1 := o.base(pos1)
	P1 := min(o.prefix(), b1)
	n1 := P1 + pos1 - b1
	rows := o.capacity()
	if rows < 0 {
		rows = n1
	}
	rowOf := func(s int) int { // row of position s in f.kc (old layout)
		if s < pp0(pp) {
			return s
		}
		return pp0(pp) + s - ppBase(pp)
	}
	kc, vc := make([]float32, B*rows*H), make([]float32, B*rows*H)
	for b := 0; b < B; b++ {
		cp := func(dstRow, s0, cnt int) {
			if cnt <= 0 {
				return
			}
			r := rowOf(s0)
			copy(kc[(b*rows+dstRow)*H:(b*rows+dstRow+cnt)*H], f.kc[(b*T+r)*H:(b*T+r+cnt)*H])
			copy(vc[(b*rows+dstRow)*H:(b*rows+dstRow+cnt)*H], f.vc[(b*T+r)*H:(b*T+r+cnt)*H])
		}
		// the prefix [0,P1) may straddle the old P (rows s < P, then rows of the tail)
		P0 := pp0(pp)
		cp(0, 0, min(P1, P0))
		if P1 > P0 {
			cp(P0, P0, P1-P0)
		}
		cp(P1, b1, pos1-b1)
	}
	next = tensor.Map{"k_cache": tensor.From(kc, B, rows, H), "v_cache": tensor.From(vc, B, rows, H),
		"n_cache": tensor.From([]float32{float32(n1)}, 1), "pos": tensor.From([]float32{float32(pos1)}, 1)}
	return f, y, c, next
}

// pp0 and ppBase give the cache layout of a positional planner; lsh (nil)
// keeps every position.
func pp0(p *posPlanner) int {
	if p == nil {
		return 0
	}
	return p.P
}

func ppBase(p *posPlanner) int {
	if p == nil {
		return 0
	}
	return p.base
}

func lastTokens(y []float32, B, Sc, H int) []float32 {
	c := make([]float32, B*H)
	for b := 0; b < B; b++ {
		copy(c[b*H:(b+1)*H], y[(b*Sc+Sc-1)*H:(b+1)*Sc*H])
	}
	return c
}

func forwardLinear(o *options, p params, e []float32, B, Sc int, st *carry, out func(int) []float32) (f *saved, y, c []float32, next tensor.Map) {
	H, heads, d := o.H, o.heads, o.d
	N := B * Sc
	f = &saved{o: *o, B: B, Sc: Sc, T: Sc, e: e}
	f.q, f.kc, f.vc = num.GetBuf(N*H), num.GetBuf(N*H), num.GetBuf(N*H)
	num.LinearForward(f.q, e, p.wq, p.bq, N, H, H)
	num.LinearForward(f.kc, e, p.wk, p.bk, N, H, H)
	num.LinearForward(f.vc, e, p.wv, p.bv, N, H, H)
	f.fq, f.fk = num.GetBuf(N*H), num.GetBuf(N*H)
	phi(f.fq, f.q)
	phi(f.fk, f.kc)
	zs, ks := make([]float32, B*H*d), make([]float32, B*H)
	if st.zs != nil {
		copy(zs, st.zs)
		copy(ks, st.ks)
	}
	nblk := (Sc + linBlock - 1) / linBlock
	f.a, f.lse = num.GetBuf(N*H), num.GetBuf(N*heads)
	f.zsave = num.GetBuf(B * heads * nblk * (d*d + d))
	linearFwd(o, f.fq, f.fk, f.vc, B, Sc, zs, ks, f.a, f.lse, f.zsave)
	y = out(N * H)
	num.LinearForward(y, f.a, p.wo, p.bo, N, H, H)
	c = lastTokens(y, B, Sc, H)
	n := float64(min(Sc, linBlock))
	perTokHead := 2*2*n*float64(d) + 2*2*float64(d*d) // masked [n,n] products, and the sums
	f.flopsFwd = 4*2*float64(N)*float64(H*H) + float64(N*heads)*perTokHead
	f.flopsBwd = 8*2*float64(N)*float64(H*H) + float64(N*heads)*(5*2*n*float64(d)+4*2*float64(d*d))
	f.keysPerQuery = 0
	next = tensor.Map{"z_sum": tensor.From(zs, B, H, d), "k_sum": tensor.From(ks, B, H)}
	return f, y, c, next
}

// grads are the results of backward: de and the parameter gradients in
// paramNames order (nil where the pattern has no such parameter).
type grads struct {
	de []float32
	dp [8][]float32
}

// backward computes the gradients of one chunk with the carried state held
// constant. dy [B,Sc,H] and dc [B,H] may be nil (zero).
func backward(f *saved, dy, dc []float32, out func(int) []float32) *grads {
	o := &f.o
	H, heads, B, Sc, T, n0 := o.H, o.heads, f.B, f.Sc, f.T, f.n0
	N := B * Sc
	p := f.p
	g := &grads{de: out(N * H)}
	for i := range g.dp {
		if !o.hasParam(i) {
			continue
		}
		if i%2 == 0 {
			g.dp[i] = out(H * H)
		} else {
			g.dp[i] = make([]float32, H)
		}
	}
	gy := num.GetBuf(N * H)
	if dy != nil {
		copy(gy, dy)
	} else {
		clear(gy)
	}
	if dc != nil {
		for b := 0; b < B; b++ {
			row := gy[(b*Sc+Sc-1)*H : (b+1)*Sc*H]
			for i, v := range dc[b*H : (b+1)*H] {
				row[i] += v
			}
		}
	}
	da := num.GetBuf(N * H)
	num.LinearBackward(da, false, g.dp[6], g.dp[7], gy, f.a, p.wo, N, H, H)
	dq, dkn, dvn := num.GetBuf(N*H), num.GetBuf(N*H), num.GetBuf(N*H)
	if o.pattern == Linear {
		linearBwd(o, f.q, f.kc, f.fq, f.fk, f.vc, f.a, f.lse, f.zsave, da, B, Sc, dq, dkn, dvn)
	} else {
		dk, dv := getRows(B*T*H, B*f.tRows*H), getRows(B*T*H, B*f.tRows*H)
		clear(dk)
		clear(dv)
		if pp, ok := f.pl.(*posPlanner); ok {
			blockedBwd(pp, f.q, f.kc, f.vc, f.a, f.lse, da, B, Sc, T, H, heads, dq, dk, dv)
		} else {
			lshBwd(f.pl.(*lshPlanner), f.q, f.kc, f.vc, f.a, f.lse, da, B, Sc, T, H, heads, dq, dk, dv)
		}
		for b := 0; b < B; b++ {
			copy(dkn[b*Sc*H:(b+1)*Sc*H], dk[(b*T+n0)*H:(b+1)*T*H])
			copy(dvn[b*Sc*H:(b+1)*Sc*H], dv[(b*T+n0)*H:(b+1)*T*H])
		}
		num.PutBuf(full(dk), full(dv))
		if o.pattern == LSH {
			kn := num.GetBuf(N * H)
			for b := 0; b < B; b++ {
				copy(kn[b*Sc*H:(b+1)*Sc*H], f.kc[(b*T+n0)*H:(b+1)*T*H])
			}
			normalizeBackward(dq, dkn, kn, f.nrm, N, H, heads)
			num.PutBuf(kn)
		}
	}
	if o.logScale {
		scaleRows(o, dq, B, Sc, H, f.pos0)
	}
	num.LinearBackward(g.de, false, g.dp[0], g.dp[1], dq, f.e, p.wq, N, H, H)
	if o.pattern != LSH {
		num.LinearBackward(g.de, true, g.dp[2], g.dp[3], dkn, f.e, p.wk, N, H, H)
	}
	num.LinearBackward(g.de, true, g.dp[4], g.dp[5], dvn, f.e, p.wv, N, H, H)
	num.PutBuf(gy, da, dq, dkn, dvn)
	return g
}
