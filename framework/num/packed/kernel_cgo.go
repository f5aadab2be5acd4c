//go:build cgo && amd64

package packed

// #cgo CFLAGS: -O3 -mavx512f
// // C[r, n] = sum_k A[r, k]·B[n, k] (+ bias[n]) with B packed in panels of 16
// // columns (panel p, k: 16 floats, one zmm). A tile of MR rows × NP panels
// // keeps MR·NP accumulators in registers over the whole of K.
// #include <immintrin.h>
// #include <stdint.h>
// #include <stddef.h>
//
// #define PANEL 16
// #define MR 6
// #define NP 4
//
// static inline __attribute__((always_inline)) void tile(float *c, long ldc, const float *a, long lda, int k,
// 		const float *bp, const float *bias, int col0, int n, const int mr, const int np) {
// 	__m512 acc[MR][NP];
// 	for (int i = 0; i < mr; i++)
// 		for (int q = 0; q < np; q++)
// 			acc[i][q] = _mm512_setzero_ps();
// 	for (int kk = 0; kk < k; kk++) {
// 		__m512 bv[NP];
// 		for (int q = 0; q < np; q++)
// 			bv[q] = _mm512_loadu_ps(bp + ((size_t)q * k + kk) * PANEL);
// 		for (int i = 0; i < mr; i++) {
// 			__m512 av = _mm512_set1_ps(a[(size_t)i * lda + kk]);
// 			for (int q = 0; q < np; q++)
// 				acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
// 		}
// 	}
// 	for (int q = 0; q < np; q++) {
// 		int col = col0 + q * PANEL;
// 		int valid = n - col < PANEL ? n - col : PANEL;
// 		__mmask16 m = (__mmask16)((1u << valid) - 1u);
// 		__m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + col) : _mm512_setzero_ps();
// 		for (int i = 0; i < mr; i++) {
// 			__m512 v = bias ? _mm512_add_ps(acc[i][q], bb) : acc[i][q];
// 			float *dst = c + (size_t)i * ldc + col;
// 			if (valid == PANEL && ((uintptr_t)dst & 63) == 0)
// 				_mm512_stream_ps(dst, v);
// 			else
// 				_mm512_mask_storeu_ps(dst, m, v);
// 		}
// 	}
// }
//
// #define TILE(MRC, NPC) tile(c + (size_t)row * ldc, ldc, a + (size_t)row * lda, lda, k, bp0, bias, col0, n, MRC, NPC)
// #define ROWS(MRC) switch (np) { case 4: TILE(MRC, 4); break; case 3: TILE(MRC, 3); break; case 2: TILE(MRC, 2); break; default: TILE(MRC, 1); }
//
// // pk_gemm computes the columns of panels [plo, phi) of C for all r rows.
// void pk_gemm(float *c, long ldc, const float *a, long lda, int r, int k, const float *bp, int n,
// 		const float *bias, int plo, int phi) {
// 	/* rows per pass over B: A.s block stays in L2 (~512 KB) */
// 	int mc = (512 * 1024) / (k * 4);
// 	mc = mc / MR * MR;
// 	if (mc < MR)
// 		mc = MR;
// 	for (int r0 = 0; r0 < r; r0 += mc) {
// 		int r1 = r0 + mc < r ? r0 + mc : r;
// 		for (int p0 = plo; p0 < phi; p0 += NP) {
// 			int np = phi - p0 < NP ? phi - p0 : NP;
// 			const float *bp0 = bp + (size_t)p0 * k * PANEL;
// 			int col0 = p0 * PANEL;
// 			int row = r0;
// 			for (; row + MR <= r1; row += MR) {
// 				ROWS(6)
// 			}
// 			switch (r1 - row) {
// 			case 5: ROWS(5) break;
// 			case 4: ROWS(4) break;
// 			case 3: ROWS(3) break;
// 			case 2: ROWS(2) break;
// 			case 1: ROWS(1) break;
// 			}
// 		}
// 	}
// 	_mm_sfence(); /* the streaming stores are visible before Gemm returns */
// }
import "C"

import "unsafe"

const haveKernel = true

// gemmKernel computes the panels [lo,hi) of c (see Gemm). The C code only
// runs when Available said the CPU has AVX-512F.
func gemmKernel(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32, lo, hi int) {
	var bp *C.float
	if bias != nil {
		bp = (*C.float)(unsafe.Pointer(&bias[0]))
	}
	C.pk_gemm((*C.float)(unsafe.Pointer(&c[0])), C.long(ldc), (*C.float)(unsafe.Pointer(&a[0])), C.long(lda), C.int(r), C.int(p.K),
		(*C.float)(unsafe.Pointer(&p.Data[0])), C.int(p.N), bp, C.int(lo), C.int(hi))
}
