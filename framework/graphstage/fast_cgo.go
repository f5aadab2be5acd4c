//go:build cgo && !noopenblas

package graphstage

/*
#cgo CFLAGS: -O3 -Wno-psabi -I${SRCDIR}/../num
#pragma GCC optimize("fp-contract=off", "no-math-errno")

// The kit's elementwise kernels (fast.go): fast.go's Go loops, vectorised by
// gcc (the arithmetic) or 16 lanes at a time with framework/num/vecf.h (exp,
// tanh, sigmoid), the same float32 operations without fused multiply-adds, so
// the bits are the Go loops'. k is fast.go's fastKind.

#include "simd.h"
#include <math.h>
#include "vecf.h"

#define CLONES LL_CLONES

enum { ADD = 1, SUB, MUL, DIV, ABS, SIGN, EXP, NEG, SQUARE, SQRT, INV, INVSQRT, CUBE, TANH, SIGMOID };

CLONES void gs_bin_vv(int k, float *o, const float *a, const float *b, long n) {
	switch (k) {
	case ADD: for (long i = 0; i < n; i++) o[i] = a[i] + b[i]; break;
	case SUB: for (long i = 0; i < n; i++) o[i] = a[i] - b[i]; break;
	case MUL: for (long i = 0; i < n; i++) o[i] = a[i] * b[i]; break;
	case DIV: for (long i = 0; i < n; i++) o[i] = a[i] / b[i]; break;
	}
}

// s at the right of the operator (right = 1) or at its left
CLONES void gs_bin_vs(int k, float *o, const float *a, float s, int right, long n) {
	if (right) {
		switch (k) {
		case ADD: for (long i = 0; i < n; i++) o[i] = a[i] + s; break;
		case SUB: for (long i = 0; i < n; i++) o[i] = a[i] - s; break;
		case MUL: for (long i = 0; i < n; i++) o[i] = a[i] * s; break;
		case DIV: for (long i = 0; i < n; i++) o[i] = a[i] / s; break;
		}
		return;
	}
	switch (k) {
	case ADD: for (long i = 0; i < n; i++) o[i] = s + a[i]; break;
	case SUB: for (long i = 0; i < n; i++) o[i] = s - a[i]; break;
	case MUL: for (long i = 0; i < n; i++) o[i] = s * a[i]; break;
	case DIV: for (long i = 0; i < n; i++) o[i] = s / a[i]; break;
	}
}

INL vf vsigmoid(vf x) { return 1.0f / (1.0f + vexp(-x)); }

// the functions of vecf.h on whole vectors; the tail through a padded copy
#define LANES(f) do { \
	long i = 0; \
	for (; i + 16 <= n; i += 16) vstore(o + i, f(vload(a + i))); \
	if (i < n) { \
		float t[16] = {0}; \
		memcpy(t, a + i, (n - i) * sizeof(float)); \
		vstore(t, f(vload(t))); \
		memcpy(o + i, t, (n - i) * sizeof(float)); \
	} \
} while (0)

CLONES void gs_unary(int k, float *o, const float *a, long n) {
	switch (k) {
	case ABS: for (long i = 0; i < n; i++) o[i] = fabsf(a[i]); break;
	case SIGN: for (long i = 0; i < n; i++) o[i] = a[i] < 0 ? -1.0f : a[i] > 0 ? 1.0f : a[i]; break;
	case EXP: LANES(vexp); break;
	case NEG: for (long i = 0; i < n; i++) o[i] = -a[i]; break;
	case SQUARE: for (long i = 0; i < n; i++) o[i] = a[i] * a[i]; break;
	case SQRT: for (long i = 0; i < n; i++) o[i] = sqrtf(a[i]); break;
	case INV: for (long i = 0; i < n; i++) o[i] = 1.0f / a[i]; break;
	case INVSQRT: for (long i = 0; i < n; i++) o[i] = 1.0f / sqrtf(a[i]); break;
	case CUBE: for (long i = 0; i < n; i++) o[i] = a[i] * a[i] * a[i]; break;
	case TANH: LANES(vtanh); break;
	case SIGMOID: LANES(vsigmoid); break;
	}
}
*/
import "C"

import "unsafe"

func fptr(x []float32) *C.float { return (*C.float)(unsafe.Pointer(unsafe.SliceData(x))) }

func binVV(k fastKind, o, a, b []float32) {
	if len(a) < cgoMin {
		binVVGo(k, o, a, b)
		return
	}
	o, b = o[:len(a)], b[:len(a)]
	C.gs_bin_vv(C.int(k), fptr(o), fptr(a), fptr(b), C.long(len(a)))
}

func binVS(k fastKind, o, a []float32, s float32) {
	if len(a) < cgoMin {
		binVSGo(k, o, a, s)
		return
	}
	o = o[:len(a)]
	C.gs_bin_vs(C.int(k), fptr(o), fptr(a), C.float(s), 1, C.long(len(a)))
}

func binSV(k fastKind, o []float32, s float32, b []float32) {
	if len(b) < cgoMin {
		binSVGo(k, o, s, b)
		return
	}
	o = o[:len(b)]
	C.gs_bin_vs(C.int(k), fptr(o), fptr(b), C.float(s), 0, C.long(len(b)))
}

func unaryKernel(k fastKind, o, a []float32) {
	if len(a) < cgoMin {
		unaryGo(k, o, a)
		return
	}
	o = o[:len(a)]
	C.gs_unary(C.int(k), fptr(o), fptr(a), C.long(len(a)))
}
