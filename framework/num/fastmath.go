package num

import "math"

// Fast float32 elementary functions for the hot loops of the ODE stages.
//
// Everything here works in float32, branch-free: clamps are integer minima on the
// IEEE bit patterns (which order like the magnitudes), so the compiler keeps the
// whole evaluation in registers; nothing allocates. The scalar functions are too
// large for Go's inliner, and a call spills every live float register, so each also
// has a slice form with the same arithmetic written into the loop; hot loops should
// use those (they run about 1.5× faster per element). The slice loops are C that
// gcc vectorises in the cgo build (fastmath_cgo.go, e^x from expf.h) and Go in the
// pure-Go build (fastmath_purego.go); both give exactly the scalar functions'
// results.
//
// Accuracy against the float64 math package, over a dense grid of [−20, 20] and at
// extreme values (see fastmath_test.go): TanhFast and ErfFast within 5e-7 absolute,
// ExpFast within 3e-7 relative, NormPDFFast and GELUGradFast within 1e-6 absolute,
// GELUFast within 1e-6 absolute plus 1e-6 relative except near x ≈ −5.6, where
// 1+erf cancels and the error reaches 1.5e-6.
//
// Special values: ±Inf give the limits (tanh ±1, erf ±1, GELU ∞ and 0). NaN is not
// propagated by TanhFast and ErfFast (the bit clamp maps it to ±1); GELUFast(NaN)
// and ExpFast(NaN) are NaN.
//
// The tanh and erf forms are the odd rational approximations of Eigen
// (generic_fast_tanh_float, generic_fast_erf_float); exp is Cody–Waite range
// reduction with Cephes' expf polynomial.

const (
	tanhClampBits = 0x40fcf84f // 7.9053111: tanh is 1 in float32 beyond it
	erfClampBits  = 0x40800000 // 4: erf is 1 in float32 beyond it
	pdfClampBits  = 0x41200000 // 10: φ(x) < 1e-22 beyond it
	absMask       = 0x7fffffff
	signMask      = 0x80000000

	invSqrt2  = 0.7071067811865476
	invSqrt2P = 0.3989422804014327 // 1/√(2π)

	th13, th11, th9, th7 = -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08
	th5, th3, th1        = 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03
	tq6, tq4, tq2, tq0   = 1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03

	ef13, ef11, ef9, ef7 = -2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05
	ef5, ef3, ef1        = -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02
	eq8, eq6, eq4        = -1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03
	eq2, eq0             = -7.37332916720468e-03, -1.42647390514189e-02

	log2e    = 1.44269504088896341
	ln2Hi    = 0.693359375
	ln2Lo    = -2.12194440e-4
	expMagic = 12582912 // 1.5·2²³: adding it rounds to an integer
	ex5, ex4 = 1.9875691500e-4, 1.3981999507e-3
	ex3, ex2 = 8.3334519073e-3, 4.1665795894e-2
	ex1, ex0 = 1.6666665459e-1, 5.0000001201e-1
)

// clampAbs limits |x| to the float whose bits are c, keeping the sign.
func clampAbs(x float32, c uint32) float32 {
	b := math.Float32bits(x)
	return math.Float32frombits(min(b&absMask, c) | b&signMask)
}

// TanhFast is tanh(x) in float32, within 5e-7 absolute of math.Tanh.
func TanhFast(x float32) float32 {
	x = clampAbs(x, tanhClampBits)
	x2 := x * x
	p := x2*th13 + th11
	p = x2*p + th9
	p = x2*p + th7
	p = x2*p + th5
	p = x2*p + th3
	p = x2*p + th1
	q := x2*tq6 + tq4
	q = x2*q + tq2
	q = x2*q + tq0
	return x * p / q
}

// ErfFast is erf(x) in float32, within 5e-7 absolute of math.Erf.
func ErfFast(x float32) float32 {
	x = clampAbs(x, erfClampBits)
	x2 := x * x
	p := x2*ef13 + ef11
	p = x2*p + ef9
	p = x2*p + ef7
	p = x2*p + ef5
	p = x2*p + ef3
	p = x2*p + ef1
	q := x2*eq8 + eq6
	q = x2*q + eq4
	q = x2*q + eq2
	q = x2*q + eq0
	return x * p / q
}

// ExpFast is exp(x) in float32, within 3e-7 relative of math.Exp for x in
// [−86, 88]; below −86 it returns exp(−86) ≈ 4e-38 (never a subnormal), above 88
// exp(88).
func ExpFast(x float32) float32 {
	return expCore(max(min(x, 88), -86))
}

// expCore is ExpFast for x already in [−86, 88].
func expCore(x float32) float32 {
	t := x*log2e + expMagic
	k := int32(math.Float32bits(t)) - int32(math.Float32bits(expMagic))
	kf := t - expMagic
	r := x - kf*ln2Hi
	r -= kf * ln2Lo
	p := r*ex5 + ex4
	p = p*r + ex3
	p = p*r + ex2
	p = p*r + ex1
	p = p*r + ex0
	y := p*r*r + r + 1
	return math.Float32frombits(uint32(int32(math.Float32bits(y)) + k<<23))
}

// NormPDFFast is the standard normal density φ(x) = exp(−x²/2)/√(2π).
func NormPDFFast(x float32) float32 {
	x = clampAbs(x, pdfClampBits)
	return invSqrt2P * expCore(-0.5*x*x)
}

// GELUFast is the exact (erf) GELU, x·Φ(x), in float32.
func GELUFast(x float32) float32 {
	return 0.5 * x * (1 + ErfFast(x*invSqrt2))
}

// GELUGradFast is d GELU(x)/dx = Φ(x) + x·φ(x) in float32.
func GELUGradFast(x float32) float32 {
	xc := clampAbs(x, pdfClampBits)
	return 0.5*(1+ErfFast(x*invSqrt2)) + xc*NormPDFFast(xc)
}

// TanhFastSlice sets dst[i] = TanhFast(x[i]). dst may be x; it panics if dst is
// shorter than x.
func TanhFastSlice(dst, x []float32) { tanhSlice(dst[:len(x)], x) }

// ErfFastSlice sets dst[i] = ErfFast(scale·x[i]). dst may be x; it panics if
// dst is shorter than x.
func ErfFastSlice(dst, x []float32, scale float32) { erfSlice(dst[:len(x)], x, scale) }

// NormPDFFastSlice sets dst[i] = NormPDFFast(x[i]). dst may be x; it panics if
// dst is shorter than x.
func NormPDFFastSlice(dst, x []float32) { normPDFSlice(dst[:len(x)], x) }

// ExpFastSlice sets dst[i] = ExpFast(x[i]); dst may be x. It panics if dst is
// shorter than x.
func ExpFastSlice(dst, x []float32) { expSlice(dst[:len(x)], x) }
