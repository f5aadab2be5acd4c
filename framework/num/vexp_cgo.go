//go:build cgo && !noopenblas

package num

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lm
// No contraction of separate multiplies and adds into fused ones: the scalar
// tails use ll_expf, which must stay Go's ExpFast (expf.h); the vector paths
// spell out their fused multiply-adds.
#pragma GCC optimize("fp-contract=off")
#include "simd.h"
#include <math.h>
#include <string.h>
#if LL_X86
#include <immintrin.h>
#endif

#include "expf.h"

static double lse_generic(const float *x, int n, float mx, float *dst, float scale) {
	double s = 0;
	for (int j = 0; j < n; j++) { float e = ll_expf(x[j] - mx); if (dst) dst[j] = e; s += e; }
	if (dst) { float inv = (float)(1.0 / s); for (int i = 0; i < n; i++) dst[i] = (dst[i] * inv) * scale; }
	return (double)mx + log(s);
}

#if LL_X86 // the vector paths: x86-64 only (simd.h)

// exp8 is ll_expf on 8 lanes with the same clamping and rounding (the
// round-to-nearest-even of _mm256_round_ps is the magic number's), contracted to
// fused multiply-adds: within 1 ulp of ll_expf, not bit-identical to it.
__attribute__((target("avx2,fma")))
static inline __m256 exp8(__m256 x) {
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LL_EXP_LO)), _mm256_set1_ps(LL_EXP_HI)); // a NaN lane becomes LL_EXP_LO
	__m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500e-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma")))
static double lse_avx2(const float *x, int n, float mx, float *dst, float scale) {
	__m256 m = _mm256_set1_ps(mx), acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
	double s = 0;
	int j = 0, blk = 0;
	for (; j + 16 <= n; j += 16) {
		__m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), m));
		__m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m));
		if (dst) { _mm256_storeu_ps(dst + j, e0); _mm256_storeu_ps(dst + j + 8, e1); }
		acc0 = _mm256_add_ps(acc0, e0);
		acc1 = _mm256_add_ps(acc1, e1);
		if (++blk == 64) {
			float t[8]; _mm256_storeu_ps(t, _mm256_add_ps(acc0, acc1));
			for (int i = 0; i < 8; i++) s += t[i];
			acc0 = acc1 = _mm256_setzero_ps(); blk = 0;
		}
	}
	float t[8]; _mm256_storeu_ps(t, _mm256_add_ps(acc0, acc1));
	for (int i = 0; i < 8; i++) s += t[i];
	for (; j < n; j++) { float e = ll_expf(x[j] - mx); if (dst) dst[j] = e; s += e; }
	if (dst) {
		__m256 inv = _mm256_set1_ps((float)(1.0 / s)), sc = _mm256_set1_ps(scale);
		int i = 0;
		for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(dst + i), inv), sc));
		for (; i < n; i++) dst[i] = (dst[i] * (float)(1.0 / s)) * scale;
	}
	return (double)mx + log(s);
}

// exp16 is exp8 on sixteen lanes: lane for lane the same operations, so the
// same bits (Zen 4/5 and recent Intel cores run it at twice exp8's rate).
__attribute__((target("avx512f")))
static inline __m512 exp16(__m512 x) {
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(LL_EXP_LO)), _mm512_set1_ps(LL_EXP_HI)); // a NaN lane becomes LL_EXP_LO
	__m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	__m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
	return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// lse_avx512 is lse_avx2 with one zmm for its two ymm accumulators: lane l
// holds what acc0 (l < 8) or acc1 (l ≥ 8) held, and the 1024-term partial sums
// are folded in the same order, so the result and dst are bit for bit lse_avx2's.
__attribute__((target("avx512f")))
static double lse_avx512(const float *x, int n, float mx, float *dst, float scale) {
	__m512 m = _mm512_set1_ps(mx), acc = _mm512_setzero_ps();
	double s = 0;
	int j = 0, blk = 0;
	for (; j + 16 <= n; j += 16) {
		__m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
		if (dst) _mm512_storeu_ps(dst + j, e);
		acc = _mm512_add_ps(acc, e);
		if (++blk == 64) {
			float t[8]; _mm256_storeu_ps(t, _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))));
			for (int i = 0; i < 8; i++) s += t[i];
			acc = _mm512_setzero_ps(); blk = 0;
		}
	}
	float t[8]; _mm256_storeu_ps(t, _mm256_add_ps(_mm512_castps512_ps256(acc), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1))));
	for (int i = 0; i < 8; i++) s += t[i];
	for (; j < n; j++) { float e = ll_expf(x[j] - mx); if (dst) dst[j] = e; s += e; }
	if (dst) {
		__m512 inv = _mm512_set1_ps((float)(1.0 / s)), sc = _mm512_set1_ps(scale);
		int i = 0;
		for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(dst + i), inv), sc));
		for (; i < n; i++) dst[i] = (dst[i] * (float)(1.0 / s)) * scale;
	}
	return (double)mx + log(s);
}

// max_avx512 and find_avx512: max_avx2 and find_avx2 on sixteen lanes (the
// maximum and the first index holding it do not depend on the lane count).
__attribute__((target("avx512f")))
static float max_avx512(const float *x, int n) {
	__m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
	int j = 0;
	for (; j + 32 <= n; j += 32) {
		// max_ps returns its second operand when either is NaN: the running
		// maximum goes second, so a NaN is skipped, never kept
		m0 = _mm512_max_ps(_mm512_loadu_ps(x + j), m0);
		m1 = _mm512_max_ps(_mm512_loadu_ps(x + j + 16), m1);
	}
	float t[16]; _mm512_storeu_ps(t, _mm512_max_ps(m0, m1));
	float m = -INFINITY;
	for (int i = 0; i < 16; i++) m = t[i] > m ? t[i] : m;
	for (; j < n; j++) m = x[j] > m ? x[j] : m;
	return m;
}

