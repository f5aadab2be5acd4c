package coupling

import (
	"math"

	"liquidlab/framework/num"
	"liquidlab/framework/num/packed"
)

// Rows are processed in fixed chunks so that reductions (the scalar gradients)
// are summed in the same order whatever the number of cores: results are
// deterministic.
const chunkRows = 64

func numChunks(n int) int { return (n + chunkRows - 1) / chunkRows }

// parallel runs fn over [0,n) in chunks of chunkRows rows, chunk c covering
// [lo,hi), spread over the cores when the work pays for it.
func parallel(n, costPerRow int, fn func(c, lo, hi int)) {
	num.ParallelRows(numChunks(n), chunkRows*costPerRow, func(a, b int) {
		for c := a; c < b; c++ {
			fn(c, c*chunkRows, min((c+1)*chunkRows, n))
		}
	})
}

// tape is what a forward pass with gradients saves for the backward pass.
type tape struct {
	d    dims
	p    *paramSet
	n    int
	emb  []float32   // the input x, referenced, not copied
	proj []float32   // Lin_p(emb), [n,D]
	xs   [][]float32 // xs[i] is layer i's input, [n,D]; xs[0] = x0
	hs   [][]float32 // ReLU outputs of the scale nets, [n,F]
	ht   [][]float32 // ReLU outputs of the translate nets, [n,F]
	th   [][]float32 // tanh outputs of the scale nets, [n,H]
	ut   [][]float32 // translate net outputs (before the adapter), [n,H]
}

// forward runs the reducer on emb [n,D]. It returns the coupling stack's output
// y [n,D] (before the latent slice), x0 [n,D] and ldj [n]; y may alias x0 when
// K = 0. With save it also returns the tape.
func forward(d dims, p *paramSet, emb []float32, n int, save bool) (y, x0, ldj []float32, tp *tape) {
	D, H, F := d.D, d.H, d.F
	// The intermediates come from num's buffer pool and go back to it (see
	// releaseForward and tape.release), which spares the page faults of fresh
	// 2–8 MB allocations on every call; every one is written before it is read.
	x0 = num.GetBuf(n * D)
	var proj []float32
	if save || p.gp != 0 {
		proj = num.GetBuf(n * D)
		if !save {
			defer num.PutBuf(proj)
		}
		num.LinearForward(proj, emb, p.wp, p.bp, n, D, D)
		gp := p.gp
		parallel(n, D, func(_, lo, hi int) {
			for k := lo * D; k < hi*D; k++ {
				x0[k] = gp*proj[k] + (1-gp)*emb[k]
			}
		})
	} else {
		copy(x0, emb)
	}
	ldj = make([]float32, n)
	if save {
		tp = &tape{d: d, p: p, n: n, emb: emb, proj: proj}
	}
	var hs, ht, th, ut []float32
	if !save && d.K > 0 {
		hs, ht = num.GetBuf(n*F), num.GetBuf(n*F)
		th, ut = num.GetBuf(n*H), num.GetBuf(n*H)
		defer num.PutBuf(hs, ht, th, ut)
	}
	cur := x0
	for i := 0; i < d.K; i++ {
		out := cur
		if save || i == 0 {
			out = num.GetBuf(n * D)
		}
		if save {
			hs, ht = num.GetBuf(n*F), num.GetBuf(n*F)
			th, ut = num.GetBuf(n*H), num.GetBuf(n*H)
			tp.xs = append(tp.xs, cur)
			tp.hs, tp.ht = append(tp.hs, hs), append(tp.ht, ht)
			tp.th, tp.ut = append(tp.th, th), append(tp.ut, ut)
		}
		layerForward(d, &p.flows[i], i%2 == 1, cur, out, x0, ldj, n, hs, th, ht, ut)
		cur = out
	}
	return cur, x0, ldj, tp
}

// release returns the tape's buffers to the pool; the tape is unusable
// afterwards.
func (tp *tape) release() {
	num.PutBuf(tp.proj)
	for _, l := range [][][]float32{tp.xs, tp.hs, tp.ht, tp.th, tp.ut} {
		num.PutBuf(l...)
	}
	*tp = tape{}
}

// releaseY returns a taped forward's y to the buffer pool once z has been
// formed (x0 stays: it is the tape's first layer input, or unused when K = 0).
func releaseY(d dims, y, x0 []float32) {
	if d.K == 0 {
		num.PutBuf(x0) // y is x0, and the tape does not hold it
		return
	}
	num.PutBuf(y)
}

