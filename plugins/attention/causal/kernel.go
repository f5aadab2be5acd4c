package causal

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// saved is what a forward pass keeps for its backward pass. The buffers come
// from num.GetBuf and go back with free.
type saved struct {
	o     options
	B, Sc int
	n0    int // cached positions before this chunk
	p     params
	e     []float32 // [B,Sc,H] the input, by reference
	q     []float32 // [B·Sc,H]
	kc    []float32 // [B,T,H], T = n0+Sc: the cache followed by this chunk's keys
	vc    []float32 // [B,T,H] likewise for values
	pr    []float32 // [B·Sc,W] softmax weights, right-aligned (see window)
	a     []float32 // [B·Sc,H] attention before the output projection
}

func (f *saved) free() {
	num.PutBuf(f.q, f.kc, f.vc, f.pr, f.a)
	f.q, f.kc, f.vc, f.pr, f.a = nil, nil, nil, nil, nil
}

// window returns, for token t of a chunk with n0 cached positions, the number
// L of positions it attends to and the first of them as a row of kc. Row r of
// pr holds the token's weights in columns W−L..W−1, so column W−1−d is the key
// d positions back; columns before W−L are zero.
func window(t, n0, W int) (L, first int) {
	L = min(W, n0+t+1)
	return L, n0 + t + 1 - L
}

// forward runs one chunk and returns what backward needs, the outputs y and c,
// and the state after the chunk. Nothing it returns aliases e, st or p.
func forward(o *options, p params, e []float32, B, Sc int, st *carry) (f *saved, y, c []float32, next *carry) {
	H, W, n0 := o.H, o.W, st.n
	N, T := B*Sc, st.n+Sc
	inv := float32(1 / math.Sqrt(float64(H)))
	f = &saved{o: *o, B: B, Sc: Sc, n0: n0, e: e}

	f.q = num.GetBuf(N * H)
	num.LinearForward(f.q, e, p.wq, p.bq, N, H, H)
	tmp := num.GetBuf(N * H)
	f.kc, f.vc = num.GetBuf(B*T*H), num.GetBuf(B*T*H)
	for _, kv := range []struct{ w, b, dst, cache []float32 }{{p.wk, p.bk, f.kc, st.kc}, {p.wv, p.bv, f.vc, st.vc}} {
		num.LinearForward(tmp, e, kv.w, kv.b, N, H, H)
		for b := 0; b < B; b++ {
			if n0 > 0 {
				copy(kv.dst[b*T*H:(b*T+n0)*H], kv.cache[b*W*H:(b*W+n0)*H])
			}
			copy(kv.dst[(b*T+n0)*H:(b+1)*T*H], tmp[b*Sc*H:(b+1)*Sc*H])
		}
	}
	num.PutBuf(tmp)

	f.pr, f.a = num.GetBuf(N*W), num.GetBuf(N*H)
	impl := blas32.Implementation()
	num.ParallelRows(N, 4*W*H, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, t := r/Sc, r%Sc
			L, first := window(t, n0, W)
			kw := f.kc[(b*T+first)*H : (b*T+first+L)*H]
			vw := f.vc[(b*T+first)*H : (b*T+first+L)*H]
			row := f.pr[r*W : (r+1)*W]
			clear(row[:W-L])
			s := row[W-L:]
			impl.Sgemv(blas.NoTrans, L, H, inv, kw, H, f.q[r*H:(r+1)*H], 1, 0, s, 1)
			mx, _ := num.MaxArg(s)
			num.LogSumExp(s, mx, s) // in place: s becomes the softmax
			impl.Sgemv(blas.Trans, L, H, 1, vw, H, s, 1, 0, f.a[r*H:(r+1)*H], 1)
		}
	})

	y = make([]float32, N*H)
	num.LinearForward(y, f.a, p.wo, p.bo, N, H, H)
	c = make([]float32, B*H)
	for b := 0; b < B; b++ {
		copy(c[b*H:(b+1)*H], y[(b*Sc+Sc-1)*H:(b+1)*Sc*H])
	}

	n := min(W, T)
	next = &carry{n: n, kc: make([]float32, B*W*H), vc: make([]float32, B*W*H)}
	for b := 0; b < B; b++ {
		copy(next.kc[b*W*H:(b*W+n)*H], f.kc[(b*T+T-n)*H:(b+1)*T*H])
		copy(next.vc[b*W*H:(b*W+n)*H], f.vc[(b*T+T-n)*H:(b+1)*T*H])
	}
	return f, y, c, next
}

