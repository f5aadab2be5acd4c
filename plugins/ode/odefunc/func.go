package odefunc

import (
	"fmt"
	"math"

	"liquidlab/framework/num"
)

// The seed's ODEFunc constants: decay_factor, adaptive_factor, stability_factor, alpha.
const (
	decayFactor     = 0.1
	adaptiveFactor  = 0.01
	stabilityFactor = 0.1
	alpha           = 0.2
	invSqrt2        = 0.7071067811865476
	// blockRows is the unit of parallel work and of gradient accumulation. It is
	// fixed (not derived from the core count) so that results do not depend on
	// GOMAXPROCS.
	blockRows = 64
)

// Func is the seed's ODEFunc over a [rows, h] tensor of token vectors:
//
//	f(t, y) = LN(−0.1·(1 + 0.01·‖y‖₂)·y + 0.8·tanh(y) + 0.2·gelu(y) + 0.1·y)
//
// row by row, with LayerNorm weight gamma and bias beta (eps 1e-5). It implements
// odeint.Func. Eval and VJP must not be called concurrently on one Func; they do
// not allocate beyond the goroutines of num.ParallelRows.
type Func struct {
	rows, h     int
	gamma, beta []float32
	// per block: 2h float64 gradient accumulators (dγ, dβ) and 3h float32 scratch.
	acc     []float64
	scratch []float32

	// arguments of the call in flight, read by the bound kernels below
	y, dy, g, gy []float32
	sc           float32 // EvalComb: y is the base, x = y + sc·Σ cs·vs
	cs           []float32
	vs           [][]float32
	evalFn       func(lo, hi int)
	combFn       func(lo, hi int)
	vjpFn        func(lo, hi int)
}

// NewFunc returns f for rows token vectors of size h with LayerNorm parameters
// gamma and beta (copied).
func NewFunc(rows, h int, gamma, beta []float32) (*Func, error) {
	if rows <= 0 || h <= 0 {
		return nil, fmt.Errorf("odefunc: need rows > 0 and h > 0, got rows=%d h=%d", rows, h)
	}
	if len(gamma) != h || len(beta) != h {
		return nil, fmt.Errorf("odefunc: layer_norm weight/bias have %d/%d values, want %d", len(gamma), len(beta), h)
	}
	nb := (rows + blockRows - 1) / blockRows
	f := &Func{
		rows: rows, h: h,
		gamma:   append([]float32(nil), gamma...),
		beta:    append([]float32(nil), beta...),
		acc:     make([]float64, nb*2*h),
		scratch: make([]float32, nb*3*h),
	}
	f.evalFn = f.evalBlocks
	f.combFn = f.combBlocks
	f.vjpFn = f.vjpBlocks
	return f, nil
}

// Size is rows·h, the length of the state vector.
func (f *Func) Size() int { return f.rows * f.h }

func (f *Func) blocks() int { return (f.rows + blockRows - 1) / blockRows }

func (f *Func) check(what string, s []float32) {
	if len(s) != f.rows*f.h {
		panic(fmt.Sprintf("odefunc: %s has %d values, want %d", what, len(s), f.rows*f.h))
	}
}

// Eval sets dy = f(t, y). dy must not overlap y. It panics if a length is not
// rows·h (a programmer error: odeint passes the state it was given).
func (f *Func) Eval(_ float64, y, dy []float32) {
	f.check("y", y)
	f.check("dy", dy)
	f.y, f.dy = y, dy
	num.ParallelRows(f.blocks(), blockRows*f.h*60, f.evalFn)
	f.y, f.dy = nil, nil
}

// EvalComb sets dy = f(t, x) for x = base + scale·Σ cs[k]·vs[k], formed as
// odeint.CombFunc prescribes, without storing x (odeint's solvers call it for
// the stage inputs they do not keep). dy must not overlap base or vs.
func (f *Func) EvalComb(_ float64, base []float32, scale float32, cs []float32, vs [][]float32, dy []float32) {
	f.check("base", base)
	f.check("dy", dy)
	for _, v := range vs {
		f.check("term", v)
	}
	f.y, f.dy, f.sc, f.cs, f.vs = base, dy, scale, cs, vs
	num.ParallelRows(f.blocks(), blockRows*f.h*(60+2*len(cs)), f.combFn)
	f.y, f.dy, f.cs, f.vs = nil, nil, nil, nil
}

