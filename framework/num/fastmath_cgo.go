//go:build !noopenblas

package num

/*
#cgo CFLAGS: -O3
#include <stdint.h>
#include <string.h>

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
static inline float exp_core(float v) {
	const float magic = 12582912.0f;
	uint32_t mb; memcpy(&mb, &magic, 4);
	float t = v * 1.44269504088896341f + magic;
	uint32_t tb; memcpy(&tb, &t, 4);
	int32_t k = (int32_t)tb - (int32_t)mb;
	float kf = t - magic;
	float r = v - kf * 0.693359375f;
	r -= kf * -2.12194440e-4f;
	float p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	float y = p * r * r + r + 1;
	uint32_t yb; memcpy(&yb, &y, 4);
	yb = (uint32_t)((int32_t)yb + (k << 23));
	float e; memcpy(&e, &yb, 4);
	return e;
}

__attribute__((target_clones("avx2", "default")))
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

__attribute__((target_clones("avx2", "default")))
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

__attribute__((target_clones("avx2", "default")))
void ll_normpdf(float *dst, const float *x, int n) {
	for (int i = 0; i < n; i++) {
		float v = clamp_abs(x[i], 0x41200000u);
		v = -0.5f * v * v;
		dst[i] = 0.3989422804014327f * exp_core(v);
	}
}

__attribute__((target_clones("avx2", "default")))
void ll_exp(float *dst, const float *x, int n) {
	for (int i = 0; i < n; i++) {
		float v = x[i];
		v = v < 88.0f ? v : 88.0f;
		v = v > -86.0f ? v : -86.0f;
		dst[i] = exp_core(v);
	}
}

__attribute__((target_clones("avx2", "default")))
void ll_relu(float *x, int n) {
	for (int i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__attribute__((target_clones("avx2", "default")))
void ll_relu_back(float *dy, const float *y, int n) {
	for (int i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
*/
import "C"

import "unsafe"

// vecMin is the length from which a slice kernel goes to the vectorised C loop
// (a cgo call costs about as much as a dozen elements).
const vecMin = 32

func tanhSliceC(dst, x []float32) {
	C.ll_tanh((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func erfSliceC(dst, x []float32, scale float32) {
	C.ll_erf((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)), C.float(scale))
}

func normPDFSliceC(dst, x []float32) {
	C.ll_normpdf((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func expSliceC(dst, x []float32) {
	C.ll_exp((*C.float)(unsafe.Pointer(&dst[0])), (*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func reluC(x []float32) {
	C.ll_relu((*C.float)(unsafe.Pointer(&x[0])), C.int(len(x)))
}

func reluBackC(dy, y []float32) {
	C.ll_relu_back((*C.float)(unsafe.Pointer(&dy[0])), (*C.float)(unsafe.Pointer(&y[0])), C.int(len(y)))
}

const haveVec = true