// grads are the results of backward: de and the parameter gradients in
// paramNames order.
type grads struct {
	de []float32
	dp [8][]float32
}

// backward computes the gradients of one chunk with the carried cache held
// constant. dy [B,Sc,H] and dc [B,H] may be nil (zero).
//
// With P the weights of token t over its window, da_t = W_oᵀdy_t,
// dP_s = da_t·v_s, dS_s = P_s(dP_s − Σ P·dP), dq_t = Σ_s dS_s k_s/√H,
// dk_s = Σ_t dS_{t,s} q_t/√H and dv_s = Σ_t P_{t,s} da_t (t over the tokens
// whose window holds s).
func backward(f *saved, dy, dc []float32) *grads {
	H, W, n0, B, Sc := f.o.H, f.o.W, f.n0, f.B, f.Sc
	N, T := B*Sc, n0+Sc
	p := f.p
	inv := float32(1 / math.Sqrt(float64(H)))
	g := &grads{de: make([]float32, N*H)}
	for i := range g.dp {
		if i%2 == 0 {
			g.dp[i] = make([]float32, H*H)
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

	// Per query: dS into ds (same layout as pr) and dq.
	ds, dq := num.GetBuf(N*W), num.GetBuf(N*H)
	impl := blas32.Implementation()
	num.ParallelRows(N, 4*W*H, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b, t := r/Sc, r%Sc
			L, first := window(t, n0, W)
			kw := f.kc[(b*T+first)*H : (b*T+first+L)*H]
			vw := f.vc[(b*T+first)*H : (b*T+first+L)*H]
			row := ds[r*W : (r+1)*W]
			clear(row[:W-L])
			d, pw := row[W-L:], f.pr[r*W+W-L:(r+1)*W]
			impl.Sgemv(blas.NoTrans, L, H, 1, vw, H, da[r*H:(r+1)*H], 1, 0, d, 1)
			var rho float64
			for j, v := range d {
				rho += float64(v) * float64(pw[j])
			}
			for j, v := range d {
				d[j] = pw[j] * (v - float32(rho))
			}
			impl.Sgemv(blas.Trans, L, H, inv, kw, H, d, 1, 0, dq[r*H:(r+1)*H], 1)
		}
	})

	// Per key of this chunk: the queries t = s..s+W−1 that see it. Their
	// weights for it sit at row t, column W−1−(t−s): stride W−1 through ds.
	dk, dv := num.GetBuf(N*H), num.GetBuf(N*H)
	inc := max(W-1, 1) // with W = 1 only one query sees a key, so inc is unused
	num.ParallelRows(N, 4*W*H, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			s := r % Sc
			n := min(Sc-s, W)
			at := r*W + W - 1 // row r (t = s), column W−1
			impl.Sgemv(blas.Trans, n, H, inv, f.q[r*H:(r+n)*H], H, ds[at:], inc, 0, dk[r*H:(r+1)*H], 1)
			impl.Sgemv(blas.Trans, n, H, 1, da[r*H:(r+n)*H], H, f.pr[at:], inc, 0, dv[r*H:(r+1)*H], 1)
		}
	})

	num.LinearBackward(g.de, false, g.dp[0], g.dp[1], dq, f.e, p.wq, N, H, H)
	num.LinearBackward(g.de, true, g.dp[2], g.dp[3], dk, f.e, p.wk, N, H, H)
	num.LinearBackward(g.de, true, g.dp[4], g.dp[5], dv, f.e, p.wv, N, H, H)
	num.PutBuf(gy, da, ds, dq, dk, dv)
	return g
}
