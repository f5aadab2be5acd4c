//go:build cgo && amd64

package packed

// #cgo CFLAGS: -O3 -mavx512f
// // C[r, n] = sum_k A[r, k]·B[n, k] (+ bias[n]) with B packed in panels of 16
// // columns (panel p, k: 16 floats, one zmm). A tile of MR rows × NP panels
// // keeps MR·NP accumulators in registers over the whole of K.
// #include <immintrin.h>
// #include <stdint.h>
// #include <stddef.h>
// #include <stdlib.h>
//
// #define PANEL 16
// #define MR 6
// #define NP 4
//
// /* tile: C[0..mr, col0..col0+16·np) of rows at c (stride ldc) from A rows at a
//  * (stride lda) over klen k's, B panels at bp (panel stride pstride floats).
//  * acc == 0: C = sum (+ bias), streaming whole aligned panels when nt;
//  * acc == 1: C += sum. */
// static inline __attribute__((always_inline)) void tile(float *c, long ldc, const float *a, long lda, int klen,
// 		const float *bp, size_t pstride, const float *bias, int col0, int n, const int mr, const int np,
// 		int acc_c, int nt) {
// 	__m512 acc[MR][NP];
// 	for (int i = 0; i < mr; i++)
// 		for (int q = 0; q < np; q++)
// 			acc[i][q] = _mm512_setzero_ps();
// 	for (int kk = 0; kk < klen; kk++) {
// 		__m512 bv[NP];
// 		for (int q = 0; q < np; q++)
// 			bv[q] = _mm512_loadu_ps(bp + (size_t)q * pstride + (size_t)kk * PANEL);
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
// 		__m512 bb = _mm512_setzero_ps();
// 		if (!acc_c && bias)
// 			bb = _mm512_maskz_loadu_ps(m, bias + col);
// 		for (int i = 0; i < mr; i++) {
// 			float *dst = c + (size_t)i * ldc + col;
// 			__m512 v = acc[i][q];
// 			if (acc_c)
// 				v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v);
// 			else if (bias)
// 				v = _mm512_add_ps(v, bb);
// 			if (nt && valid == PANEL && ((uintptr_t)dst & 63) == 0)
// 				_mm512_stream_ps(dst, v);
// 			else
// 				_mm512_mask_storeu_ps(dst, m, v);
// 		}
// 	}
// }
//
// #define TILE(MRC, NPC) tile(c + (size_t)row * ldc + col0, ldc, a + (size_t)row * lda + k0, lda, klen, bp0, pstride, \
// 		bias ? bias + col0 : 0, 0, n - col0, MRC, NPC, acc_c, nt)
// #define ROWS(MRC) switch (np) { case 4: TILE(MRC, 4); break; case 3: TILE(MRC, 3); break; case 2: TILE(MRC, 2); break; default: TILE(MRC, 1); }
// #define TAIL switch (r1 - row) { case 5: ROWS(5) break; case 4: ROWS(4) break; case 3: ROWS(3) break; case 2: ROWS(2) break; case 1: ROWS(1) break; }
//
// /* pk_gemm: the columns of panels [plo, phi) of C for all r rows, each output
//  * one FMA chain over the whole of K (no K blocking). */
// void pk_gemm(float *c, long ldc, const float *a, long lda, int r, int k, const float *bp, int n,
// 		const float *bias, int plo, int phi) {
// 	/* rows per pass over B: A's block stays in L2 (~512 KB) */
// 	int mc = (512 * 1024) / (k * 4);
// 	mc = mc / MR * MR;
// 	if (mc < MR)
// 		mc = MR;
// 	const size_t pstride = (size_t)k * PANEL;
// 	const int k0 = 0, klen = k, acc_c = 0, nt = 1;
// 	for (int r0 = 0; r0 < r; r0 += mc) {
// 		int r1 = r0 + mc < r ? r0 + mc : r;
// 		for (int p0 = plo; p0 < phi; p0 += NP) {
// 			int np = phi - p0 < NP ? phi - p0 : NP;
// 			const float *bp0 = bp + (size_t)p0 * pstride;
// 			int col0 = p0 * PANEL;
// 			int row = r0;
// 			for (; row + MR <= r1; row += MR) {
// 				ROWS(6)
// 			}
// 			TAIL
// 		}
// 	}
// 	_mm_sfence(); /* the streaming stores are visible before Gemm returns */
// }
//
// /* pk_gemm_kb: rows [rlo, rhi) of C, all columns, K in blocks of kc (the
//  * panels' block stays in L2): the first block writes C (+ bias), the others
//  * add to it. For long K (the head's backward: K = vocabulary). */
// void pk_gemm_kb(float *c, long ldc, const float *a, long lda, int rlo, int rhi, int k, const float *bp, int n,
// 		const float *bias, int kc) {
// 	const int panels = (n + PANEL - 1) / PANEL;
// 	const size_t pstride = (size_t)k * PANEL;
// 	const int nt = 0;
// 	for (int k0 = 0; k0 < k; k0 += kc) {
// 		const int klen = k - k0 < kc ? k - k0 : kc;
// 		const int acc_c = k0 > 0;
// 		const int r1 = rhi;
// 		int row = rlo;
// 		for (; row < r1; row += MR) {
// 			for (int p0 = 0; p0 < panels; p0 += NP) {
// 				int np = panels - p0 < NP ? panels - p0 : NP;
// 				const float *bp0 = bp + (size_t)p0 * pstride + (size_t)k0 * PANEL;
// 				int col0 = p0 * PANEL;
// 				if (row + MR <= r1) {
// 					ROWS(6)
// 				} else {
// 					TAIL
// 				}
// 			}
// 		}
// 	}
// }
//
// /* tile_t: tile with A transposed: A's element (i, k) at a[k·lda + i]
//  * (the head's dW = dlogitsᵀ·e: six consecutive vocabulary entries of one
//  * dlogits row per k), over the whole of K in one FMA chain; C += sum. With
//  * bc ≥ 0 it also adds Σ_k A(i, k) to column bc of C (dlogitsᵀ·1: b_o's
//  * gradient), from the same loads. */
// static inline __attribute__((always_inline)) void tile_t(float *c, long ldc, const float *a, long lda, int klen,
// 		const float *bp, size_t pstride, int n, const int mr, const int np, long bc) {
// 	__m512 acc[MR][NP];
// 	__m512 bsum = _mm512_setzero_ps();
// 	const __mmask16 mrm = (__mmask16)((1u << mr) - 1u);
// 	for (int i = 0; i < mr; i++)
// 		for (int q = 0; q < np; q++)
// 			acc[i][q] = _mm512_setzero_ps();
// 	for (int kk = 0; kk < klen; kk++) {
// 		__m512 bv[NP];
// 		for (int q = 0; q < np; q++)
// 			bv[q] = _mm512_loadu_ps(bp + (size_t)q * pstride + (size_t)kk * PANEL);
// 		const float *ak = a + (size_t)kk * lda;
// 		if (bc >= 0)
// 			bsum = _mm512_add_ps(bsum, _mm512_maskz_loadu_ps(mrm, ak));
// 		for (int i = 0; i < mr; i++) {
// 			__m512 av = _mm512_set1_ps(ak[i]);
// 			for (int q = 0; q < np; q++)
// 				acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
// 		}
// 	}
// 	for (int q = 0; q < np; q++) {
// 		int col = q * PANEL;
// 		int valid = n - col < PANEL ? n - col : PANEL;
// 		__mmask16 m = (__mmask16)((1u << valid) - 1u);
// 		for (int i = 0; i < mr; i++) {
// 			float *dst = c + (size_t)i * ldc + col;
// 			_mm512_mask_storeu_ps(dst, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), acc[i][q]));
// 		}
// 	}
// 	if (bc >= 0) {
// 		float s[16];
// 		_mm512_storeu_ps(s, bsum);
// 		for (int i = 0; i < mr; i++)
// 			c[(size_t)i * ldc + bc] += s[i];
// 	}
// }
//
// #define TTILE(MRC, NPC) tile_t(c + (size_t)row * ldc + col0, ldc, strip + (row - vb), TN_VB, k, bp0, pstride, n - col0, MRC, NPC, p0 == 0 ? bc - col0 : -1)
// #define TROWS(MRC) switch (np) { case 4: TTILE(MRC, 4); break; case 3: TTILE(MRC, 3); break; case 2: TTILE(MRC, 2); break; default: TTILE(MRC, 1); }
// #define TN_VB 96 /* rows of C (vocabulary entries) per pass over the panels */
//
// /* pk_gemm_tn: C[rlo..rhi) += Aᵀ·B for A [K, ·] (row stride lda; C's row i
//  * is A's column i) and B packed [N, K] panels; with bc ≥ 0 also
//  * C[i, bc] += Σ_k A(i, k). Blocks of TN_VB rows: their strip of A is copied
//  * to a contiguous TN_VB × K buffer (A's rows are lda apart, 128 KB for the
//  * seed's vocabulary, which maps them onto a handful of cache sets) that
//  * stays in L2 while every panel group passes over it. Returns -1 if the
//  * buffer cannot be allocated. */
// int pk_gemm_tn(float *c, long ldc, const float *a, long lda, int rlo, int rhi, int k, const float *bp, int n, long bc) {
// 	const int panels = (n + PANEL - 1) / PANEL;
// 	const size_t pstride = (size_t)k * PANEL;
// 	float *strip = aligned_alloc(64, ((size_t)TN_VB * k * sizeof(float) + 63) / 64 * 64);
// 	if (!strip)
// 		return -1;
// 	for (int vb = rlo; vb < rhi; vb += TN_VB) {
// 		const int ve = vb + TN_VB < rhi ? vb + TN_VB : rhi;
// 		for (int kk = 0; kk < k; kk++) {
// 			const float *src = a + (size_t)kk * lda + vb;
// 			float *dst = strip + (size_t)kk * TN_VB;
// 			int i = 0;
// 			for (; i < ve - vb; i++)
// 				dst[i] = src[i];
// 			for (; i < TN_VB; i++)
// 				dst[i] = 0;
// 		}
// 		for (int p0 = 0; p0 < panels; p0 += NP) {
// 			int np = panels - p0 < NP ? panels - p0 : NP;
// 			const float *bp0 = bp + (size_t)p0 * pstride;
// 			int col0 = p0 * PANEL;
// 			for (int row = vb; row < ve; row += MR) {
// 				const int mr = ve - row < MR ? ve - row : MR;
// 				switch (mr) {
// 				case 6: TROWS(6) break;
// 				case 5: TROWS(5) break;
// 				case 4: TROWS(4) break;
// 				case 3: TROWS(3) break;
// 				case 2: TROWS(2) break;
// 				default: TROWS(1) break;
// 				}
// 			}
// 		}
// 	}
// 	free(strip);
// 	return 0;
// }
import "C"

