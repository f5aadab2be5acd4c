//go:build cgo && !noopenblas

package odeint

/*
#cgo CFLAGS: -O3 -I${SRCDIR}/../num
#pragma GCC optimize("fp-contract=off")
#include "simd.h"
#include <math.h>

// lincombRange in C, in the same float32 order as the Go loop (t = c0·v0, then
// t = t + ck·vk left to right, then dst = base + scale·t) and without fused
// multiply-adds, so the bits are the Go version's; gcc vectorises the lane loops.
// fin_tile adds d[i]·0 for the tile's values into sixteen lane accumulators:
// each stays +0 unless it meets a NaN or an infinity, so their sum is the
// finiteness accumulator a single running sum would give, without a
// one-add-per-value dependency chain (which kept these loops scalar).
static inline void fin_tile(float *fin, const float *d, long n) {
	long i = 0;
	for (; i + 16 <= n; i += 16)
		for (int l = 0; l < 16; l++) fin[l] += d[i + l] * 0;
	for (; i < n; i++) fin[i % 16] += d[i] * 0;
}

static inline float fin_sum(const float *fin) {
	float acc = 0;
	for (int l = 0; l < 16; l++) acc += fin[l];
	return acc;
}

#define TILE 256
LL_CLONES
float ll_lincomb(float *dst, const float *base, float scale, long lo, long hi, int nt,
		float c0, const float *v0, float c1, const float *v1, float c2, const float *v2,
		float c3, const float *v3, float c4, const float *v4, float c5, const float *v5,
		float c6, const float *v6) {
	const float *v[7] = {v0, v1, v2, v3, v4, v5, v6};
	const float c[7] = {c0, c1, c2, c3, c4, c5, c6};
	float t[TILE];
	float fin[16] = {0};
	for (long off = lo; off < hi; off += TILE) {
		long n = hi - off < TILE ? hi - off : TILE;
		if (nt == 0) {
			for (long i = 0; i < n; i++) t[i] = 0;
		} else {
			const float *a = v[0] + off;
			float ca = c[0];
			for (long i = 0; i < n; i++) t[i] = ca * a[i];
			for (int k = 1; k < nt; k++) {
				const float *b = v[k] + off;
				float cb = c[k];
				for (long i = 0; i < n; i++) {
					float p = cb * b[i];
					t[i] = t[i] + p;
				}
			}
		}
		float *d = dst + off;
		if (base) {
			const float *b = base + off;
			for (long i = 0; i < n; i++) {
				float p = scale * t[i];
				d[i] = b[i] + p;
			}
		} else {
			for (long i = 0; i < n; i++) d[i] = scale * t[i];
		}
		fin_tile(fin, d, n);
	}
	return fin_sum(fin);
}

// t[0:n] = Σ c_k·v_k[off:off+n] in sumTile's order (t = c0·v0, then t = t + ck·vk).
static inline void tile_sum(float *t, long n, long off, int nt, const float *c, const float *const *v) {
	if (nt == 0) {
		for (long i = 0; i < n; i++) t[i] = 0;
		return;
	}
	const float *a = v[0] + off;
	float ca = c[0];
	for (long i = 0; i < n; i++) t[i] = ca * a[i];
	for (int k = 1; k < nt; k++) {
		const float *b = v[k] + off;
		float cb = c[k];
		for (long i = 0; i < n; i++) {
			float p = cb * b[i];
			t[i] = t[i] + p;
		}
	}
}

// errorRatio's block kernel (kernels.go): Σ r² with r = dt·Σ e·k / (atol +
// rtol·max(|y|,|yn|)) in float64, value i of the block in partial sum i mod 8,
// the partial sums then added pairwise; *sum receives it and the return value
// is the finiteness accumulator of yn.
LL_CLONES
float ll_errratio(const float *y, const float *yn, float dt, double rtol, double atol,
		long lo, long hi, double *sum, int nt, float c0, const float *v0, float c1, const float *v1, float c2, const float *v2,
		float c3, const float *v3, float c4, const float *v4, float c5, const float *v5,
		float c6, const float *v6) {
	const float *v[7] = {v0, v1, v2, v3, v4, v5, v6};
	const float c[7] = {c0, c1, c2, c3, c4, c5, c6};
	float t[TILE];
	double r[TILE];
	double part[8] = {0};
	float fin[16] = {0};
	for (long off = lo; off < hi; off += TILE) {
		long n = hi - off < TILE ? hi - off : TILE;
		tile_sum(t, n, off, nt, c, v);
		const float *y0 = y + off, *y1 = yn + off;
		for (long i = 0; i < n; i++) {
			double e = (double)(dt * t[i]);
			float a = y0[i] < 0 ? -y0[i] : y0[i];
			float b = y1[i] < 0 ? -y1[i] : y1[i];
			a = b > a ? b : a;
			r[i] = e / (atol + rtol * (double)a);
		}
		fin_tile(fin, y1, n);
		long i = 0;
		for (; i + 8 <= n; i += 8)
			for (int l = 0; l < 8; l++) part[l] += r[i + l] * r[i + l];
		for (; i < n; i++) part[i % 8] += r[i] * r[i];
	}
	for (int w = 4; w >= 1; w /= 2)
		for (int l = 0; l < w; l++) part[l] += part[l + w];
	*sum = part[0];
	return fin_sum(fin);
}

// interp's kernel (kernels.go), element by element in the Go loop's order.
LL_CLONES
void ll_interp(float *dst, const float *y0, const float *y1, const float *f0, const float *f1,
		float dt32, float dt2, float x1, float x2, float x3, float x4,
		long lo, long hi, int nt, float c0, const float *v0, float c1, const float *v1, float c2, const float *v2,
		float c3, const float *v3, float c4, const float *v4, float c5, const float *v5,
		float c6, const float *v6) {
	const float *v[7] = {v0, v1, v2, v3, v4, v5, v6};
	const float c[7] = {c0, c1, c2, c3, c4, c5, c6};
	float t[TILE];
	for (long off = lo; off < hi; off += TILE) {
		long n = hi - off < TILE ? hi - off : TILE;
		tile_sum(t, n, off, nt, c, v);
		const float *a0 = y0 + off, *a1 = y1 + off, *g0 = f0 + off, *g1 = f1 + off;
		float *d = dst + off;
		for (long i = 0; i < n; i++) {
			float ym = a0[i] + dt32 * t[i];
			float ca = dt2 * (g1[i] - g0[i]) - 8 * (a1[i] + a0[i]);
			ca += 16 * ym;
			float cb = dt32 * (5 * g0[i] - 3 * g1[i]);
			cb += 18 * a0[i];
			cb += 14 * a1[i];
			cb -= 32 * ym;
			float cc = dt32 * (g1[i] - 4 * g0[i]);
			cc -= 11 * a0[i];
			cc -= 5 * a1[i];
			cc += 16 * ym;
			float c1 = dt32 * g0[i];
			float w = a0[i] + x1 * c1;
			w += x2 * cc;
			w += x3 * cb;
			w += x4 * ca;
			d[i] = w;
		}
	}
}

// initNorms's and diffNorm's block kernels (kernels.go): value i of the block
// in partial sum i mod 8, the partial sums added pairwise.
LL_CLONES
float ll_initnorms(const float *y0, const float *f0, double rtol, double atol, long lo, long hi,
		double *sa, double *sb) {
	double a[8] = {0}, b[8] = {0};
	float acc = 0;
	long i = lo;
	for (; i + 8 <= hi; i += 8) {
		for (int l = 0; l < 8; l++) {
			double y = (double)y0[i + l];
			double s = atol + fabs(y) * rtol;
			double u = y / s, v = (double)f0[i + l] / s;
			a[l] += u * u;
			b[l] += v * v;
			acc += y0[i + l] * 0 + f0[i + l] * 0;
		}
	}
	for (; i < hi; i++) {
		double y = (double)y0[i];
		double s = atol + fabs(y) * rtol;
		double u = y / s, v = (double)f0[i] / s;
		a[(i - lo) % 8] += u * u;
		b[(i - lo) % 8] += v * v;
		acc += y0[i] * 0 + f0[i] * 0;
	}
	for (int w = 4; w >= 1; w /= 2)
		for (int l = 0; l < w; l++) {
			a[l] += a[l + w];
			b[l] += b[l + w];
		}
	*sa = a[0];
	*sb = b[0];
	return acc;
}

LL_CLONES
double ll_diffnorm(const float *y0, const float *f0, const float *f1, double rtol, double atol, long lo, long hi) {
	double a[8] = {0};
	long i = lo;
	for (; i + 8 <= hi; i += 8) {
		for (int l = 0; l < 8; l++) {
			double s = atol + fabs((double)y0[i + l]) * rtol;
			double u = (double)(f1[i + l] - f0[i + l]) / s;
			a[l] += u * u;
		}
	}
	for (; i < hi; i++) {
		double s = atol + fabs((double)y0[i]) * rtol;
		double u = (double)(f1[i] - f0[i]) / s;
		a[(i - lo) % 8] += u * u;
	}
	for (int w = 4; w >= 1; w /= 2)
		for (int l = 0; l < w; l++) a[l] += a[l + w];
	return a[0];
}
*/
import "C"

