package odeint

import (
	"math"

	"liquidlab/framework/num"
)

// Vector kernels. Every long loop runs over blocks of blockLen elements, spread
// across cores by num.ParallelRows; reductions are summed per block and then in
// block order, so results do not depend on the number of cores. Inside a block,
// linear combinations are accumulated in an L1-resident tile, one term at a time,
// in the reference's float32 order: s = c₀v₀; s = s + c₁v₁; …; dst = base + scale·s.
// Explicit float32 conversions keep the compiler from fusing multiply-adds, which
// would change rounding.

const (
	tileLen  = 256
	blockLen = 1 << 14
)

// serial disables the block parallelism (benchmarks compare both).
var serial = false

type term struct {
	c float32
	v []float32
}

// pool runs block kernels over [0, n).
type pool struct {
	n, nb int
	part  []float64
	fin   []float32
}

func newPool(n int) *pool {
	nb := (n + blockLen - 1) / blockLen
	return &pool{n: n, nb: nb, part: make([]float64, nb), fin: make([]float32, nb)}
}

// run calls fn on every block; fn returns a partial sum and a finiteness
// accumulator (NaN if it met a NaN or Inf). run returns the total and whether
// every block stayed finite.
func (p *pool) run(cost int, fn func(lo, hi int) (float64, float32)) (float64, bool) {
	body := func(blo, bhi int) {
		for b := blo; b < bhi; b++ {
			lo := b * blockLen
			p.part[b], p.fin[b] = fn(lo, min(lo+blockLen, p.n))
		}
	}
	if serial {
		body(0, p.nb)
	} else {
		num.ParallelRows(p.nb, blockLen*cost, body)
	}
	var s float64
	var acc float32
	for b := 0; b < p.nb; b++ {
		s += p.part[b]
		acc += p.fin[b]
	}
	return s, acc == 0
}

// lincomb sets dst = base + scale·Σ c·v on the whole vector (base nil means zero;
// base may alias dst) and reports whether dst is finite.
func (p *pool) lincomb(dst, base []float32, scale float32, terms []term) bool {
	_, ok := p.run(len(terms)+2, func(lo, hi int) (float64, float32) {
		return 0, lincombRange(dst, base, scale, terms, lo, hi)
	})
	return ok
}

// sumTile sets t = Σ c·v[off:off+len(t)] (zero if there are no terms). Terms are
// taken up to three per sweep of the tile, keeping the left-to-right order.
func sumTile(t []float32, terms []term, off int) {
	if len(terms) == 0 {
		clear(t)
		return
	}
	n := len(t)
	c, v := terms[0].c, terms[0].v[off:off+n]
	for i := range t {
		t[i] = c * v[i]
	}
	rest := terms[1:]
	for len(rest) >= 3 {
		c0, v0 := rest[0].c, rest[0].v[off:off+n]
		c1, v1 := rest[1].c, rest[1].v[off:off+n]
		c2, v2 := rest[2].c, rest[2].v[off:off+n]
		for i := range t {
			s := t[i] + float32(c0*v0[i])
			s += float32(c1 * v1[i])
			t[i] = s + float32(c2*v2[i])
		}
		rest = rest[3:]
	}
	switch len(rest) {
	case 2:
		c0, v0 := rest[0].c, rest[0].v[off:off+n]
		c1, v1 := rest[1].c, rest[1].v[off:off+n]
		for i := range t {
			s := t[i] + float32(c0*v0[i])
			t[i] = s + float32(c1*v1[i])
		}
	case 1:
		c0, v0 := rest[0].c, rest[0].v[off:off+n]
		for i := range t {
			t[i] += float32(c0 * v0[i])
		}
	}
}

func lincombRange(dst, base []float32, scale float32, terms []term, lo, hi int) float32 {
	if acc, ok := lincombRangeC(dst, base, scale, terms, lo, hi); ok {
		return acc
	}
	return lincombRangeGo(dst, base, scale, terms, lo, hi)
}

func lincombRangeGo(dst, base []float32, scale float32, terms []term, lo, hi int) float32 {
	var tile [tileLen]float32
	var acc float32
	for off := lo; off < hi; off += tileLen {
		t := tile[:min(tileLen, hi-off)]
		sumTile(t, terms, off)
		d := dst[off : off+len(t)]
		if base != nil {
			b := base[off : off+len(t)]
			for i := range t {
				v := b[i] + float32(scale*t[i])
				d[i] = v
				acc += v * 0
			}
		} else {
			for i := range t {
				v := scale * t[i]
				d[i] = v
				acc += v * 0
			}
		}
	}
	return acc
}

