package num

import (
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices, where
// op(a) is m×k and op(b) is k×n; lda, ldb, ldc are the row strides.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	if k == 0 {
		for i := 0; i < m; i++ {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	impl := blas32.Implementation()
	p := Workers()
	if p < 2 || float64(m)*float64(n)*float64(k) < 1<<22 {
		impl.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Split the larger of m and n into p parts, one goroutine each; each part
	// is an ordinary sgemm on a sub-matrix, so the result is the same.
	if m >= n {
		step := (m + p - 1) / p
		Parallel((m+step-1)/step, func(i int) {
			lo := i * step
			hi := min(lo+step, m)
			aa := a[lo*lda:]
			if transA {
				aa = a[lo:]
			}
			impl.Sgemm(ta, tb, hi-lo, n, k, alpha, aa, lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	step := (n + p - 1) / p
	Parallel((n+step-1)/step, func(i int) {
		lo := i * step
		hi := min(lo+step, n)
		bb := b[lo:]
		if transB {
			bb = b[lo*ldb:]
		}
		impl.Sgemm(ta, tb, m, hi-lo, k, alpha, a, lda, bb, ldb, beta, c[lo:], ldc)
	})
}

// LinearForward computes y[n,out] = x[n,in]·wᵀ + b, with w stored [out,in]
// (PyTorch layout). b may be nil.
func LinearForward(y, x, w, b []float32, n, in, out int) {
	checkLen("linear y", y, n*out)
	checkLen("linear x", x, n*in)
	checkLen("linear w", w, out*in)
	if b != nil {
		checkLen("linear b", b, out)
		for i := 0; i < n; i++ {
			copy(y[i*out:(i+1)*out], b)
		}
		Gemm(false, true, n, out, in, 1, x, in, w, in, 1, y, out)
		return
	}
	Gemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out)
}

// LinearBackward is LinearForward's gradient. Given dy [n,out] it sets
// dx = dy·w (or adds it when addDX), and adds dyᵀ·x to dw and Σ_rows dy to db.
// Any of dx, dw, db may be nil to skip it.
func LinearBackward(dx []float32, addDX bool, dw, db, dy, x, w []float32, n, in, out int) {
	checkLen("linear dy", dy, n*out)
	if dx != nil {
		checkLen("linear dx", dx, n*in)
		beta := float32(0)
		if addDX {
			beta = 1
		}
		Gemm(false, false, n, in, out, 1, dy, out, w, in, beta, dx, in)
	}
	if dw != nil {
		checkLen("linear dw", dw, out*in)
		Gemm(true, false, out, in, n, 1, dy, out, x, in, 1, dw, in)
	}
	if db != nil {
		checkLen("linear db", db, out)
		ColSumAdd(db, dy, n, out)
	}
}

// ColSumAdd adds the column sums of m [n,d] to dst [d]: each column summed in
// float64 in row order, then rounded once. Large matrices are split by
// columns over the cores (vectorised C in the cgo build), which changes no
// bit: every column's sum is the same chain of additions.
func ColSumAdd(dst, m []float32, n, d int) {
	if n <= 0 || d <= 0 {
		return
	}
	checkLen("colsum m", m, n*d)
	checkLen("colsum dst", dst, d)
	blocks := (d + 63) / 64
	p := min(Workers(), blocks)
	if p < 2 || n*d < 1<<16 {
		colSumAddRange(dst, m, n, d, 0, d)
		return
	}
	per := (blocks + p - 1) / p
	Parallel((blocks+per-1)/per, func(i int) {
		lo := i * per * 64
		colSumAddRange(dst, m, n, d, lo, min(lo+per*64, d))
	})
}

// colSumAddGo is ColSumAdd's loop on columns [lo, hi) in Go: the pure-Go
// build's kernel and the bits the C kernel must give.
func colSumAddGo(dst, m []float32, n, d, lo, hi int) {
	acc := make([]float64, hi-lo)
	for i := 0; i < n; i++ {
		row := m[i*d+lo : i*d+hi]
		for j, v := range row {
			acc[j] += float64(v)
		}
	}
	for j := range acc {
		dst[lo+j] += float32(acc[j])
	}
}

func checkLen(what string, s []float32, n int) {
	if len(s) < n {
		panic("num: " + what + ": slice too short")
	}
}

// PeakSize is the side of the square products SgemmPeak times for bench's
// yardstick. At 1024 (until session 9) the probe read 275–324 GFLOP/s with
// the AVX-512 kernels where 2048 read 342–367 in the same minute and the
// seed's head product itself ran at 333: a low yardstick that made bench print
// 95 % of "peak" for a forward pass at 72 % of the real one. 2048³ takes
// ~50 ms a product.
const PeakSize = 2048

// SgemmPeak measures this machine's sgemm rate in GFLOP/s on n×n×n products
// (best of reps, after one untimed), the yardstick for how much of the BLAS
// the model reaches.
func SgemmPeak(n, reps int) float64 {
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = float32(i%7)*0.1, float32(i%5)*0.1
	}
	Gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	best := 0.0
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		Gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
		if s := time.Since(t0).Seconds(); s > 0 {
			best = max(best, 2*float64(n)*float64(n)*float64(n)/s/1e9)
		}
	}
	return best
}