import "unsafe"

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// lincombRangeC is lincombRange for up to seven terms; ok is false when there
// are more (the caller then uses the Go loop).
func lincombRangeC(dst, base []float32, scale float32, terms []term, lo, hi int) (acc float32, ok bool) {
	if len(terms) > 7 || hi <= lo {
		return 0, false
	}
	var c [7]C.float
	var v [7]*C.float
	for k, t := range terms {
		c[k], v[k] = C.float(t.c), fptr(t.v)
	}
	r := C.ll_lincomb(fptr(dst), fptr(base), C.float(scale), C.long(lo), C.long(hi), C.int(len(terms)),
		c[0], v[0], c[1], v[1], c[2], v[2], c[3], v[3], c[4], v[4], c[5], v[5], c[6], v[6])
	return float32(r), true
}

// cterms packs up to seven terms for the C kernels; ok is false for more.
func cterms(terms []term) (c [7]C.float, v [7]*C.float, ok bool) {
	if len(terms) > 7 {
		return c, v, false
	}
	for k, t := range terms {
		c[k], v[k] = C.float(t.c), fptr(t.v)
	}
	return c, v, true
}

// errorRatioRangeC is errorRatio's block kernel in C; ok is false with more
// than seven terms.
func errorRatioRangeC(y, yn []float32, dt float32, terms []term, rtol, atol float64, lo, hi int) (sum float64, acc float32, ok bool) {
	c, v, ok := cterms(terms)
	if !ok || hi <= lo {
		return 0, 0, false
	}
	var s C.double
	a := C.ll_errratio(fptr(y), fptr(yn), C.float(dt), C.double(rtol), C.double(atol), C.long(lo), C.long(hi), &s,
		C.int(len(terms)), c[0], v[0], c[1], v[1], c[2], v[2], c[3], v[3], c[4], v[4], c[5], v[5], c[6], v[6])
	return float64(s), float32(a), true
}

