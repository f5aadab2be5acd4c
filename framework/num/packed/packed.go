package packed

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"liquidlab/framework/num"
)

// ErrUnsupported is returned where the CPU (or a build without cgo) has no
// AVX-512F kernel; callers use OpenBLAS's sgemm there instead.
var ErrUnsupported = errors.New("packed: this CPU has no AVX-512F (or liquidlab was built without cgo)")

// Available reports whether Gemm can run here.
func Available() bool { return haveKernel && cpu.X86.HasAVX512F }

// Path names the kernel, for bench notes.
func Path() string {
	if Available() {
		return "fp32 AVX-512F packed-weight kernel (C intrinsics)"
	}
	return "unavailable"
}

// Panel is the number of columns of B per packed panel: one zmm of float32.
const Panel = 16

// Matrix is B [N,K] packed: panel p holds, for each k in order, the 16 values
// B[16p+j, k], j = 0…15 (zero past N).
type Matrix struct {
	N, K, Panels int
	Data         []float32
}

// Pack packs b [n,k] (row-major) into p, reusing p's storage when it is
// large enough.
func Pack(p *Matrix, b []float32, n, k int) error {
	if n < 1 || k < 1 || len(b) != n*k {
		return fmt.Errorf("packed: pack %d×%d from %d values", n, k, len(b))
	}
	panels := p.reset(n, k)
	num.ParallelRows(panels, k*Panel, func(lo, hi int) {
		for pi := lo; pi < hi; pi++ {
			dst := p.Data[pi*k*Panel : (pi+1)*k*Panel]
			for j := 0; j < Panel; j++ {
				row := pi*Panel + j
				if row >= n {
					for kk := 0; kk < k; kk++ {
						dst[kk*Panel+j] = 0
					}
					continue
				}
				src := b[row*k : (row+1)*k]
				for kk, v := range src {
					dst[kk*Panel+j] = v
				}
			}
		}
	})
	return nil
}

// reset sizes p for n×k, reusing its storage when it is large enough, and
// returns the number of panels.
func (p *Matrix) reset(n, k int) int {
	panels := (n + Panel - 1) / Panel
	size := panels * k * Panel
	if cap(p.Data) < size {
		p.Data = make([]float32, size)
	}
	p.N, p.K, p.Panels, p.Data = n, k, panels, p.Data[:size]
	return panels
}

// PackKN packs B given in [K,N] layout (row-major, row stride ldb ≥ n; the
// first n columns of each row are used) into p: the same panels as Pack's of
// Bᵀ, so GemmKB(c, a, p) computes a·B. The head's backward uses it for
// dlogits·W_o with W_o [V,H] (K = V).
func PackKN(p *Matrix, b []float32, k, n, ldb int) error {
	if n < 1 || k < 1 || ldb < n || len(b) < (k-1)*ldb+n {
		return fmt.Errorf("packed: pack %d×%d (stride %d) from %d values", k, n, ldb, len(b))
	}
	panels := p.reset(n, k)
	num.ParallelRows(k, n, func(lo, hi int) {
		for pi := 0; pi < panels; pi++ {
			c0 := pi * Panel
			w := min(Panel, n-c0)
			blk := p.Data[pi*k*Panel:]
			for kk := lo; kk < hi; kk++ {
				dst := blk[kk*Panel : (kk+1)*Panel]
				copy(dst, b[kk*ldb+c0:kk*ldb+c0+w])
				clear(dst[w:])
			}
		}
	})
	return nil
}

// GemmKB is Gemm for long K (thousands): K in blocks whose panels stay in
// the L2 cache, each block's sums added to C in turn (so an output is a sum
// of per-block FMA chains, not one chain), the rows split over the cores.
func GemmKB(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32) error {
	if !Available() {
		return ErrUnsupported
	}
	if err := check(c, ldc, a, lda, r, p, bias); err != nil {
		return err
	}
	num.ParallelRows((r+5)/6, 12*p.K*p.N, func(lo, hi int) { gemmKernelKB(c, ldc, a, lda, p, bias, 6*lo, min(6*hi, r)) })
	return nil
}

