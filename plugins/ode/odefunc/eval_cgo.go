//go:build cgo && !noopenblas

package odefunc

/*
#cgo CFLAGS: -O3 -Wno-psabi -I${SRCDIR}/../../../framework/num
#pragma GCC optimize("fp-contract=off")
#include "simd.h"
#include <math.h>

// Func.Eval over a range of rows in one call, 16 values at a time in GCC
// vector types (one zmm register with AVX-512, two ymm with AVX2): every lane
// does func.go's evalRow arithmetic — the same float32 operations in the same
// order, no fused multiply-adds (fp-contract=off) — and each reduction keeps
// lane l's partial sum of the values i ≡ l (mod 16), then adds them pairwise
// (laneSum), so the bits are evalRow's. Rows must have a multiple of 16 values.

#include "vecf.h"

// f(y) for one row of h values; dr may be yr (each chunk of 16 is read
// before it is written).
INL void eval_row(float *dr, const float *yr, const float *gamma, const float *beta, long h, float scale) {
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

LL_CLONES
void ll_odef_eval(float *dy, const float *y, const float *gamma, const float *beta,
		long rows, long h, float scale) {
	for (long i = 0; i < rows; i++) eval_row(dy + i * h, y + i * h, gamma, beta, h, scale);
}

// Func.EvalComb: each row's argument x = base + sc·s, s = c0·v0 then s + ck·vk
// (odeint's lincomb order), formed in the output row, then f in place.
// Offsets are in floats from the start of every vector.
LL_CLONES
void ll_odef_eval_comb(float *dy, const float *base, float sc, long off, long rows, long h,
		const float *gamma, const float *beta, float scale,
		int nt, float c0, const float *v0, float c1, const float *v1, float c2, const float *v2,
		float c3, const float *v3, float c4, const float *v4, float c5, const float *v5,
		float c6, const float *v6) {
	const float *v[7] = {v0, v1, v2, v3, v4, v5, v6};
	const float c[7] = {c0, c1, c2, c3, c4, c5, c6};
	for (long i = 0; i < rows; i++) {
		long o = off + i * h;
		float *dr = dy + o;
		for (long j = 0; j < h; j += 16) {
			vf t = {0};
			if (nt > 0) {
				t = c[0] * vload(v[0] + o + j);
				for (int k = 1; k < nt; k++) t = t + c[k] * vload(v[k] + o + j);
			}
			vstore(dr + j, vload(base + o + j) + sc * t);
		}
		eval_row(dr, dr, gamma, beta, h, scale);
	}
}

typedef float vf8 __attribute__((vector_size(32), aligned(4)));
typedef double vd8 __attribute__((vector_size(64), aligned(8)));

// d[0:16] += (double)x, lane by lane.
INL void acc_f64(double *d, vf x) {
	vf8 lo, hi;
	memcpy(&lo, &x, 32);
	memcpy(&hi, (char *)&x + 32, 32);
	vd8 a;
	memcpy(&a, d, 64);
	a += __builtin_convertvector(lo, vd8);
	memcpy(d, &a, 64);
	memcpy(&a, d + 8, 64);
	a += __builtin_convertvector(hi, vd8);
	memcpy(d + 8, &a, 64);
}

// fastmath.go's NormPDFFast lane by lane.
INL vf vnormpdf(vf v) {
	v = vclamp_abs(v, 0x41200000u);
	v = -0.5f * v * v;
	return 0.3989422804014327f * vexp(v);
}

// Func.VJP for the rows of one block (func.go's vjpRow, lane by lane): s is 3h
// floats of scratch, acc the block's 2h float64 accumulators (dγ, dβ).
LL_CLONES
void ll_odef_vjp(const float *y, const float *g, float *gy, const float *gamma, float *s, double *acc,
		long rows, long h, float scale) {
	float *sa = s, *sb = s + h, *sc = s + 2 * h;
	double *dg = acc, *db = acc + h;
	for (long i = 0; i < rows; i++) {
		const float *yr = y + i * h, *gr = g + i * h;
		float *gyr = gy + i * h;
		vf ss = {0};
		for (long j = 0; j < h; j += 16) {
			vf v = vload(yr + j);
			ss += v * v;
		}
		double nn = sqrt((double)lane_sum(ss));
		float c = (float)(-0.001 * nn), n = (float)nn;
		vf px = {0};
		for (long j = 0; j < h; j += 16) {
			vf v = vload(yr + j);
			vf th = vtanh(v);
			vf cdf = 0.5f * (1.0f + verf(v * scale));
			vf pdf = vnormpdf(v);
			vf x = c * v + 0.8f * th;
			x += (0.2f * v) * cdf;
			vstore(sa + j, x);
			vf d = c + 0.8f * (1.0f - th * th);
			vstore(sc + j, d + 0.2f * (cdf + v * pdf));
			px += x;
		}
		float mu = lane_sum(px) / (float)h;
		vf sd = {0};
		for (long j = 0; j < h; j += 16) {
			vf a = vload(sa + j) - mu;
			sd += a * a;
		}
		float r = (float)(1.0 / sqrt((double)lane_sum(sd) / (double)h + 1e-5));
		vf p1 = {0}, p2 = {0};
		for (long j = 0; j < h; j += 16) {
			vf xh = (vload(sa + j) - mu) * r;
			vf gj = vload(gr + j);
			acc_f64(dg + j, gj * xh);
			acc_f64(db + j, gj);
			vf gx = gj * vload(gamma + j);
			p1 += gx;
			p2 += gx * xh;
			vstore(sa + j, xh);
			vstore(sb + j, gx);
		}
		float a1 = lane_sum(p1) / (float)h, a2 = lane_sum(p2) / (float)h;
		vf pd = {0};
		for (long j = 0; j < h; j += 16) {
			vf dx = r * ((vload(sb + j) - a1) - vload(sa + j) * a2);
			vstore(sb + j, dx);
			pd += dx * vload(yr + j);
		}
		float dot = lane_sum(pd);
		float k = 0;
		if (n > 0) k = -0.001f * dot / n;
		for (long j = 0; j < h; j += 16) {
			vf v = vload(yr + j);
			vstore(gyr + j, vload(gyr + j) + (vload(sb + j) * vload(sc + j) + k * v));
		}
	}
}

// a[i·h + j] += be[j] over rows rows.
LL_CLONES
void ll_add_bias(float *a, const float *be, long rows, long h) {
	for (long i = 0; i < rows; i++) {
		float *r = a + i * h;
		for (long j = 0; j < h; j++) r[j] += be[j];
	}
}

// e = y + s·e0, element by element.
LL_CLONES
void ll_residual(float *e, const float *y, const float *e0, long n, float s) {
	for (long i = 0; i < n; i++) e[i] = y[i] + s * e0[i];
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

// evalCombC is Func.EvalComb's kernel for rows [r0, r1); false (nothing
// written) when h is not a multiple of 16 or there are more than 7 terms.
func evalCombC(dy, base []float32, sc float32, cs []float32, vs [][]float32, gamma, beta []float32, r0, r1, h int) bool {
	if h%16 != 0 || len(cs) > 7 || r1 <= r0 {
		return false
	}
	var c [7]C.float
	var v [7]*C.float
	for k := range cs {
		_ = vs[k][r1*h-1]
		c[k], v[k] = C.float(cs[k]), (*C.float)(unsafe.Pointer(&vs[k][0]))
	}
	_, _ = dy[r1*h-1], base[r1*h-1]
	C.ll_odef_eval_comb((*C.float)(unsafe.Pointer(&dy[0])), (*C.float)(unsafe.Pointer(&base[0])), C.float(sc),
		C.long(r0*h), C.long(r1-r0), C.long(h),
		(*C.float)(unsafe.Pointer(&gamma[0])), (*C.float)(unsafe.Pointer(&beta[0])), C.float(float32(invSqrt2)),
		C.int(len(cs)), c[0], v[0], c[1], v[1], c[2], v[2], c[3], v[3], c[4], v[4], c[5], v[5], c[6], v[6])
	return true
}

// addBias adds be to each of the rows rows of a (h values each).
func addBias(a, be []float32, rows, h int) {
	if rows*h < 64 {
		addBiasGo(a, be, rows, h)
		return
	}
	_, _ = a[rows*h-1], be[h-1]
	C.ll_add_bias((*C.float)(unsafe.Pointer(&a[0])), (*C.float)(unsafe.Pointer(&be[0])), C.long(rows), C.long(h))
}

// residual sets e = y + s·e0.
func residual(e, y, e0 []float32, s float32) {
	if len(e) < 64 {
		residualGo(e, y, e0, s)
		return
	}
	_, _ = y[len(e)-1], e0[len(e)-1]
	C.ll_residual((*C.float)(unsafe.Pointer(&e[0])), (*C.float)(unsafe.Pointer(&y[0])), (*C.float)(unsafe.Pointer(&e0[0])), C.long(len(e)), C.float(s))
}

// vjpRowsC runs vjpRow over rows rows of one block with the C kernel and
// reports true, or false (nothing done) when h is not a multiple of 16.
func vjpRowsC(y, g, gy, gamma, s []float32, acc []float64, rows, h int) bool {
	if h%16 != 0 || rows <= 0 {
		return false
	}
	_, _, _ = y[rows*h-1], g[rows*h-1], gy[rows*h-1]
	_, _, _ = gamma[h-1], s[3*h-1], acc[2*h-1]
	C.ll_odef_vjp((*C.float)(unsafe.Pointer(&y[0])), (*C.float)(unsafe.Pointer(&g[0])), (*C.float)(unsafe.Pointer(&gy[0])),
		(*C.float)(unsafe.Pointer(&gamma[0])), (*C.float)(unsafe.Pointer(&s[0])), (*C.double)(unsafe.Pointer(&acc[0])),
		C.long(rows), C.long(h), C.float(float32(invSqrt2)))
	return true
}