__attribute__((target("avx512f")))
static int find_avx512(const float *x, int n, float m) {
	__m512 v = _mm512_set1_ps(m);
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		unsigned k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + j), v, _CMP_EQ_OQ);
		if (k) return j + __builtin_ctz(k);
	}
	for (; j < n; j++) if (x[j] == m) return j;
	return 0;
}

__attribute__((target("avx2")))
static float max_avx2(const float *x, int n) {
	__m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
	int j = 0;
	for (; j + 16 <= n; j += 16) {
		// the running maximum second: a NaN is skipped (see max_avx512)
		m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
		m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
	}
	float t[8]; _mm256_storeu_ps(t, _mm256_max_ps(m0, m1));
	float m = -INFINITY;
	for (int i = 0; i < 8; i++) m = t[i] > m ? t[i] : m;
	for (; j < n; j++) m = x[j] > m ? x[j] : m;
	return m;
}

// The first j with x[j] == m, or 0: eight lanes compared at a time.
__attribute__((target("avx2")))
static int find_avx2(const float *x, int n, float m) {
	__m256 v = _mm256_set1_ps(m);
	int j = 0;
	for (; j + 8 <= n; j += 8) {
		int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), v, _CMP_EQ_OQ));
		if (k) return j + __builtin_ctz(k);
	}
	for (; j < n; j++) if (x[j] == m) return j;
	return 0;
}

#endif // LL_X86

// ll_max: the maximum (NaNs skipped) and the first index holding it. The
// value returned is that element itself, so a maximum of zero has the sign of
// its first occurrence whichever lanes compared it (max_ps of +0 and −0 keeps
// either), as the Go loop's strict > gives.
static float ll_max(const float *x, int n, int *arg) {
	float m;
#if LL_X86
	if (__builtin_cpu_supports("avx512f")) {
		m = max_avx512(x, n);
		*arg = find_avx512(x, n, m);
		return x[*arg] == m ? x[*arg] : m;
	}
	if (__builtin_cpu_supports("avx2")) {
		m = max_avx2(x, n);
		*arg = find_avx2(x, n, m);
		return x[*arg] == m ? x[*arg] : m;
	}
#endif
	m = -INFINITY;
	for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
	*arg = 0;
	for (int j = 0; j < n; j++) if (x[j] == m) { *arg = j; break; }
	return m;
}

// ll_lse_on and ll_max_on run one path (0 generic, 1 AVX2, 2 AVX-512F; off
// x86-64 always the generic one), for the tests that the paths agree bit for
// bit; the caller checks the CPU.
static double ll_lse_on(int path, const float *x, int n, float mx, float *dst, float scale) {
#if LL_X86
	if (path == 2) return lse_avx512(x, n, mx, dst, scale);
	if (path == 1) return lse_avx2(x, n, mx, dst, scale);
#endif
	return lse_generic(x, n, mx, dst, scale);
}

static float ll_max_on(int path, const float *x, int n, int *arg) {
	float m;
#if LL_X86
	if (path == 2) { m = max_avx512(x, n); *arg = find_avx512(x, n, m); }
	else if (path == 1) { m = max_avx2(x, n); *arg = find_avx2(x, n, m); }
	else
#endif
	{
		m = -INFINITY;
		for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
		*arg = 0;
		for (int j = 0; j < n; j++) if (x[j] == m) { *arg = j; break; }
	}
	return x[*arg] == m ? x[*arg] : m;
}

static double ll_lse(const float *x, int n, float mx, float *dst, float scale) {
#if LL_X86
	if (__builtin_cpu_supports("avx512f")) return lse_avx512(x, n, mx, dst, scale);
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return lse_avx2(x, n, mx, dst, scale);
#endif
	return lse_generic(x, n, mx, dst, scale);
}
*/
import "C"

import (
	"math"
	"unsafe"
)

// LogSumExp returns log Σ exp(x_j) given mx = max_j x_j. When dst is non-nil it
// also writes the softmax exp(x_j − lse) into it. (Vectorised C, AVX2 when the
// CPU has it; the accumulation is in float64 every 1024 terms.) With scale ≠ 1
// dst holds softmax·scale, rounded twice as (softmax)·scale would be.
func LogSumExp(x []float32, mx float32, dst []float32, scale float32) float64 {
	if len(x) == 0 {
		return math.Inf(-1)
	}
	var d *C.float
	if dst != nil {
		d = (*C.float)(unsafe.Pointer(&dst[:len(x)][0]))
	}
	return float64(C.ll_lse((*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), C.float(mx), d, C.float(scale)))
}

// MaxArg returns the largest value of x and the first index holding it
// (NaNs are skipped; a row of NaNs gives −Inf at 0). x must not be empty.
func MaxArg(x []float32) (float32, int) {
	var arg C.int
	m := C.ll_max((*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), &arg)
	return float32(m), int(arg)
}

// lseOn and maxArgOn run one C path (0 generic, 1 AVX2, 2 AVX-512F) whatever
// the CPU prefers; for tests, which check the CPU first. x must not be empty.
func lseOn(path int, x []float32, mx float32, dst []float32, scale float32) float64 {
	var d *C.float
	if dst != nil {
		d = (*C.float)(unsafe.Pointer(&dst[:len(x)][0]))
	}
	return float64(C.ll_lse_on(C.int(path), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), C.float(mx), d, C.float(scale)))
}

func maxArgOn(path int, x []float32) (float32, int) {
	var arg C.int
	m := C.ll_max_on(C.int(path), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), &arg)
	return float32(m), int(arg)
}