import "unsafe"

const haveKernel = true

// kBlock is the K block of gemmKernelKB: 512 k's of 16 panels (the seed's
// H = 256 columns) are 512 KB, half of a core's L2.
const kBlock = 512

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

// gemmKernelKB computes rows [lo,hi) of c with K blocked (see GemmKB).
func gemmKernelKB(c []float32, ldc int, a []float32, lda int, p *Matrix, bias []float32, lo, hi int) {
	var bp *C.float
	if bias != nil {
		bp = (*C.float)(unsafe.Pointer(&bias[0]))
	}
	C.pk_gemm_kb((*C.float)(unsafe.Pointer(&c[0])), C.long(ldc), (*C.float)(unsafe.Pointer(&a[0])), C.long(lda), C.int(lo), C.int(hi), C.int(p.K),
		(*C.float)(unsafe.Pointer(&p.Data[0])), C.int(p.N), bp, C.int(kBlock))
}

// gemmKernelTN computes rows [lo,hi) of c += aᵀ·B (see GemmTNAdd).
func gemmKernelTN(c []float32, ldc int, a []float32, lda int, p *Matrix, lo, hi, bc int) bool {
	return C.pk_gemm_tn((*C.float)(unsafe.Pointer(&c[0])), C.long(ldc), (*C.float)(unsafe.Pointer(&a[0])), C.long(lda), C.int(lo), C.int(hi), C.int(p.K),
		(*C.float)(unsafe.Pointer(&p.Data[0])), C.int(p.N), C.long(bc)) == 0
}