// releaseForward returns a no-tape forward's y and x0 to the buffer pool; the
// caller must be done with both (z has been formed).
func releaseForward(y, x0 []float32) {
	if len(y) > 0 && len(x0) > 0 && &y[0] != &x0[0] {
		num.PutBuf(y)
	}
	num.PutBuf(x0)
}

// latent writes z [n,L] = y[:, :L] (+ Residual·x0[:, :L] when L = D/2) into z
// and returns it.
func latent(d dims, y, x0 []float32, n int, z []float32) []float32 {
	D, L := d.D, d.L
	z = z[:n*L]
	res := L == d.H
	parallel(n, L, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			zr, yr := z[r*L:(r+1)*L], y[r*D:r*D+L]
			copy(zr, yr)
			if res {
				for j, v := range x0[r*D : r*D+L] {
					zr[j] += v * Residual
				}
			}
		}
	})
	return z
}

// netForward computes h = relu(x1·w1ᵀ + b1) [n,F] and u = h·w2ᵀ + b2 [n,H],
// where x1 is the first H columns of x (row stride ldx).
func netForward(nt *net, x []float32, ldx int, h, u []float32, n, H, F int) {
	if usePacked(n) && netForwardPacked(nt, x, ldx, h, u, n, H, F) {
		return
	}
	netForwardSgemm(nt, x, ldx, h, u, n, H, F)
}

// netForwardSgemm is netForward on num.Gemm (OpenBLAS's sgemm).
func netForwardSgemm(nt *net, x []float32, ldx int, h, u []float32, n, H, F int) {
	parallel(n, F+H, func(_, lo, hi int) {
		for r := lo; r < hi; r++ {
			copy(h[r*F:(r+1)*F], nt.b1)
			copy(u[r*H:(r+1)*H], nt.b2)
		}
	})
	num.Gemm(false, true, n, F, H, 1, x, ldx, nt.w1, H, 1, h, F)
	parallel(n, F, func(_, lo, hi int) { num.ReLUInPlace(h[lo*F : hi*F]) })
	num.Gemm(false, true, n, H, F, 1, h, F, nt.w2, F, 1, u, H)
}

// usePacked reports whether netForward runs on package packed's AVX-512F
// kernel: where the CPU has it, for products large enough that packing the
// weights (F×H floats) is small beside them.
func usePacked(n int) bool { return n >= 256 && packed.Available() }

// netForwardPacked is netForward on package packed's kernel, which adds the
// bias itself and, unlike OpenBLAS's sgemm, reuses the weights packed once per
// call. It reports false if the kernel refused; h may then be written already,
// and the caller's sgemm path rewrites both h and u.
func netForwardPacked(nt *net, x []float32, ldx int, h, u []float32, n, H, F int) bool {
	if nt.p1 == nil {
		p1, p2 := new(packed.Matrix), new(packed.Matrix)
		if packed.Pack(p1, nt.w1, F, H) != nil || packed.Pack(p2, nt.w2, H, F) != nil {
			return false
		}
		nt.p1, nt.p2 = p1, p2
	}
	if packed.Gemm(h, F, x, ldx, n, nt.p1, nt.b1) != nil {
		return false
	}
	parallel(n, F, func(_, lo, hi int) { num.ReLUInPlace(h[lo*F : hi*F]) })
	return packed.Gemm(u, H, h, F, n, nt.p2, nt.b2) == nil
}

// logGate is log|1 + g·(e^s − 1)|, the log-determinant of one gated coupling
// element, given g·(e^s − 1).
func logGate(gm float32) float64 {
	v := float64(gm)
	if v > -1 {
		return math.Log1p(v)
	}
	return math.Log(-(1 + v))
}