// errorRatio returns rms(err/(atol + rtol·max(|y|,|yn|))) with err = dt·Σ e·k
// (float32, as the reference forms it; the norm in float64), and whether yn is
// finite. Within a block, value i goes to partial sum i mod 8 and the partial
// sums are added pairwise, the order of the vectorised C kernel (kernels_cgo.go).
func (p *pool) errorRatio(y, yn []float32, dt float32, terms []term, rtol, atol float64) (float64, bool) {
	s, ok := p.run(len(terms)+4, func(lo, hi int) (float64, float32) {
		if sum, acc, ok := errorRatioRangeC(y, yn, dt, terms, rtol, atol, lo, hi); ok {
			return sum, acc
		}
		return errorRatioRangeGo(y, yn, dt, terms, rtol, atol, lo, hi)
	})
	r := math.Sqrt(s / float64(p.n))
	return r, ok && !math.IsNaN(r) && !math.IsInf(r, 0)
}

func errorRatioRangeGo(y, yn []float32, dt float32, terms []term, rtol, atol float64, lo, hi int) (float64, float32) {
	var tile [tileLen]float32
	var part [8]float64
	var acc float32
	for off := lo; off < hi; off += tileLen {
		t := tile[:min(tileLen, hi-off)]
		sumTile(t, terms, off)
		y0, y1 := y[off:off+len(t)], yn[off:off+len(t)]
		for i := range t {
			e := float64(dt * t[i])
			a, b := y0[i], y1[i]
			if a < 0 {
				a = -a
			}
			if b < 0 {
				b = -b
			}
			if b > a {
				a = b
			}
			r := e / (atol + float64(rtol*float64(a)))
			part[i%8] += float64(r * r)
			acc += y1[i] * 0
		}
	}
	for w := 4; w >= 1; w /= 2 {
		for l := 0; l < w; l++ {
			part[l] += part[l+w]
		}
	}
	return part[0], acc
}

// interp writes the dense output at fraction x of an accepted step: the quartic
// of torchdiffeq's _interp_fit/_interp_eval through y0, y1, ymid = y0 + dt·Σ mid·k
// and the end derivatives f0, f1, with the reference's float32 operation order.
func (p *pool) interp(dst, y0, y1, f0, f1 []float32, mid []term, dt float64, x float64) {
	dt32, dt2 := float32(dt), float32(2*dt)
	x1, x2, x3, x4 := float32(x), float32(x*x), float32(x*x*x), float32(x*x*x*x)
	p.run(len(mid)+8, func(lo, hi int) (float64, float32) {
		if interpRangeC(dst, y0, y1, f0, f1, mid, dt32, dt2, x1, x2, x3, x4, lo, hi) {
			return 0, 0
		}
		interpRangeGo(dst, y0, y1, f0, f1, mid, dt32, dt2, x1, x2, x3, x4, lo, hi)
		return 0, 0
	})
}

// interpRangeGo is interp on [lo, hi), the reference of the C kernel.
func interpRangeGo(dst, y0, y1, f0, f1 []float32, mid []term, dt32, dt2, x1, x2, x3, x4 float32, lo, hi int) {
	var tile [tileLen]float32
	for off := lo; off < hi; off += tileLen {
		t := tile[:min(tileLen, hi-off)]
		sumTile(t, mid, off)
		n := len(t)
		a0, a1, g0, g1, d := y0[off:off+n], y1[off:off+n], f0[off:off+n], f1[off:off+n], dst[off:off+n]
		for i := range t {
			ym := a0[i] + float32(dt32*t[i])
			// a = 2dt(f1−f0) − 8(y1+y0) + 16ymid
			ca := float32(dt2*(g1[i]-g0[i])) - float32(8*(a1[i]+a0[i]))
			ca += float32(16 * ym)
			// b = dt(5f0 − 3f1) + 18y0 + 14y1 − 32ymid
			cb := dt32 * (float32(5*g0[i]) - float32(3*g1[i]))
			cb += float32(18 * a0[i])
			cb += float32(14 * a1[i])
			cb -= float32(32 * ym)
			// c = dt(f1 − 4f0) − 11y0 − 5y1 + 16ymid
			cc := dt32 * (g1[i] - float32(4*g0[i]))
			cc -= float32(11 * a0[i])
			cc -= float32(5 * a1[i])
			cc += float32(16 * ym)
			c1 := dt32 * g0[i]
			v := a0[i] + float32(x1*c1)
			v += float32(x2 * cc)
			v += float32(x3 * cb)
			v += float32(x4 * ca)
			d[i] = v
		}
	}
}

// axpyInto sets dst = (add ? dst : 0) + c·g on the whole vector.
func (p *pool) axpyInto(dst []float32, add bool, c float32, g []float32) {
	p.run(2, func(lo, hi int) (float64, float32) {
		d, s := dst[lo:hi], g[lo:hi]
		if add {
			for i := range d {
				d[i] += float32(c * s[i])
			}
		} else {
			for i := range d {
				d[i] = c * s[i]
			}
		}
		return 0, 0
	})
}

