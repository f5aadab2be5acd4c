//go:build cgo && !noopenblas

package odefunc

/*
#cgo CFLAGS: -O3 -Wno-psabi
#pragma GCC optimize("fp-contract=off")
#include <math.h>
#include <stdint.h>
#include <string.h>

// Func.Eval over a range of rows in one call, 16 values at a time in GCC
// vector types (one zmm register with AVX-512, two ymm with AVX2): every lane
// does func.go's evalRow arithmetic — the same float32 operations in the same
// order, no fused multiply-adds (fp-contract=off) — and each reduction keeps
// lane l's partial sum of the values i ≡ l (mod 16), then adds them pairwise
// (laneSum), so the bits are evalRow's. Rows must have a multiple of 16 values.

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

INL float lane_sum(vf p) {
	float a[16];
	memcpy(a, &p, 64);
	for (int w = 8; w >= 1; w /= 2)
		for (int l = 0; l < w; l++) a[l] += a[l + w];
	return a[0];
}

__attribute__((target_clones("avx512f", "avx2", "default")))
void ll_odef_eval(float *dy, const float *y, const float *gamma, const float *beta,
		long rows, long h, float scale) {
	for (long i = 0; i < rows; i++) {
		const float *yr = y + i * h;
		float *dr = dy + i * h;
		vf s = {0};
		for (long j = 0; j < h; j += 16) {
			vf v = vload(yr + j);
			s += v * v;
		}
		float c = (float)(-0.001 * sqrt((double)lane_sum(s)));
		vf sx = {0};
		for (long j = 0; j < h; j += 16) {
			vf v = vload(yr + j);
			vf t = vtanh(v);
			vf e = verf(v * scale);
			vf x = c * v + 0.8f * t;
			x += (0.1f * v) * (1.0f + e);
			vstore(dr + j, x);
			sx += x;
		}
		float mu = lane_sum(sx) / (float)h;
		vf sd = {0};
		for (long j = 0; j < h; j += 16) {
			vf a = vload(dr + j) - mu;
			sd += a * a;
		}
		float r = (float)(1.0 / sqrt((double)lane_sum(sd) / (double)h + 1e-5));
		for (long j = 0; j < h; j += 16) {
			vf x = vload(dr + j);
			vstore(dr + j, ((x - mu) * r) * vload(gamma + j) + vload(beta + j));
		}
	}
}
*/
import "C"

import "unsafe"

// evalRowsC sets dy = f(y) for rows rows of h values with the C kernel and
// reports true, or reports false (nothing written) when h is not a multiple of
// 16; the caller then runs evalRow, which gives the same bits.
func evalRowsC(dy, y, gamma, beta []float32, rows, h int) bool {
	if h%16 != 0 || rows <= 0 {
		return false
	}
	_, _ = dy[rows*h-1], y[rows*h-1]
	_, _ = gamma[h-1], beta[h-1]
	C.ll_odef_eval((*C.float)(unsafe.Pointer(&dy[0])), (*C.float)(unsafe.Pointer(&y[0])),
		(*C.float)(unsafe.Pointer(&gamma[0])), (*C.float)(unsafe.Pointer(&beta[0])),
		C.long(rows), C.long(h), C.float(float32(invSqrt2)))
	return true
}
