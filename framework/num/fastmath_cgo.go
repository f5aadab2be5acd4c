//go:build cgo && !noopenblas

package num

/*
#cgo CFLAGS: -O3
#include "simd.h"
#include <stdint.h>
#include <string.h>
#include "expf.h"

// The same arithmetic as fastmath.go's slice loops, in the same order and
// without fused multiply-adds, so results are bit-identical to the Go versions;
// gcc vectorises these loops (8 lanes where the CPU has AVX2).

static inline float clamp_abs(float x, uint32_t c) {
	uint32_t b; memcpy(&b, &x, 4);
	uint32_t a = b & 0x7fffffffu;
	a = a < c ? a : c;
	b = a | (b & 0x80000000u);
	memcpy(&x, &b, 4);
	return x;
}

// e^v for v already clamped: Cody–Waite reduction and Cephes' polynomial, as
// fastmath.go's expCore.
LL_CLONES_AVX2
void ll_tanh(float *dst, const float *x, int n) {
	for (int i = 0; i < n; i++) {
		float v = clamp_abs(x[i], 0x40fcf84fu);
		float x2 = v * v;
		float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
		p = x2 * p + -8.60467152213735e-11f;
		p = x2 * p + 5.12229709037114e-08f;
		p = x2 * p + 1.48572235717979e-05f;
		p = x2 * p + 6.37261928875436e-04f;
		p = x2 * p + 4.89352455891786e-03f;
		float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
		q = x2 * q + 2.26843463243900e-03f;
		q = x2 * q + 4.89352518554385e-03f;
		dst[i] = v * p / q;
	}
}

LL_CLONES_AVX2
void ll_erf(float *dst, const float *x, int n, float scale) {
	for (int i = 0; i < n; i++) {
		float v = clamp_abs(x[i] * scale, 0x40800000u);
		float x2 = v * v;
		float p = x2 * -2.72614225801306e-10f + 2.77068142495902e-08f;
		p = x2 * p + -2.10102402082508e-06f;
		p = x2 * p + -5.69250639462346e-05f;
		p = x2 * p + -7.34990630326855e-04f;
		p = x2 * p + -2.95459980854025e-03f;
		p = x2 * p + -1.60960333262415e-02f;
		float q = x2 * -1.45660718464996e-05f + -2.13374055278905e-04f;
		q = x2 * q + -1.68282697438203e-03f;
		q = x2 * q + -7.37332916720468e-03f;
		q = x2 * q + -1.42647390514189e-02f;
		dst[i] = v * p / q;
	}
}

LL_CLONES_AVX2
void ll_normpdf(float *dst, const float *x, int n) {
	for (int i = 0; i < n; i++) {
		float v = clamp_abs(x[i], 0x41200000u);
		v = -0.5f * v * v;
		dst[i] = 0.3989422804014327f * ll_exp_core(v);
	}
}

LL_CLONES_AVX2
void ll_exp(float *dst, const float *x, int n) {
	for (int i = 0; i < n; i++) {
		dst[i] = ll_expf(x[i]);
	}
}

LL_CLONES_AVX2
void ll_relu(float *x, int n) {
	for (int i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

LL_CLONES_AVX2
void ll_relu_back(float *dy, const float *y, int n) {
	for (int i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
// colsum_add: dst[c] += (float)Σ_i m[i·ld + c] for columns [lo, hi), each
// column's sum in float64 in row order (linear.go's ColSumAdd), 64 columns at
// a time so that the accumulators stay in registers.
LL_CLONES
void ll_colsum_add(float *dst, const float *m, long n, long ld, long lo, long hi) {
	for (long c0 = lo; c0 < hi; c0 += 64) {
		long w = hi - c0 < 64 ? hi - c0 : 64;
		double acc[64] = {0};
		for (long i = 0; i < n; i++) {
			const float *row = m + i * ld + c0;
			for (long j = 0; j < w; j++) acc[j] += (double)row[j];
		}
		for (long j = 0; j < w; j++) dst[c0 + j] += (float)acc[j];
	}
}

*/
import "C"

import "unsafe"

// The slice kernels' vectorised C loops. Slices shorter than vecMin (a cgo call
// costs about as much as a dozen elements) use the scalar Go functions, whose
// arithmetic is the same, so the results do not depend on the length.
// fastmath_purego.go has the Go loops of the pure-Go build.

const vecMin = 32

func tanhSlice(dst, x []float32) {
	if len(x) < vecMin {
		for i, v := range x {
			dst[i] = TanhFast(v)
		}
		return
	}
	C.ll_tanh((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func erfSlice(dst, x []float32, scale float32) {
	if len(x) < vecMin {
		for i, v := range x {
			dst[i] = ErfFast(v * scale)
		}
		return
	}
	C.ll_erf((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), C.float(scale))
}

func normPDFSlice(dst, x []float32) {
	if len(x) < vecMin {
		for i, v := range x {
			dst[i] = NormPDFFast(v)
		}
		return
	}
	C.ll_normpdf((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func expSlice(dst, x []float32) {
	if len(x) < vecMin {
		for i, v := range x {
			dst[i] = ExpFast(v)
		}
		return
	}
	C.ll_exp((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func relu(x []float32) {
	if len(x) < vecMin {
		reluGo(x)
		return
	}
	C.ll_relu((*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func reluBack(dy, y []float32) {
	if len(y) < vecMin {
		reluBackGo(dy, y)
		return
	}
	C.ll_relu_back((*C.float)(unsafe.Pointer(&dy[0])), (*C.float)(unsafe.Pointer(&y[0])), C.int(len(y)))
}

// colSumAddRange is ColSumAdd on columns [lo, hi).
func colSumAddRange(dst, m []float32, n, d, lo, hi int) {
	C.ll_colsum_add((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&m[0])), C.long(n), C.long(d), C.long(lo), C.long(hi))
}
