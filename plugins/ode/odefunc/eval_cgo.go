//go:build cgo && !noopenblas

package odefunc

/*
#cgo CFLAGS: -O3 -Wno-psabi -I${SRCDIR}/../../../framework/num
#pragma GCC optimize("fp-contract=off")
#include <math.h>

// Func.Eval over a range of rows in one call, 16 values at a time in GCC
// vector types (one zmm register with AVX-512, two ymm with AVX2): every lane
// does func.go's evalRow arithmetic — the same float32 operations in the same
// order, no fused multiply-adds (fp-contract=off) — and each reduction keeps
// lane l's partial sum of the values i ≡ l (mod 16), then adds them pairwise
// (laneSum), so the bits are evalRow's. Rows must have a multiple of 16 values.

#include "vecf.h"

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
