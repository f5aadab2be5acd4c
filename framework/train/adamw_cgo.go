//go:build cgo && !noopenblas

package train

/*
#cgo CFLAGS: -O3 -I${SRCDIR}/../num
#pragma GCC optimize("fp-contract=off")
#include "simd.h"
#include <math.h>
#if LL_X86
#include <immintrin.h>
#endif

// One AdamW step over n parameters. Every path does the scalar loop's float32
// operations in its order, with no fused multiply-adds (fp-contract=off:
// gcc's intrinsics are vector arithmetic it would otherwise contract under
// AVX-512, which implies FMA; IEEE sqrt and
// division are exact-rounded in every width), so the bits do not depend on
// the CPU. gcc left this loop scalar (vsqrtss, vdivss: sqrtf may set errno),
// 2.6 ns a parameter; the AVX-512 and AVX2 paths below are written out.
static void adamw_scalar(float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	for (long i = 0; i < n; i++) {
		float gi = g[i];
		float mi = b1 * m[i] + (1 - b1) * gi;
		float vi = b2 * v[i] + (1 - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
		w[i] = w[i] * decay - step * mi / denom;
	}
}

// ADAMW_VEC is the scalar loop on W lanes with the intrinsics of prefix P
// (_mm512 or _mm256) and vector type VT; it returns how many values it did.
#define ADAMW_VEC(P, VT, W) \
	VT B1 = P##_set1_ps(b1), C1 = P##_set1_ps(1 - b1); \
	VT B2 = P##_set1_ps(b2), C2 = P##_set1_ps(1 - b2); \
	VT D = P##_set1_ps(decay), S = P##_set1_ps(step); \
	VT I = P##_set1_ps(inv_sqrt_bc2), E = P##_set1_ps(eps); \
	long i = 0; \
	for (; i + W <= n; i += W) { \
		VT gi = P##_loadu_ps(g + i); \
		VT mi = P##_add_ps(P##_mul_ps(B1, P##_loadu_ps(m + i)), P##_mul_ps(C1, gi)); \
		VT vi = P##_add_ps(P##_mul_ps(B2, P##_loadu_ps(v + i)), P##_mul_ps(P##_mul_ps(C2, gi), gi)); \
		P##_storeu_ps(m + i, mi); \
		P##_storeu_ps(v + i, vi); \
		VT den = P##_add_ps(P##_mul_ps(P##_sqrt_ps(vi), I), E); \
		P##_storeu_ps(w + i, P##_sub_ps(P##_mul_ps(P##_loadu_ps(w + i), D), P##_div_ps(P##_mul_ps(S, mi), den))); \
	} \
	return i;

#define ADAMW_ARGS float *w, const float *g, float *m, float *v, long n, \
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps

#if LL_X86 // elsewhere the scalar loop, which gcc may vectorise itself
__attribute__((target("avx512f"))) static long adamw_avx512(ADAMW_ARGS) { ADAMW_VEC(_mm512, __m512, 16) }
__attribute__((target("avx2"))) static long adamw_avx2(ADAMW_ARGS) { ADAMW_VEC(_mm256, __m256, 8) }
#endif

// path: 2 = AVX-512, 1 = AVX2, 0 = scalar only (for the tests).
static void ll_adamw(int path, float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	long i = 0;
#if LL_X86
	if (path >= 2 && __builtin_cpu_supports("avx512f"))
		i = adamw_avx512(w, g, m, v, n, b1, b2, decay, step, inv_sqrt_bc2, eps);
	else if (path >= 1 && __builtin_cpu_supports("avx2"))
		i = adamw_avx2(w, g, m, v, n, b1, b2, decay, step, inv_sqrt_bc2, eps);
#else
	(void)path;
#endif
	adamw_scalar(w + i, g + i, m + i, v + i, n - i, b1, b2, decay, step, inv_sqrt_bc2, eps);
}
*/
import "C"

import "unsafe"

// adamwPath is the widest vector path ll_adamw may take (tests lower it).
var adamwPath = 2

func adamwKernel(w, g, m, v []float32, b1, b2, decay, step, invSqrtBC2, eps float32) {
	if len(w) == 0 {
		return
	}
	_, _, _ = g[len(w)-1], m[len(w)-1], v[len(w)-1]
	C.ll_adamw(C.int(adamwPath), (*C.float)(unsafe.Pointer(&w[0])), (*C.float)(unsafe.Pointer(&g[0])), (*C.float)(unsafe.Pointer(&m[0])), (*C.float)(unsafe.Pointer(&v[0])), C.long(len(w)),
		C.float(b1), C.float(b2), C.float(decay), C.float(step), C.float(invSqrtBC2), C.float(eps))
}
