// Vector forms of package num's float32 functions for the C kernels of other
// packages (plugins/ode/odefunc, plugins/flows/coupling), which include it with
// #cgo CFLAGS: -I${SRCDIR}/<path to framework/num>. A vf holds 16 floats (one
// zmm register with AVX-512, two ymm with AVX2); every lane computes exactly
// fastmath.go's scalar function (TanhFast, ErfFast, ExpFast): the same float32
// operations in the same order. Compile without fused multiply-adds
// (#pragma GCC optimize("fp-contract=off") before including this header) and
// with -Wno-psabi (64-byte vectors in inlined helpers).

#ifndef LIQUIDLAB_NUM_VECF_H
#define LIQUIDLAB_NUM_VECF_H

#include <stdint.h>
#include <string.h>

typedef float vf __attribute__((vector_size(64), aligned(4)));
typedef uint32_t vu __attribute__((vector_size(64), aligned(4)));
#define INL static inline __attribute__((always_inline))

INL vf vload(const float *p) { vf v; memcpy(&v, p, 64); return v; }
INL void vstore(float *p, vf v) { memcpy(p, &v, 64); }

// |x| limited to the float whose bits are c, sign kept (fastmath.go's clampAbs).
INL vf vclamp_abs(vf x, uint32_t c) {
	vu b = (vu)x;
	vu a = b & 0x7fffffffu;
	vu cc = (vu){0} + c;
	vu m = (vu)(a < cc);
	a = (a & m) | (cc & ~m);
	return (vf)(a | (b & 0x80000000u));
}

INL vf vtanh(vf v) {
	v = vclamp_abs(v, 0x40fcf84fu);
	vf x2 = v * v;
	vf p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
	p = x2 * p + -8.60467152213735e-11f;
	p = x2 * p + 5.12229709037114e-08f;
	p = x2 * p + 1.48572235717979e-05f;
	p = x2 * p + 6.37261928875436e-04f;
	p = x2 * p + 4.89352455891786e-03f;
	vf q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
	q = x2 * q + 2.26843463243900e-03f;
	q = x2 * q + 4.89352518554385e-03f;
	return v * p / q;
}

INL vf verf(vf v) {
	v = vclamp_abs(v, 0x40800000u);
	vf x2 = v * v;
	vf p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
	p = x2 * p + -2.10102402082508e-06f;
	p = x2 * p + -5.69250639462346e-05f;
	p = x2 * p + -7.34990630326855e-04f;
	p = x2 * p + -2.95459980854025e-03f;
	p = x2 * p + -1.60960333262415e-02f;
	vf q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
	q = x2 * q + -1.68282697438203e-03f;
	q = x2 * q + -7.37332916720468e-03f;
	q = x2 * q + -1.42647390514189e-02f;
	return v * p / q;
}

// lane_sum adds the 16 lanes pairwise: a[l] += a[l+w] for w = 8, 4, 2, 1.
INL float lane_sum(vf p) {
	float a[16];
	memcpy(a, &p, 64);
	for (int w = 8; w >= 1; w /= 2)
		for (int l = 0; l < w; l++) a[l] += a[l + w];
	return a[0];
}

// e^r − 1 for |r| ≤ ln2/2: expCore's polynomial, p·r·r + r (vexp adds the 1;
// plugins/flows/coupling's expm1 uses it as it is).
INL vf vexp_poly(vf r) {
	vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	return p * r * r + r;
}

// e^x with x clamped to [-86, 88] as fastmath.go's ExpFast (a NaN passes
// through), then expCore's Cody–Waite reduction and polynomial.
INL vf vexp(vf x) {
	vu hi = (vu)(x > 88.0f), lo = (vu)(x < -86.0f);
	vu xb = (vu)x;
	xb = (xb & ~hi) | ((vu)((vf){0} + 88.0f) & hi);
	xb = (xb & ~lo) | ((vu)((vf){0} + -86.0f) & lo);
	vf v = (vf)xb;
	const float magic = 12582912.0f;
	vf t = v * 1.44269504088896341f + magic;
	vu k = (vu)t - (vu)((vf){0} + magic);
	vf kf = t - magic;
	vf r = v - kf * 0.693359375f;
	r -= kf * -2.12194440e-4f;
	vf y = vexp_poly(r) + 1;
	return (vf)((vu)y + (k << 23));
}

#endif
