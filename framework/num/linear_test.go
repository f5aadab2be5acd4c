package num

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naive is the reference row-major product.
func naive(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			c[i*ldc+j] = float32(s) + beta*c[i*ldc+j]
		}
	}
}

// TestGemmSplit checks the goroutine split of large products (both the m and
// the n split, every transpose) against a plain triple loop.
func TestGemmSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][3]int{{300, 40, 400}, {40, 300, 400}, {3, 5, 7}} {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a := make([]float32, m*k)
				b := make([]float32, k*n)
				for i := range a {
					a[i] = float32(rng.NormFloat64())
				}
				for i := range b {
					b[i] = float32(rng.NormFloat64())
				}
				lda, ldb := k, n
				if ta {
					lda = m
				}
				if tb {
					ldb = k
				}
				c := make([]float32, m*n)
				want := make([]float32, m*n)
				for i := range c {
					c[i] = float32(i % 3)
					want[i] = c[i]
				}
				Gemm(ta, tb, m, n, k, 1, a, lda, b, ldb, 0.5, c, n)
				naive(ta, tb, m, n, k, a, lda, b, ldb, 0.5, want, n)
				for i := range c {
					if math.Abs(float64(c[i]-want[i])) > 1e-3 {
						t.Fatalf("%v ta=%v tb=%v: c[%d] = %v, want %v", sz, ta, tb, i, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestColSumAdd: ColSumAdd (the C kernel in the cgo build, split by columns
// over the cores when large) gives the bits of the float64 row-order loop,
// for widths around its 64-column blocks and lengths above and below the
// split's threshold.
func TestColSumAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, d := range []int{1, 7, 63, 64, 65, 128, 200, 256, 513} {
		for _, n := range []int{1, 5, 300, 4096} {
			m := make([]float32, n*d)
			for i := range m {
				m[i] = float32(rng.NormFloat64()) * float32(1+i%13)
			}
			got, want := make([]float32, d), make([]float32, d)
			for j := range got {
				got[j] = float32(j) * 0.25
				want[j] = got[j]
			}
			ColSumAdd(got, m, n, d)
			colSumAddGo(want, m, n, d, 0, d)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("n=%d d=%d: column %d: %v, want %v", n, d, j, got[j], want[j])
				}
			}
			if n == 300 && d == 65 { // and against a plain sum
				var s float64
				for i := 0; i < n; i++ {
					s += float64(m[i*d+64])
				}
				if w := float32(16 + s); want[64] != w {
					t.Fatalf("column 64: %v, want %v", want[64], w)
				}
			}
		}
	}
}

// TestColSumAddEmpty: no rows or no columns leave dst as it was.
func TestColSumAddEmpty(t *testing.T) {
	dst := []float32{1, float32(math.Copysign(0, -1))}
	ColSumAdd(dst, nil, 0, 2)
	ColSumAdd(dst, nil, 5, 0)
	if dst[0] != 1 || !math.Signbit(float64(dst[1])) {
		t.Errorf("dst = %v", dst)
	}
}

func BenchmarkColSumAdd(b *testing.B) {
	n, d := 4096, 256
	m := make([]float32, n*d)
	for i := range m {
		m[i] = float32(i%17) * 0.1
	}
	dst := make([]float32, d)
	b.SetBytes(int64(4 * n * d))
	for b.Loop() {
		ColSumAdd(dst, m, n, d)
	}
}
