//go:build cgo && amd64

package bf16

// #cgo CFLAGS: -O3 -mavx512f -mavx512bf16
// // bf16 GEMM for the output head: C[r,n] = sum_k A[r,k]·B[n,k] + bias[n], A and
// // B in bfloat16 pairs, float32 accumulation with vdpbf16ps. B is packed in
// // panels of 16 columns: panel p, pair kk holds 16 dwords (B[16p+j,2kk],
// // B[16p+j,2kk+1]), j = 0..15 — one zmm register.
// #include <immintrin.h>
// #include <stdint.h>
//
// #define PANEL 16
// #define MR 6 /* rows per tile */
// #define NP 4 /* panels per tile: 64 columns */
//
// static inline __attribute__((always_inline)) void tile(float *c, const uint16_t *a, int kp, const uint16_t *b,
// 		int n, const float *bias, int row, int mr, int p0, int np) {
// 	__m512 acc[MR][NP];
// 	for (int i = 0; i < MR; i++)
// 		for (int q = 0; q < NP; q++)
// 			acc[i][q] = _mm512_setzero_ps();
// 	const int pairs = kp / 2;
// 	const size_t pstride = (size_t)pairs * PANEL * 2; /* uint16 per panel */
// 	const uint16_t *bp = b + (size_t)p0 * pstride;
// 	const uint16_t *ar = a + (size_t)row * kp;
// 	for (int kk = 0; kk < pairs; kk++) {
// 		__m512i bv[NP];
// 		for (int q = 0; q < np; q++)
// 			bv[q] = _mm512_loadu_si512((const void *)(bp + (size_t)q * pstride + (size_t)kk * PANEL * 2));
// 		for (int i = 0; i < mr; i++) {
// 			int32_t pair;
// 			__builtin_memcpy(&pair, ar + (size_t)i * kp + 2 * kk, 4);
// 			__m512i av = _mm512_set1_epi32(pair);
// 			for (int q = 0; q < np; q++)
// 				acc[i][q] = _mm512_dpbf16_ps(acc[i][q], (__m512bh)av, (__m512bh)bv[q]);
// 		}
// 	}
// 	for (int q = 0; q < np; q++) {
// 		int col = (p0 + q) * PANEL;
// 		int valid = n - col;
// 		if (valid > PANEL)
// 			valid = PANEL;
// 		__mmask16 m = (__mmask16)((1u << valid) - 1u);
// 		__m512 bb = bias ? _mm512_maskz_loadu_ps(m, bias + col) : _mm512_setzero_ps();
// 		for (int i = 0; i < mr; i++)
// 			_mm512_mask_storeu_ps(c + (size_t)(row + i) * n + col, m, _mm512_add_ps(acc[i][q], bb));
// 	}
// }
//
//
// static inline uint16_t to_bf16(float f) {
// 	uint32_t b;
// 	__builtin_memcpy(&b, &f, 4);
// 	if ((b & 0x7fffffffu) > 0x7f800000u)
// 		return (uint16_t)(b >> 16) | 0x40;
// 	b += 0x7fffu + ((b >> 16) & 1u);
// 	return (uint16_t)(b >> 16);
// }
//
// // bf16_pack writes panels [plo,phi) of the packed B (see Pack).
// void bf16_pack(const float *b, int n, int k, int kp, uint16_t *dst, int plo, int phi) {
// 	const int pairs = kp / 2;
// 	for (int p = plo; p < phi; p++) {
// 		uint16_t *d = dst + (size_t)p * pairs * PANEL * 2;
// 		for (int j = 0; j < PANEL; j++) {
// 			int row = p * PANEL + j;
// 			const float *src = b + (size_t)row * k;
// 			for (int kk = 0; kk < pairs; kk++) {
// 				uint16_t lo = 0, hi = 0;
// 				if (row < n) {
// 					lo = to_bf16(src[2 * kk]);
// 					if (2 * kk + 1 < k)
// 						hi = to_bf16(src[2 * kk + 1]);
// 				}
// 				d[((size_t)kk * PANEL + j) * 2] = lo;
// 				d[((size_t)kk * PANEL + j) * 2 + 1] = hi;
// 			}
// 		}
// 	}
// }
// void bf16_gemm(float *c, const uint16_t *a, int r, int kp, const uint16_t *b, int n, const float *bias, int plo, int phi) {
// 	for (int p0 = plo; p0 < phi; p0 += NP) {
// 		int np = phi - p0 < NP ? phi - p0 : NP;
// 		int row = 0;
// 		if (np == NP) {
// 			for (; row + MR <= r; row += MR)
// 				tile(c, a, kp, b, n, bias, row, MR, p0, NP);
// 		}
// 		for (; row < r; row++)
// 			tile(c, a, kp, b, n, bias, row, 1, p0, np);
// 	}
// }
//
import "C"

import "unsafe"

const haveKernel = true

// gemmKernel computes the panels [lo,hi) of c (see Gemm). The C code only
// runs when Available said the CPU has AVX512_BF16.
func gemmKernel(c []float32, a []uint16, r int, p *Packed, bias []float32, lo, hi int) {
	var bp *C.float
	if bias != nil {
		bp = (*C.float)(unsafe.Pointer(&bias[0]))
	}
	C.bf16_gemm((*C.float)(unsafe.Pointer(&c[0])), (*C.uint16_t)(unsafe.Pointer(&a[0])), C.int(r), C.int(p.Kp),
		(*C.uint16_t)(unsafe.Pointer(&p.Data[0])), C.int(p.N), bp, C.int(lo), C.int(hi))
}

// packKernel packs panels [lo,hi) of p from b (see Pack).
func packKernel(p *Packed, b []float32, lo, hi int) {
	C.bf16_pack((*C.float)(unsafe.Pointer(&b[0])), C.int(p.N), C.int(p.K), C.int(p.Kp),
		(*C.uint16_t)(unsafe.Pointer(&p.Data[0])), C.int(lo), C.int(hi))
}