func (f *Func) combBlocks(lo, hi int) {
	h := f.h
	r0, r1 := lo*blockRows, min(hi*blockRows, f.rows)
	if evalCombC(f.dy, f.y, f.sc, f.cs, f.vs, f.gamma, f.beta, r0, r1, h) {
		return
	}
	for b := lo; b < hi; b++ {
		er, xr := f.scratch[b*3*h:b*3*h+h], f.scratch[b*3*h+h:b*3*h+2*h]
		for i := b * blockRows; i < min((b+1)*blockRows, f.rows); i++ {
			combRow(xr, f.y[i*h:(i+1)*h], f.sc, f.cs, f.vs, i*h)
			evalRow(xr, f.dy[i*h:(i+1)*h], er, f.gamma, f.beta)
		}
	}
}

// combRow sets x = base + sc·s with s = cs[0]·vs[0][off:], then s + cs[k]·vs[k][off:]
// (odeint's lincomb order; float32 conversions keep Go from fusing).
func combRow(x, base []float32, sc float32, cs []float32, vs [][]float32, off int) {
	for j := range x {
		var s float32
		for k, c := range cs {
			if k == 0 {
				s = c * vs[0][off+j]
			} else {
				s += float32(c * vs[k][off+j])
			}
		}
		x[j] = base[j] + float32(sc*s)
	}
}

// VJP adds gᵀ∂f/∂y to gy and accumulates gᵀ∂f/∂gamma and gᵀ∂f/∂beta into the
// Func's gradient (see AddGrads). gy must not overlap y or g.
func (f *Func) VJP(_ float64, y, g, gy []float32) {
	f.check("y", y)
	f.check("g", g)
	f.check("gy", gy)
	f.y, f.g, f.gy = y, g, gy
	num.ParallelRows(f.blocks(), blockRows*f.h*120, f.vjpFn)
	f.y, f.g, f.gy = nil, nil, nil
}

// ZeroGrad clears the accumulated gamma and beta gradients.
func (f *Func) ZeroGrad() { clear(f.acc) }

// AddGrads adds the gradients accumulated by VJP since the last ZeroGrad to
// dGamma and dBeta (each h values; either may be nil). The block partial sums are
// reduced in a fixed order, so the result does not depend on the core count.
func (f *Func) AddGrads(dGamma, dBeta []float32) {
	h := f.h
	tg, tb := make([]float64, h), make([]float64, h)
	for b := 0; b < f.blocks(); b++ {
		a := f.acc[b*2*h : (b+1)*2*h]
		for j := 0; j < h; j++ {
			tg[j] += a[j]
			tb[j] += a[h+j]
		}
	}
	for j := 0; j < h; j++ {
		if dGamma != nil {
			dGamma[j] += float32(tg[j])
		}
		if dBeta != nil {
			dBeta[j] += float32(tb[j])
		}
	}
}

// lanes is the number of partial sums of every reduction over a token's h
// values: value i goes to partial sum i mod lanes, in index order, and the
// partial sums are then added pairwise (laneSum). The C kernel of the cgo build
// (eval_cgo.go) keeps the partial sums in one 16-float vector, so its results
// are these bits.
const lanes = 16

// laneSum adds the partial sums pairwise: p[l] += p[l+w] for w = 8, 4, 2, 1.
func laneSum(p *[lanes]float32) float32 {
	for w := lanes / 2; w >= 1; w /= 2 {
		for l := 0; l < w; l++ {
			p[l] += p[l+w]
		}
	}
	return p[0]
}

// sumSq is Σv² in lane order.
func sumSq(v []float32) float32 {
	var p [lanes]float32
	for i, x := range v {
		p[i%lanes] += float32(x * x)
	}
	return laneSum(&p)
}

// sumDev is Σ(v−mu)² in lane order.
func sumDev(v []float32, mu float32) float32 {
	var p [lanes]float32
	for i, x := range v {
		a := x - mu
		p[i%lanes] += float32(a * a)
	}
	return laneSum(&p)
}

// linCoef is the coefficient of y in the pre-LayerNorm vector:
// −0.1·(1+0.01·n) + 0.1 = −0.001·n, formed in float64.
func linCoef(sumsq float32) (c, n float32) {
	nn := math.Sqrt(float64(sumsq))
	return float32(-decayFactor * adaptiveFactor * nn), float32(nn)
}

func rstdOf(sumdev float32, h int) float32 {
	return float32(1 / math.Sqrt(float64(sumdev)/float64(h)+num.LNEps))
}

func (f *Func) evalBlocks(lo, hi int) {
	h := f.h
	r0, r1 := lo*blockRows, min(hi*blockRows, f.rows)
	if evalRowsC(f.dy[r0*h:r1*h], f.y[r0*h:r1*h], f.gamma, f.beta, r1-r0, h) {
		return
	}
	for b := lo; b < hi; b++ {
		er := f.scratch[b*3*h : b*3*h+h]
		for i := b * blockRows; i < min((b+1)*blockRows, f.rows); i++ {
			evalRow(f.y[i*h:(i+1)*h], f.dy[i*h:(i+1)*h], er, f.gamma, f.beta)
		}
	}
}

