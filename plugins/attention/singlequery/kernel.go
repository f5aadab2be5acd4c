package singlequery

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"liquidlab/framework/num"
)

// saved is what a forward pass keeps for its backward pass.
type saved struct {
	o      options
	B, Sc  int
	offset int // positions seen before this chunk
	p      params
	e      []float32 // [B,Sc,H] the input, by reference
	ts, h  []float32 // [B,Sc], [B,H] the inputs, by reference
	q, u   []float32 // [B,H] query and W_kᵀq
	w      []float32 // [B,Sc] output weights
	c      []float32 // [B,H] output context
	score  []float32 // [B,Sc] output scores (−Inf where unselected)
}

// forward runs one chunk. st holds the carried state on entry (owned by the
// caller, already copied from the request) and the new state on return. e and ts
// are kept by reference in the result, for the backward pass.
//
// x_j = e_j + ts_j·w_t + b_t is never formed: every product with x_j splits into
// a product with e_j plus two scalar terms, so a chunk reads e twice and writes
// nothing of its size.
func forward(o *options, p params, e, ts, h []float32, B, Sc int, st *carry) *saved {
	H, W := o.H, o.window
	N := st.offset + Sc
	inv := 1 / math.Sqrt(float64(H))
	f := &saved{o: *o, B: B, Sc: Sc, offset: st.offset, e: e, ts: ts, h: h}

	q := make([]float32, B*H)
	num.LinearForward(q, h, p.wq, p.bq, B, H, H)
	u := make([]float32, B*H) // u = W_kᵀq, so q·Lin_k(x) = x·u + q·b_k
	num.Gemm(false, false, B, H, H, 1, q, H, p.wk, H, 0, u, H)

	score := make([]float32, B*Sc)
	w := make([]float32, B*Sc)
	c := make([]float32, B*H)
	xs := make([]float32, B*H) // Σ p_j x_j over the chunk's online positions
	vs := make([]float32, B*H)
	sp := make([]float64, B)
	mNew := make([]float64, B)
	pw := make([]float32, Sc)
	var xtmp, vtmp []float32
	j0 := 0
	if o.ring() {
		j0 = max(0, Sc-W)
		xtmp = make([]float32, (Sc-j0)*H)
		vtmp = make([]float32, (Sc-j0)*H)
	}
	num0 := make([]float64, H)

	for b := 0; b < B; b++ {
		eb, tb := e[b*Sc*H:(b+1)*Sc*H], ts[b*Sc:(b+1)*Sc]
		ub := u[b*H : (b+1)*H]
		sb := score[b*Sc : (b+1)*Sc] // raw scores first; unselected set to −Inf at the end
		s0 := float32((dot(q[b*H:(b+1)*H], p.bk) + dot(p.bt, ub)) * inv)
		st1 := float32(dot(p.wt, ub) * inv)
		for j := range sb {
			sb[j] = s0 + tb[j]*st1
		}
		gemv(false, Sc, H, float32(inv), eb, ub, 1, sb)

		// Online softmax over the positions selected for good.
		m := math.Inf(-1)
		if st.l[b] > 0 {
			m = float64(st.m[b])
		}
		any := false
		for j, v := range sb {
			if o.online(st.offset + j) {
				any = true
				m = math.Max(m, float64(v))
			}
		}
		mNew[b] = m
		if any {
			var spt float64
			for j, v := range sb {
				pw[j] = 0
				if o.online(st.offset + j) {
					e := math.Exp(float64(v) - m)
					pw[j] = float32(e)
					sp[b] += e
					spt += e * float64(tb[j])
				}
			}
			xb := xs[b*H : (b+1)*H]
			for i := range xb {
				xb[i] = float32(spt*float64(p.wt[i]) + sp[b]*float64(p.bt[i]))
			}
			gemv(true, Sc, H, 1, eb, pw, 1, xb)
		}

		// Window cache: the chunk's last min(W,Sc) positions replace the oldest.
		if o.ring() {
			n := Sc - j0
			for j := j0; j < Sc; j++ {
				xr, er := xtmp[(j-j0)*H:(j-j0+1)*H], eb[j*H:(j+1)*H]
				for i := range xr {
					xr[i] = er[i] + tb[j]*p.wt[i] + p.bt[i]
				}
			}
			num.LinearForward(vtmp, xtmp, p.wv, p.bv, n, H, H)
			for j := j0; j < Sc; j++ {
				slot := (st.offset + j) % W
				st.winS[b*W+slot] = sb[j]
				copy(st.winV[(b*W+slot)*H:(b*W+slot+1)*H], vtmp[(j-j0)*H:(j-j0+1)*H])
			}
		}
	}
	num.Gemm(false, true, B, H, H, 1, xs, H, p.wv, H, 0, vs, H)

	for b := 0; b < B; b++ {
		// New online state.
		lOld, mOld, m := float64(st.l[b]), float64(st.m[b]), mNew[b]
		acc := st.acc[b*H : (b+1)*H]
		l := sp[b]
		scale := 0.0
		if lOld > 0 {
			scale = math.Exp(mOld - m)
			l += lOld * scale
		}
		if l > 0 {
			for i := range acc {
				acc[i] = float32(float64(acc[i])*scale + float64(vs[b*H+i]) + float64(p.bv[i])*sp[b])
			}
			st.m[b], st.l[b] = float32(m), float32(l)
		} else {
			st.m[b], st.l[b] = 0, 0
			clear(acc)
		}

		// Combine the online state with the window cache.
		M := math.Inf(-1)
		if l > 0 {
			M = m
		}
		if o.ring() {
			for i := 0; i < W; i++ {
				if pos := slotPos(i, N, W); pos >= 0 && o.inRing(pos) {
					M = math.Max(M, float64(st.winS[b*W+i]))
				}
			}
		}
		L := 0.0
		clear(num0)
		if l > 0 {
			s := math.Exp(m - M)
			L = l * s
			for i, v := range acc {
				num0[i] = float64(v) * s
			}
		}
		if o.ring() {
			for i := 0; i < W; i++ {
				if pos := slotPos(i, N, W); pos >= 0 && o.inRing(pos) {
					e := math.Exp(float64(st.winS[b*W+i]) - M)
					L += e
					for k, v := range st.winV[(b*W+i)*H : (b*W+i+1)*H] {
						num0[k] += e * float64(v)
					}
				}
			}
		}
		if L > 0 {
			for i := range num0 {
				c[b*H+i] = float32(num0[i] / L)
			}
		}

		sb, wb := score[b*Sc:(b+1)*Sc], w[b*Sc:(b+1)*Sc]
		for j, v := range sb {
			if L > 0 && o.selected(st.offset+j, N) {
				wb[j] = float32(math.Exp(float64(v)-M) / L)
			} else {
				sb[j] = float32(math.Inf(-1))
			}
		}
	}
	st.offset = N
	f.q, f.u, f.w, f.c, f.score = q, u, w, c, score
	return f
}

