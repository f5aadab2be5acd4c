//go:build cgo && !noopenblas

package coupling

/*
#cgo CFLAGS: -O3 -Wno-psabi -I${SRCDIR}/../../../framework/num
#pragma GCC optimize("fp-contract=off")

// layerForward's per-row work on the seed's (not exact) path for a range of
// rows, 16 values at a time (framework/num/vecf.h): seedRow's arithmetic lane
// by lane, its lane-ordered sum, then the first half's copy, the odd layers'
// residual and the log-determinant. The bits are the Go loops'.

#include "vecf.h"

__attribute__((target_clones("avx512f", "avx2", "default")))
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