// layerForward applies coupling layer f to in [n,D], writing out [n,D] (out may
// be in) and adding the layer's log-determinant to ldj. On return th holds the
// tanh of the scale net and ut the translate net's output.
func layerForward(d dims, f *flow, odd bool, in, out, x0, ldj []float32, n int, hs, th, ht, ut []float32) {
	D, H, F := d.D, d.H, d.F
	if n == 0 {
		return
	}
	netForward(f.nets[0], in, D, hs, th, n, H, F)
	netForward(f.nets[1], in, D, ht, ut, n, H, F)
	as, at, g, exact := f.as, f.at, f.g, d.exact
	inPlace := &in[0] == &out[0]
	parallel(n, 40*H, func(_, lo, hi int) {
		if !exact && layerRowsC(in[lo*D:hi*D], out[lo*D:hi*D], x0[lo*D:hi*D], ldj[lo:hi], th[lo*H:hi*H], ut[lo*H:hi*H], hi-lo, D, H, as, at, g, odd, inPlace) {
			return
		}
		var sb, eb []float32
		if !exact {
			sb, eb = make([]float32, H), make([]float32, H)
		}
		for r := lo; r < hi; r++ {
			xi, yo := in[r*D:(r+1)*D], out[r*D:(r+1)*D]
			thr, utr := th[r*H:(r+1)*H], ut[r*H:(r+1)*H]
			var acc float64
			if !exact {
				acc = seedRow(xi[H:], yo[H:], thr, utr, sb, eb, as, at, g)
			} else {
				x2, y2 := xi[H:], yo[H:]
				for j, u := range thr {
					t := tanh32(u)
					thr[j] = t
					s := t * as
					e, em1 := expm1(s)
					xv := x2[j]
					y2[j] = g*(xv*e+utr[j]*at) + (1-g)*xv
					acc += logGate(g * em1)
				}
			}
			if !inPlace {
				copy(yo[:H], xi[:H])
			}
			if odd {
				for k, v := range x0[r*D : (r+1)*D] {
					yo[k] += float32(v * Residual)
				}
			}
			ldj[r] += float32(acc)
		}
	})
}

// seedRow is the seed's (not exact) coupling of one row's second half: th ←
// tanh(th), y2 = g·(x2·e^{as·th} + at·ut) + (1−g)·x2, and it returns
// g·Σ as·th, the sum in lane order (value j in partial sum j mod 16, then
// pairwise), which is the C kernel's (layerRowsC, kernel_cgo.go) order: the
// pure-Go build and the cgo build give the same bits. sb and eb are scratch.
func seedRow(x2, y2, thr, utr, sb, eb []float32, as, at, g float32) float64 {
	num.TanhFastSlice(thr, thr)
	for j, t := range thr {
		sb[j] = t * as
	}
	num.ExpFastSlice(eb, sb)
	var p [16]float32
	for j, e := range eb {
		xv := x2[j]
		y2[j] = float32(g*(float32(xv*e)+float32(utr[j]*at))) + float32((1-g)*xv)
		p[j%16] += sb[j]
	}
	for w := 8; w >= 1; w /= 2 {
		for l := 0; l < w; l++ {
			p[l] += p[l+w]
		}
	}
	return float64(p[0] * g)
}

// grads holds gradient buffers laid out like a paramSet plus float64
// accumulators for the scalars.
type grads struct {
	set           *paramSet // slices into the gradient tensors; scalars unused
	dgp           float64
	das, dat, dgs []float64 // per layer
}

// backward writes dL/demb [n,D] into demb (zeroed) and returns it, and
// accumulates parameter gradients into g, given dz [n,L] and dldj [n] (either
// may be nil). It reuses the tape's buffers as scratch: a tape supports one
// backward pass.
func (tp *tape) backward(dz, dldj []float32, g *grads, demb []float32) []float32 {
	d, n := tp.d, tp.n
	D, H, L, F := d.D, d.H, d.L, d.F
	// scratch from the pool, zeroed: both accumulate
	dY, dX0 := num.GetBuf(n*D), num.GetBuf(n*D)
	clear(dY)
	clear(dX0)
	defer num.PutBuf(dY, dX0)
	if dz != nil {
		res := L == H
		parallel(n, L, func(_, lo, hi int) {
			for r := lo; r < hi; r++ {
				dzr := dz[r*L : (r+1)*L]
				copy(dY[r*D:r*D+L], dzr)
				if res {
					for j, v := range dzr {
						dX0[r*D+j] = v * Residual
					}
				}
			}
		})
	}
	dh := num.GetBuf(n * F)
	clear(dh)
	defer num.PutBuf(dh)
	for i := d.K - 1; i >= 0; i-- {
		f, gf := &tp.p.flows[i], &g.set.flows[i]
		g.dgs[i], g.das[i], g.dat[i] = layerBackward(d, f, i%2 == 1, tp.xs[i], tp.th[i], tp.ut[i], dY, dX0, dldj, n)
		netBackward(f.nets[0], gf.nets[0], tp.xs[i], tp.hs[i], tp.th[i], dh, dY, n, D, H, F)
		netBackward(f.nets[1], gf.nets[1], tp.xs[i], tp.ht[i], tp.ut[i], dh, dY, n, D, H, F)
	}
	// dX0 becomes the total gradient of x0; dY becomes dP = gp·dX0.
	gp := tp.p.gp
	demb = demb[:n*D]
	part := make([]float64, numChunks(n))
	parallel(n, 4*D, func(c, lo, hi int) {
		var acc float64
		for k := lo * D; k < hi*D; k++ {
			v := dX0[k] + dY[k]
			acc += float64(v * (tp.proj[k] - tp.emb[k]))
			demb[k] = (1 - gp) * v
			dY[k] = gp * v
		}
		part[c] = acc
	})
	for _, v := range part {
		g.dgp += v
	}
	if gp != 0 {
		num.LinearBackward(demb, true, g.set.wp, g.set.bp, dY, tp.emb, tp.p.wp, n, D, D)
	}
	return demb
}