// initNorms returns Σ(y0/s)² and Σ(f0/s)² with s = atol + |y0|·rtol, and whether
// y0 is finite. Within a block, value i goes to partial sum i mod 8 and the
// partial sums are added pairwise (the C kernel's order, kernels_cgo.go).
func (p *pool) initNorms(y0, f0 []float32, rtol, atol float64) (float64, float64, bool) {
	var part1 = make([]float64, p.nb)
	s0, ok := p.run(4, func(lo, hi int) (float64, float32) {
		a, b, acc, ok := initNormsRangeC(y0, f0, rtol, atol, lo, hi)
		if !ok {
			a, b, acc = initNormsRangeGo(y0, f0, rtol, atol, lo, hi)
		}
		part1[(lo / blockLen)] = b
		return a, acc
	})
	var s1 float64
	for _, v := range part1 {
		s1 += v
	}
	return s0, s1, ok
}

// lanes8 adds eight partial sums pairwise.
func lanes8(p *[8]float64) float64 {
	for w := 4; w >= 1; w /= 2 {
		for l := 0; l < w; l++ {
			p[l] += p[l+w]
		}
	}
	return p[0]
}

func initNormsRangeGo(y0, f0 []float32, rtol, atol float64, lo, hi int) (float64, float64, float32) {
	var a, b [8]float64
	var acc float32
	for i := lo; i < hi; i++ {
		y := float64(y0[i])
		s := atol + float64(math.Abs(y)*rtol)
		u, v := y/s, float64(f0[i])/s
		a[(i-lo)%8] += float64(u * u)
		b[(i-lo)%8] += float64(v * v)
		acc += y0[i]*0 + f0[i]*0
	}
	return lanes8(&a), lanes8(&b), acc
}

// diffNorm returns Σ((f1−f0)/s)² with s = atol + |y0|·rtol; f1−f0 in float32 as
// the reference; the sum in initNorms's order.
func (p *pool) diffNorm(y0, f0, f1 []float32, rtol, atol float64) float64 {
	s, _ := p.run(4, func(lo, hi int) (float64, float32) {
		if a, ok := diffNormRangeC(y0, f0, f1, rtol, atol, lo, hi); ok {
			return a, 0
		}
		return diffNormRangeGo(y0, f0, f1, rtol, atol, lo, hi), 0
	})
	return s
}

func diffNormRangeGo(y0, f0, f1 []float32, rtol, atol float64, lo, hi int) float64 {
	var a [8]float64
	for i := lo; i < hi; i++ {
		s := atol + float64(math.Abs(float64(y0[i]))*rtol)
		u := float64(f1[i]-f0[i]) / s
		a[(i-lo)%8] += float64(u * u)
	}
	return lanes8(&a)
}

// allFinite reports whether v holds no NaN or Inf.
func (p *pool) allFinite(v []float32) bool {
	_, ok := p.run(1, func(lo, hi int) (float64, float32) {
		// four running sums of x·0: +0 unless one meets a NaN or Inf,
		// without a one-add-per-value dependency chain
		var a [4]float32
		i := lo
		for ; i+4 <= hi; i += 4 {
			a[0] += v[i] * 0
			a[1] += v[i+1] * 0
			a[2] += v[i+2] * 0
			a[3] += v[i+3] * 0
		}
		for ; i < hi; i++ {
			a[0] += v[i] * 0
		}
		return 0, a[0] + a[1] + a[2] + a[3]
	})
	return ok
}

// interpBack accumulates the adjoint of one dense output g = ∂L/∂y(t0 + x·dt)
// into the adjoints of what the interpolant reads: the step's input y0 (gy0),
// its result y1 (gy1, +=), ymid (gmid), f0 = k₀ (gf0) and f1 = k_last (gf1, +=).
// first overwrites gy0, gmid and gf0 instead of adding.
func (p *pool) interpBack(g []float32, x, dt float64, first bool, gy0, gy1, gmid, gf0, gf1 []float32) {
	x2, x3, x4 := x*x, x*x*x, x*x*x*x
	ca := float32(1 - 8*x4 + 18*x3 - 11*x2)
	cb := float32(-8*x4 + 14*x3 - 5*x2)
	cm := float32(16*x4 - 32*x3 + 16*x2)
	cf0 := float32(dt * (x - 2*x4 + 5*x3 - 4*x2))
	cf1 := float32(dt * (2*x4 - 3*x3 + x2))
	p.run(6, func(lo, hi int) (float64, float32) {
		gg := g[lo:hi]
		a, b, m, f0, f1 := gy0[lo:hi], gy1[lo:hi], gmid[lo:hi], gf0[lo:hi], gf1[lo:hi]
		a, b, m, f0, f1 = a[:len(gg)], b[:len(gg)], m[:len(gg)], f0[:len(gg)], f1[:len(gg)]
		if first {
			for i, v := range gg {
				a[i] = ca * v
				m[i] = cm * v
				f0[i] = cf0 * v
				b[i] += float32(cb * v)
				f1[i] += float32(cf1 * v)
			}
		} else {
			for i, v := range gg {
				a[i] += float32(ca * v)
				m[i] += float32(cm * v)
				f0[i] += float32(cf0 * v)
				b[i] += float32(cb * v)
				f1[i] += float32(cf1 * v)
			}
		}
		return 0, 0
	})
}
