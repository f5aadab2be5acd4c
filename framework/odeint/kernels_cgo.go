//go:build cgo && !noopenblas

package odeint

/*
#cgo CFLAGS: -O3

// lincombRange in C, in the same float32 order as the Go loop (t = c0·v0, then
// t = t + ck·vk left to right, then dst = base + scale·t) and without fused
// multiply-adds, so the bits are the Go version's; gcc vectorises the lane loops.
#define TILE 256
__attribute__((target_clones("avx2", "default")))
float ll_lincomb(float *dst, const float *base, float scale, long lo, long hi, int nt,
		float c0, const float *v0, float c1, const float *v1, float c2, const float *v2,
		float c3, const float *v3, float c4, const float *v4, float c5, const float *v5,
		float c6, const float *v6) {
	const float *v[7] = {v0, v1, v2, v3, v4, v5, v6};
	const float c[7] = {c0, c1, c2, c3, c4, c5, c6};
	float t[TILE];
	float acc = 0;
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
				float x = b[i] + p;
				d[i] = x;
				acc += x * 0;
			}
		} else {
			for (long i = 0; i < n; i++) {
				float x = scale * t[i];
				d[i] = x;
				acc += x * 0;
			}
		}
	}
	return acc;
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
