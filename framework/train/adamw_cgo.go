//go:build cgo && !noopenblas

package train

/*
#cgo CFLAGS: -O3
#pragma GCC optimize("fp-contract=off")
#include <math.h>
#include <immintrin.h>

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

__attribute__((target("avx512f")))
static long adamw_avx512(float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	__m512 B1 = _mm512_set1_ps(b1), C1 = _mm512_set1_ps(1 - b1);
	__m512 B2 = _mm512_set1_ps(b2), C2 = _mm512_set1_ps(1 - b2);
	__m512 D = _mm512_set1_ps(decay), S = _mm512_set1_ps(step);
	__m512 I = _mm512_set1_ps(inv_sqrt_bc2), E = _mm512_set1_ps(eps);
	long i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 gi = _mm512_loadu_ps(g + i);
		__m512 mi = _mm512_add_ps(_mm512_mul_ps(B1, _mm512_loadu_ps(m + i)), _mm512_mul_ps(C1, gi));
		__m512 vi = _mm512_add_ps(_mm512_mul_ps(B2, _mm512_loadu_ps(v + i)), _mm512_mul_ps(_mm512_mul_ps(C2, gi), gi));
		_mm512_storeu_ps(m + i, mi);
		_mm512_storeu_ps(v + i, vi);
		__m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), I), E);
		__m512 wi = _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(w + i), D), _mm512_div_ps(_mm512_mul_ps(S, mi), den));
		_mm512_storeu_ps(w + i, wi);
	}
	return i;
}

__attribute__((target("avx2")))
static long adamw_avx2(float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	__m256 B1 = _mm256_set1_ps(b1), C1 = _mm256_set1_ps(1 - b1);
	__m256 B2 = _mm256_set1_ps(b2), C2 = _mm256_set1_ps(1 - b2);
	__m256 D = _mm256_set1_ps(decay), S = _mm256_set1_ps(step);
	__m256 I = _mm256_set1_ps(inv_sqrt_bc2), E = _mm256_set1_ps(eps);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 gi = _mm256_loadu_ps(g + i);
		__m256 mi = _mm256_add_ps(_mm256_mul_ps(B1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(C1, gi));
		__m256 vi = _mm256_add_ps(_mm256_mul_ps(B2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(C2, gi), gi));
		_mm256_storeu_ps(m + i, mi);
		_mm256_storeu_ps(v + i, vi);
		__m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), I), E);
		__m256 wi = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), D), _mm256_div_ps(_mm256_mul_ps(S, mi), den));
		_mm256_storeu_ps(w + i, wi);
	}
	return i;
}

// path: 2 = AVX-512, 1 = AVX2, 0 = scalar only (for the tests).
static void ll_adamw(int path, float *w, const float *g, float *m, float *v, long n,
		float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	long i = 0;
	if (path >= 2 && __builtin_cpu_supports("avx512f"))
		i = adamw_avx512(w, g, m, v, n, b1, b2, decay, step, inv_sqrt_bc2, eps);
	else if (path >= 1 && __builtin_cpu_supports("avx2"))
		i = adamw_avx2(w, g, m, v, n, b1, b2, decay, step, inv_sqrt_bc2, eps);
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