// GemmTNAdd adds aᵀ·B to c [M,·] (row stride ldc): a is [K,M] (row stride
// lda ≥ m, row k holding the k-th term of every output row), B packed [N,K]
// (Pack, or PackKN of a [K,N] matrix); each output is one FMA chain over K
// added to c. With sumCol ≥ N it also adds Σ_k a[k,i] to c[i, sumCol] (a
// column of ones in B, without its FLOPs in the kernel). The rows of c are
// split over the cores. The head's backward uses it for
// d[W_o|b_o] += dlogitsᵀ·[e|1] (M = V, K = rows, sumCol = H).
func GemmTNAdd(c []float32, ldc int, a []float32, lda, m int, p *Matrix, sumCol int) error {
	if !Available() {
		return ErrUnsupported
	}
	width := p.N
	if sumCol >= 0 {
		width = max(width, sumCol+1)
	}
	if err := checkPacked(p); err != nil {
		return err
	}
	switch {
	case m < 1 || lda < m || len(a) < (p.K-1)*lda+m:
		return fmt.Errorf("packed: Aᵀ has %d values, want %d rows of %d (stride %d)", len(a), p.K, m, lda)
	case sumCol >= 0 && sumCol < p.N:
		return fmt.Errorf("packed: the sum column %d lies among B's %d columns", sumCol, p.N)
	case ldc < width || len(c) < (m-1)*ldc+width:
		return fmt.Errorf("packed: C has %d values, want %d rows of %d (stride %d)", len(c), m, width, ldc)
	}
	var failed atomic.Bool
	num.ParallelRows((m+5)/6, 12*p.K*p.N, func(lo, hi int) {
		if !gemmKernelTN(c, ldc, a, lda, p, 6*lo, min(6*hi, m), sumCol) {
			failed.Store(true)
		}
	})
	if failed.Load() {
		return errors.New("packed: out of memory for a strip of Aᵀ")
	}
	return nil
}

// Gemm computes c [R,N] (row stride ldc) = a·Bᵀ + bias for a [R,K] (row
// stride lda), B packed, bias [N] (nil: none). It splits the panels over the
// cores.
func Gemm(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32) error {
	if !Available() {
		return ErrUnsupported
	}
	if err := check(c, ldc, a, lda, r, p, bias); err != nil {
		return err
	}
	num.ParallelRows(p.Panels, 2*r*p.K*Panel, func(lo, hi int) { gemmKernel(c, ldc, a, lda, r, p, bias, lo, hi) })
	return nil
}

// checkPacked reports whether p is a packed matrix as Pack and PackKN make
// them (Matrix's fields are exported; the kernels trust them).
func checkPacked(p *Matrix) error {
	if p.N < 1 || p.K < 1 || p.Panels != (p.N+Panel-1)/Panel || len(p.Data) != p.Panels*p.K*Panel {
		return fmt.Errorf("packed: B is not packed (N %d, K %d, %d panels, %d values)", p.N, p.K, p.Panels, len(p.Data))
	}
	return nil
}

func check(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32) error {
	if err := checkPacked(p); err != nil {
		return err
	}
	switch {
	case r < 1 || lda < p.K || len(a) < (r-1)*lda+p.K:
		return fmt.Errorf("packed: A has %d values, want %d rows of %d (stride %d)", len(a), r, p.K, lda)
	case ldc < p.N || len(c) < (r-1)*ldc+p.N:
		return fmt.Errorf("packed: C has %d values, want %d rows of %d (stride %d)", len(c), r, p.N, ldc)
	case bias != nil && len(bias) != p.N:
		return fmt.Errorf("packed: bias has %d values, want %d", len(bias), p.N)
	}
	return nil
}

// GemmRef is Gemm in float64 (each output rounded to float32 once), the
// tests' reference. It runs anywhere.
func GemmRef(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32) error {
	if err := check(c, ldc, a, lda, r, p, bias); err != nil {
		return err
	}
	for i := 0; i < r; i++ {
		for n := 0; n < p.N; n++ {
			blk := p.Data[(n/Panel)*p.K*Panel:]
			var acc float64
			for k := 0; k < p.K; k++ {
				acc += float64(a[i*lda+k]) * float64(blk[k*Panel+n%Panel])
			}
			if bias != nil {
				acc += float64(bias[n])
			}
			c[i*ldc+n] = float32(acc)
		}
	}
	return nil
}

// Peak measures the kernel's rate in GFLOP/s on n×n×n products with B packed
// beforehand, as the head's weight is (best of reps, after one untimed): the
// stricter yardstick beside num.SgemmPeak, whose time includes OpenBLAS's
// packing of both operands. It returns 0 where the kernel cannot run.
func Peak(n, reps int) float64 {
	if !Available() {
		return 0
	}
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range a {
		a[i], b[i] = float32(i%7)*0.1, float32(i%5)*0.1
	}
	var p Matrix
	if Pack(&p, b, n, n) != nil || Gemm(c, n, a, n, n, &p, nil) != nil {
		return 0
	}
	best := 0.0
	for r := 0; r < reps; r++ {
		t0 := time.Now()
		if Gemm(c, n, a, n, n, &p, nil) != nil {
			return 0
		}
		if s := time.Since(t0).Seconds(); s > 0 {
			best = max(best, 2*float64(n)*float64(n)*float64(n)/s/1e9)
		}
	}
	return best
}