// interpRangeC is interp's block kernel in C; false with more than seven terms.
func interpRangeC(dst, y0, y1, f0, f1 []float32, mid []term, dt32, dt2, x1, x2, x3, x4 float32, lo, hi int) bool {
	c, v, ok := cterms(mid)
	if !ok || hi <= lo {
		return false
	}
	C.ll_interp(fptr(dst), fptr(y0), fptr(y1), fptr(f0), fptr(f1), C.float(dt32), C.float(dt2),
		C.float(x1), C.float(x2), C.float(x3), C.float(x4), C.long(lo), C.long(hi),
		C.int(len(mid)), c[0], v[0], c[1], v[1], c[2], v[2], c[3], v[3], c[4], v[4], c[5], v[5], c[6], v[6])
	return true
}

func initNormsRangeC(y0, f0 []float32, rtol, atol float64, lo, hi int) (a, b float64, acc float32, ok bool) {
	if hi <= lo {
		return 0, 0, 0, false
	}
	var sa, sb C.double
	r := C.ll_initnorms(fptr(y0), fptr(f0), C.double(rtol), C.double(atol), C.long(lo), C.long(hi), &sa, &sb)
	return float64(sa), float64(sb), float32(r), true
}

func diffNormRangeC(y0, f0, f1 []float32, rtol, atol float64, lo, hi int) (float64, bool) {
	if hi <= lo {
		return 0, false
	}
	return float64(C.ll_diffnorm(fptr(y0), fptr(f0), fptr(f1), C.double(rtol), C.double(atol), C.long(lo), C.long(hi))), true
}
