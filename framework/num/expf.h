// The one C expf of package num: the same arithmetic, clamping and rounding as
// fastmath.go's ExpFast and expCore (Cody–Waite range reduction with the
// round-to-nearest-even "magic number" trick, Cephes' expf polynomial), so a
// scalar C loop and the Go loop give bit-identical results. The cgo files that
// need e^x include this header; do not copy it.
//
// Compile without fused multiply-adds (the loops that use it are built for
// "avx2" or the default target, neither of which has FMA) or results differ from
// Go's in the last bit.

#ifndef LIQUIDLAB_NUM_EXPF_H
#define LIQUIDLAB_NUM_EXPF_H

#include <stdint.h>
#include <string.h>

#define LL_EXP_LO (-86.0f) // e^-86 ≈ 4e-38: never a subnormal
#define LL_EXP_HI 88.0f

// ll_exp_core is e^v for v already in [LL_EXP_LO, LL_EXP_HI] (fastmath.go's expCore).
static inline float ll_exp_core(float v) {
	const float magic = 12582912.0f; // 1.5·2²³: adding it rounds to an integer
	uint32_t mb; memcpy(&mb, &magic, 4);
	float t = v * 1.44269504088896341f + magic;
	uint32_t tb; memcpy(&tb, &t, 4);
	int32_t k = (int32_t)tb - (int32_t)mb;
	float kf = t - magic;
	float r = v - kf * 0.693359375f;
	r -= kf * -2.12194440e-4f;
	float p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float y = p * r * r + r + 1;
	uint32_t yb; memcpy(&yb, &y, 4);
	yb = (uint32_t)((int32_t)yb + (k << 23));
	float e; memcpy(&e, &yb, 4);
	return e;
}

// ll_expf is e^x with x clamped to [LL_EXP_LO, LL_EXP_HI] (fastmath.go's ExpFast).
// The comparisons are written so that a NaN passes through as Go's min and max
// let it, and the result is Go's for every input, NaN included.
static inline float ll_expf(float x) {
	x = x > LL_EXP_HI ? LL_EXP_HI : x;
	x = x < LL_EXP_LO ? LL_EXP_LO : x;
	return ll_exp_core(x);
}

#endif
