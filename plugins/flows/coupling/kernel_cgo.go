//go:build cgo && !noopenblas

package coupling

/*
#cgo CFLAGS: -O3 -Wno-psabi -I${SRCDIR}/../../../framework/num
#pragma GCC optimize("fp-contract=off")

// layerForward's per-row work on the seed's (not exact) path for a range of
// rows, 16 values at a time (framework/num/vecf.h): seedRow's arithmetic lane
// by lane, its lane-ordered sum, then the first half's copy, the odd layers'
// residual and the log-determinant. The bits are the Go loops'.

#include "simd.h"
#include "vecf.h"

LL_CLONES
void ll_coupling_rows(const float *in, float *out, const float *x0, float *ldj, float *th, const float *ut,
		long rows, long D, long H, float as, float at, float g, int odd, int inplace, float residual) {
	float g1 = 1.0f - g;
	for (long r = 0; r < rows; r++) {
		const float *xi = in + r * D;
		float *yo = out + r * D;
		float *thr = th + r * H;
		const float *utr = ut + r * H;
		vf acc = {0};
		for (long j = 0; j < H; j += 16) {
			vf t = vtanh(vload(thr + j));
			vstore(thr + j, t);
			vf s = t * as;
			vf e = vexp(s);
			vf xv = vload(xi + H + j);
			vstore(yo + H + j, g * (xv * e + vload(utr + j) * at) + g1 * xv);
			acc += s;
		}
		if (!inplace) memmove(yo, xi, H * sizeof(float));
		if (odd) {
			const float *xr = x0 + r * D;
			for (long k = 0; k < D; k += 16) vstore(yo + k, vload(yo + k) + vload(xr + k) * residual);
		}
		ldj[r] += (float)(double)(lane_sum(acc) * g);
	}
}

// (e^x, e^x − 1) lane by lane as fastmath.go's expm1: expPoly inside
// |x| < ln2/2, vexp (num.ExpFast) outside.
INL void vexpm1(vf x, vf *e, vf *em1) {
	vf pm1 = vexp_poly(x);
	vf big = vexp(x);
	vu in = (vu)(x > -0.34657359f) & (vu)(x < 0.34657359f);
	*em1 = (vf)(((vu)pm1 & in) | ((vu)(big - 1) & ~in));
	*e = (vf)(((vu)(pm1 + 1) & in) | ((vu)big & ~in));
}

// layerBackward's per-row work for a range of rows, 16 values at a time:
// the Go loop's float32 arithmetic lane by lane, then its three float64 sums
// in the Go loop's order (value by value). out[0..2] = Σ gsum, Σ ds·t, Σ dt·u.
LL_CLONES
void ll_coupling_back_rows(const float *in, float *th, float *ut, float *dY, float *dX0, const float *dldj,
		long rows, long D, long H, float as, float at, float g, int exact, int odd, float residual, double *out) {
	double sg = 0, sas = 0, sat = 0;
	float ga[16], aa[16], ta[16];
	for (long r = 0; r < rows; r++) {
		float *dyr = dY + r * D;
		if (odd) {
			float *dx = dX0 + r * D;
			for (long k = 0; k < D; k += 16) vstore(dx + k, vload(dx + k) + vload(dyr + k) * residual);
		}
		float dl = dldj ? dldj[r] : 0;
		const float *x2 = in + r * D + H;
		float *dy2 = dyr + H, *thr = th + r * H, *utr = ut + r * H;
		for (long j = 0; j < H; j += 16) {
			vf t = vload(thr + j);
			vf s = t * as;
			vf e, em1;
			vexpm1(s, &e, &em1);
			vf xv = vload(x2 + j), u = vload(utr + j), dv = vload(dy2 + j);
			vf a = 1 + g * em1;
			vf dt = dv * g;
			vf ds = dt * xv * e;
			vf gsum = dv * (xv * em1 + u * at);
			if (exact) {
				ds += dl * g * e / a;
				gsum += dl * em1 / a;
			} else {
				ds += dl * g;
				gsum += dl * s;
			}
			vstore(ga, gsum);
			vstore(aa, ds * t);
			vstore(ta, dt * u);
			for (int l = 0; l < 16; l++) {
				sg += (double)ga[l];
				sas += (double)aa[l];
				sat += (double)ta[l];
			}
			vstore(thr + j, ds * as * (1 - t * t));
			vstore(utr + j, dt * at);
			vstore(dy2 + j, dv * a);
		}
	}
	out[0] = sg;
	out[1] = sas;
	out[2] = sat;
}
*/
import "C"

import "unsafe"

func f32p(s []float32) *C.float { return (*C.float)(unsafe.Pointer(&s[0])) }

// layerRowsC runs layerForward's row loop (seed path) for rows rows with the C
// kernel and reports true, or reports false when H is not a multiple of 16 (the
// Go loop then gives the same bits).
func layerRowsC(in, out, x0, ldj, th, ut []float32, rows, D, H int, as, at, g float32, odd, inPlace bool) bool {
	if H%16 != 0 || D%16 != 0 || rows <= 0 {
		return false
	}
	_, _, _, _ = in[rows*D-1], out[rows*D-1], th[rows*H-1], ut[rows*H-1]
	_ = ldj[rows-1]
	var x0p *C.float
	if odd {
		_ = x0[rows*D-1]
		x0p = f32p(x0)
	}
	b := func(v bool) C.int {
		if v {
			return 1
		}
		return 0
	}
	C.ll_coupling_rows(f32p(in), f32p(out), x0p, f32p(ldj), f32p(th), f32p(ut), C.long(rows), C.long(D), C.long(H),
		C.float(as), C.float(at), C.float(g), b(odd), b(inPlace), C.float(float32(Residual)))
	return true
}

// layerBackRowsC runs layerBackward's row loop for rows rows with the C
// kernel and returns its three sums, or reports false when H or D is not a
// multiple of 16 (the Go loop then gives the same bits).
func layerBackRowsC(in, th, ut, dY, dX0, dldj []float32, rows, D, H int, as, at, g float32, exact, odd bool) (sg, sas, sat float64, ok bool) {
	if H%16 != 0 || D%16 != 0 || rows <= 0 {
		return 0, 0, 0, false
	}
	_, _, _, _ = in[rows*D-1], th[rows*H-1], ut[rows*H-1], dY[rows*D-1]
	var dx0p, dlp *C.float
	if odd {
		_ = dX0[rows*D-1]
		dx0p = f32p(dX0)
	}
	if dldj != nil {
		_ = dldj[rows-1]
		dlp = f32p(dldj)
	}
	b := func(v bool) C.int {
		if v {
			return 1
		}
		return 0
	}
	var out [3]C.double
	C.ll_coupling_back_rows(f32p(in), f32p(th), f32p(ut), f32p(dY), dx0p, dlp, C.long(rows), C.long(D), C.long(H),
		C.float(as), C.float(at), C.float(g), b(exact), b(odd), C.float(float32(Residual)), &out[0])
	return float64(out[0]), float64(out[1]), float64(out[2]), true
}