// evalRow writes f(y) for one token; er is h floats of scratch. It is the
// reference of the C kernel (eval_cgo.go), which gives the same bits: the same
// float32 operations in the same order, without fused multiply-adds (the
// float32 conversions keep Go from fusing), and reductions in lane order.
func evalRow(yr, dr, er, gamma, beta []float32) {
	h := len(yr)
	dr, er = dr[:h], er[:h]
	c, _ := linCoef(sumSq(yr))
	num.TanhFastSlice(dr, yr)
	num.ErfFastSlice(er, yr, invSqrt2)
	var p [lanes]float32
	for j, y := range yr {
		x := float32(c*y) + float32((1-alpha)*dr[j])
		x += float32(float32((0.5*alpha)*y) * (1 + er[j]))
		dr[j] = x
		p[j%lanes] += x
	}
	mu := laneSum(&p) / float32(h)
	r := rstdOf(sumDev(dr, mu), h)
	g, bb := gamma[:h], beta[:h]
	for j, x := range dr {
		dr[j] = float32(float32((x-mu)*r)*g[j]) + bb[j]
	}
}

func (f *Func) vjpBlocks(lo, hi int) {
	h := f.h
	for b := lo; b < hi; b++ {
		s := f.scratch[b*3*h : (b+1)*3*h]
		acc := f.acc[b*2*h : (b+1)*2*h]
		r0, r1 := b*blockRows, min((b+1)*blockRows, f.rows)
		if vjpRowsC(f.y[r0*h:r1*h], f.g[r0*h:r1*h], f.gy[r0*h:r1*h], f.gamma, s, acc, r1-r0, h) {
			continue
		}
		for i := r0; i < r1; i++ {
			vjpRow(f.y[i*h:(i+1)*h], f.g[i*h:(i+1)*h], f.gy[i*h:(i+1)*h], f.gamma, s, acc)
		}
	}
}

// vjpRow recomputes the forward of one token from y, then adds gᵀ∂f/∂y to gy and
// gᵀ∂f/∂(γ,β) to acc (2h float64). s is 3h floats of scratch. It is the
// reference of the C kernel (eval_cgo.go): the same operations in the same
// order, reductions in lane order, conversions that keep Go from fusing.
//
// With x = c(n)·y + φ(y), c = −0.001·n, n = ‖y‖, φ = 0.8·tanh + 0.2·gelu, and
// dx the LayerNorm input gradient:
// gy_k += dx_k·(c + φ'(y_k)) − 0.001·(Σ_j dx_j·y_j)·y_k/n.
func vjpRow(yr, gr, gyr, gamma, s []float32, acc []float64) {
	h := len(yr)
	gr, gyr = gr[:h], gyr[:h]
	sa, sb, sc := s[:h], s[h:2*h], s[2*h:3*h]
	c, n := linCoef(sumSq(yr))
	num.TanhFastSlice(sa, yr)          // tanh
	num.ErfFastSlice(sb, yr, invSqrt2) // erf(y/√2)
	num.NormPDFFastSlice(sc, yr)       // φ(y)
	var p [lanes]float32
	for j, y := range yr {
		th, cdf := sa[j], float32(0.5*(1+sb[j]))
		x := float32(c*y) + float32((1-alpha)*th)
		x += float32(float32(alpha*y) * cdf)
		sa[j] = x
		// ∂x_j/∂y_j without the norm term
		d := c + float32((1-alpha)*(1-float32(th*th)))
		sc[j] = d + float32(alpha*(cdf+float32(y*sc[j])))
		p[j%lanes] += x
	}
	mu := laneSum(&p) / float32(h)
	r := rstdOf(sumDev(sa, mu), h)
	dg, db := acc[:h], acc[h:2*h]
	gam := gamma[:h]
	var p1, p2 [lanes]float32
	for j, x := range sa {
		xh := (x - mu) * r
		gj := gr[j]
		dg[j] += float64(gj * xh)
		db[j] += float64(gj)
		gx := gj * gam[j]
		p1[j%lanes] += gx
		p2[j%lanes] += float32(gx * xh)
		sa[j] = xh
		sb[j] = gx
	}
	a1 := laneSum(&p1) / float32(h)
	a2 := laneSum(&p2) / float32(h)
	var pd [lanes]float32
	for j, xh := range sa {
		dx := r * (sb[j] - a1 - float32(xh*a2))
		sb[j] = dx
		pd[j%lanes] += float32(dx * yr[j])
	}
	dot := laneSum(&pd)
	var k float32
	if n > 0 {
		k = -decayFactor * adaptiveFactor * dot / n
	}
	for j, y := range yr {
		gyr[j] += float32(sb[j]*sc[j]) + float32(k*y)
	}
}