// layerBackward turns dY (gradient of layer i's output) into the gradient of its
// input, except the nets' contribution to the first half, which netBackward adds.
// It adds the residual's share to dX0, leaves dL/du_s in th and dL/du_t in ut,
// and returns the gradients of the gate and the two adapters.
func layerBackward(d dims, f *flow, odd bool, in, th, ut, dY, dX0, dldj []float32, n int) (dg, das, dat float64) {
	D, H := d.D, d.H
	as, at, g, exact := f.as, f.at, f.g, d.exact
	nc := numChunks(n)
	part := make([]float64, 3*nc)
	parallel(n, 40*H, func(c, lo, hi int) {
		var dl, dx0 []float32
		if dldj != nil {
			dl = dldj[lo:hi]
		}
		if odd {
			dx0 = dX0[lo*D : hi*D]
		}
		in, th, ut, dY := in[lo*D:hi*D], th[lo*H:hi*H], ut[lo*H:hi*H], dY[lo*D:hi*D]
		sg, sas, sat, ok := layerBackRowsC(in, th, ut, dY, dx0, dl, hi-lo, D, H, as, at, g, exact, odd)
		if !ok {
			sg, sas, sat = layerBackRows(in, th, ut, dY, dx0, dl, hi-lo, D, H, as, at, g, exact, odd)
		}
		part[3*c], part[3*c+1], part[3*c+2] = sg, sas, sat
	})
	for c := 0; c < nc; c++ {
		dg += part[3*c]
		das += part[3*c+1]
		dat += part[3*c+2]
	}
	return dg, das, dat
}

// layerBackRows is layerBackward's work on rows rows (the slices start at the
// first): it returns Σ gsum, Σ ds·t and Σ dt·u in row order. dX0 is read only
// when odd, dldj may be nil. The cgo build's C kernel (layerBackRowsC) gives
// the same bits.
func layerBackRows(in, th, ut, dY, dX0, dldj []float32, rows, D, H int, as, at, g float32, exact, odd bool) (sg, sas, sat float64) {
	for r := 0; r < rows; r++ {
		dyr := dY[r*D : (r+1)*D]
		if odd {
			for k, v := range dyr {
				dX0[r*D+k] += v * Residual
			}
		}
		var dl float32
		if dldj != nil {
			dl = dldj[r]
		}
		x2, dy2 := in[r*D+H:(r+1)*D], dyr[H:]
		thr, utr := th[r*H:(r+1)*H], ut[r*H:(r+1)*H]
		for j, t := range thr {
			s := t * as
			e, em1 := expm1(s)
			xv, u, dv := x2[j], utr[j], dy2[j]
			a := 1 + g*em1
			dt := dv * g
			ds := dt * xv * e
			gsum := dv * (xv*em1 + u*at)
			if exact {
				ds += dl * g * e / a
				gsum += dl * em1 / a
			} else {
				ds += dl * g
				gsum += dl * s
			}
			sg += float64(gsum)
			sas += float64(ds * t)
			sat += float64(dt * u)
			thr[j] = ds * as * (1 - t*t)
			utr[j] = dt * at
			dy2[j] = dv * a
		}
	}
	return sg, sas, sat
}

// netBackward back-propagates du [n,H] through a net whose ReLU output was h
// [n,F] and whose input was the first H columns of x (stride D): it adds the
// weight gradients to gn and dL/dx1 to the first H columns of dY. dh [n,F] is
// scratch.
func netBackward(nt, gn *net, x, h, du, dh, dY []float32, n, D, H, F int) {
	num.Gemm(true, false, H, F, n, 1, du, H, h, F, 1, gn.w2, F)
	num.ColSumAdd(gn.b2, du, n, H)
	num.Gemm(false, false, n, F, H, 1, du, H, nt.w2, F, 0, dh, F)
	parallel(n, F, func(_, lo, hi int) { num.ReLUBackward(dh[lo*F:hi*F], h[lo*F:hi*F]) })
	num.Gemm(true, false, F, H, n, 1, dh, F, x, D, 1, gn.w1, H)
	num.ColSumAdd(gn.b1, dh, n, F)
	num.Gemm(false, false, n, H, F, 1, dh, F, nt.w1, H, 1, dY, D)
}
