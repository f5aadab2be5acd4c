//go:build cgo && !noopenblas

package train

/*
#cgo CFLAGS: -O3
#include <math.h>

// One AdamW step over n parameters; gcc vectorises it (8 lanes with AVX2).
__attribute__((target_clones("avx2", "default")))
void ll_adamw(float *w, const float *g, float *m, float *v, long n,
              float b1, float b2, float decay, float step, float inv_sqrt_bc2, float eps) {
	for (long i = 0; i < n; i++) {
		float gi = g[i];
		float mi = b1 * m[i] + (1 - b1) * gi;
		float vi = b2 * v[i] + (1 - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
		w[i] = w[i] * decay - step * mi / denom;
	}
}
*/
import "C"

import "unsafe"

func adamwKernel(w, g, m, v []float32, b1, b2, decay, step, invSqrtBC2, eps float32) {
	if len(w) == 0 {
		return
	}
	C.ll_adamw((*C.float)(unsafe.Pointer(&w[0])), (*C.float)(unsafe.Pointer(&g[0])), (*C.float)(unsafe.Pointer(&m[0])), (*C.float)(unsafe.Pointer(&v[0])), C.long(len(w)),
		C.float(b1), C.float(b2), C.float(decay), C.float(step), C.float(invSqrtBC2), C.float(eps))
}