// slotPos is the position held by ring slot i once n positions have been seen
// (negative when the slot has never been written).
func slotPos(i, n, w int) int { return n - 1 - ((n-1-i)%w+w)%w }

// gemv computes y = alpha·op(a)·x + beta·y for a row-major m×n matrix a, with
// op(a) = aᵀ when trans. It goes to the BLAS that package num selected.
func gemv(trans bool, m, n int, alpha float32, a, x []float32, beta float32, y []float32) {
	t := blas.NoTrans
	if trans {
		t = blas.Trans
	}
	blas32.Implementation().Sgemv(t, m, n, alpha, a, n, x, 1, beta, y, 1)
}

func dot(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		s += float64(v) * float64(b[i])
	}
	return s
}

// grads are the results of backward.
type grads struct {
	de, dts, dh                            []float32
	dwt, dbt, dwq, dbq, dwk, dbk, dwv, dbv []float32
}

// backward computes the gradients of one chunk with the carried state held
// constant. Any of dc [B,H], dw [B,Sc], dscore [B,Sc] may be nil (zero).
//
// With w_j the output weights and c the output context (the carried state acts
// as one more softmax item of constant score), ds_j = w_j·(dc·v_j − dc·c + dw_j −
// Σ_k dw_k w_k) + dscore_j, v_j = W_v x_j + b_v, and dx_j = ds_j/√H·u + w_j·W_vᵀdc.
//
// out allocates the gradients the stage returns (stage.OutputBuf), zeroed.
func backward(f *saved, dc, dw, dscore []float32, out func(int) []float32) *grads {
	B, Sc, H := f.B, f.Sc, f.o.H
	N := f.offset + Sc
	p := f.p
	inv := 1 / math.Sqrt(float64(H))
	g := &grads{
		de: out(B * Sc * H), dts: out(B * Sc), dh: out(B * H),
		dwt: make([]float32, H), dbt: make([]float32, H),
		dwq: out(H * H), dbq: make([]float32, H),
		dwk: out(H * H), dbk: make([]float32, H),
		dwv: out(H * H), dbv: make([]float32, H),
	}
	gv := make([]float32, B*H) // W_vᵀ dc
	if dc != nil {
		num.Gemm(false, false, B, H, H, 1, dc, H, p.wv, H, 0, gv, H)
	}
	a := make([]float32, Sc) // ds_j/√H
	gx := make([]float32, Sc)
	aw := make([]float32, 2*Sc)  // rows (a_j, w_j)
	du := make([]float32, B*H)   // Σ_j a_j x_j = dL/du
	xbar := make([]float32, B*H) // Σ_j w_j x_j
	sa := make([]float64, B)     // Σ_j a_j
	sw := make([]float64, B)     // Σ_j w_j
	for b := 0; b < B; b++ {
		eb, tb := f.e[b*Sc*H:(b+1)*Sc*H], f.ts[b*Sc:(b+1)*Sc]
		wb := f.w[b*Sc : (b+1)*Sc]
		ub, gb := f.u[b*H:(b+1)*H], gv[b*H:(b+1)*H]
		uw, gw := dot(ub, p.wt), dot(gb, p.wt)
		var dcb, dcc, swd float64
		if dc != nil {
			// dc·v_j = e_j·g + ts_j·(w_t·g) + b_t·g + dc·b_v
			dcb = dot(dc[b*H:(b+1)*H], p.bv) + dot(gb, p.bt)
			dcc = dot(dc[b*H:(b+1)*H], f.c[b*H:(b+1)*H])
			gemv(false, Sc, H, 1, eb, gb, 0, gx)
		}
		if dw != nil {
			swd = dot(dw[b*Sc:(b+1)*Sc], wb)
		}
		var at, wt float64
		for j := range a {
			a[j] = 0
			if f.o.selected(f.offset+j, N) {
				var v float64
				if dc != nil {
					v += float64(gx[j]) + float64(tb[j])*gw + dcb - dcc
				}
				if dw != nil {
					v += float64(dw[b*Sc+j]) - swd
				}
				d := float64(wb[j]) * v
				if dscore != nil {
					d += float64(dscore[b*Sc+j])
				}
				a[j] = float32(d * inv)
				sa[b] += d * inv
				sw[b] += float64(wb[j])
			}
			aw[2*j] = a[j]
			if dc != nil {
				aw[2*j+1] = wb[j]
			}
			g.dts[b*Sc+j] = float32(float64(a[j])*uw + float64(aw[2*j+1])*gw)
			at += float64(a[j]) * float64(tb[j])
			wt += float64(aw[2*j+1]) * float64(tb[j])
		}
		// dx_j = a_j·u + w_j·W_vᵀdc, one rank-two product.
		deb := g.de[b*Sc*H : (b+1)*Sc*H]
		num.ParallelRows(Sc, 2*H, func(lo, hi int) {
			for j := lo; j < hi; j++ {
				aj, wj := aw[2*j], aw[2*j+1]
				row := deb[j*H : (j+1)*H]
				for i := range row {
					row[i] = aj*ub[i] + wj*gb[i]
				}
			}
		})

		// Σ_j a_j x_j and Σ_j w_j x_j, with x_j = e_j + ts_j·w_t + b_t.
		dub := du[b*H : (b+1)*H]
		for i := range dub {
			dub[i] = float32(at*float64(p.wt[i]) + sa[b]*float64(p.bt[i]))
		}
		gemv(true, Sc, H, 1, eb, a, 1, dub)
		if dc != nil {
			xb := xbar[b*H : (b+1)*H]
			for i := range xb {
				xb[i] = float32(wt*float64(p.wt[i]) + sw[b]*float64(p.bt[i]))
			}
			gemv(true, Sc, H, 1, eb, wb, 1, xb)
		}

		swb := sw[b]
		if dc == nil {
			swb = 0
		}
		for i := 0; i < H; i++ {
			g.dwt[i] += float32(at*float64(ub[i]) + wt*float64(gb[i]))
			g.dbt[i] += float32(sa[b]*float64(ub[i]) + swb*float64(gb[i]))
		}
	}
	if dc != nil {
		num.Gemm(true, false, H, H, B, 1, dc, H, xbar, H, 0, g.dwv, H)
		for b := 0; b < B; b++ {
			for i := 0; i < H; i++ {
				g.dbv[i] += float32(float64(dc[b*H+i]) * sw[b])
			}
		}
	}
	// u = W_kᵀq and the constant q·b_k/√H term.
	num.Gemm(true, false, H, H, B, 1, f.q, H, du, H, 0, g.dwk, H)
	dq := make([]float32, B*H)
	num.Gemm(false, true, B, H, H, 1, du, H, p.wk, H, 0, dq, H)
	for b := 0; b < B; b++ {
		for i := 0; i < H; i++ {
			g.dbk[i] += float32(float64(f.q[b*H+i]) * sa[b])
			dq[b*H+i] += float32(float64(p.bk[i]) * sa[b])
		}
	}
	num.LinearBackward(g.dh, false, g.dwq, g.dbq, dq, f.h, p.wq, B, H, H)
	return g
}
