package packed

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/num"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// within reports whether c (from the kernel) is within float32's error bound
// of the float64 product: K+1 roundings of partial sums no larger than
// Σ|a·b| + |bias|.
func within(t *testing.T, got []float32, ldc int, a []float32, lda, r int, b []float32, n, k int, bias []float32) {
	t.Helper()
	for i := 0; i < r; i++ {
		for j := 0; j < n; j++ {
			var ref, mag float64
			for kk := 0; kk < k; kk++ {
				p := float64(a[i*lda+kk]) * float64(b[j*k+kk])
				ref += p
				mag += math.Abs(p)
			}
			if bias != nil {
				ref += float64(bias[j])
				mag += math.Abs(float64(bias[j]))
			}
			tol := float64(k+2)*0x1p-24*mag + 1e-30
			if d := math.Abs(float64(got[i*ldc+j]) - ref); d > tol {
				t.Fatalf("c[%d,%d] = %v, want %v ± %.3g", i, j, got[i*ldc+j], ref, tol)
			}
		}
	}
}

// TestGemm: the kernel's product is within float32's error bound of the
// float64 one for every tail of rows (r mod 6), panels (N mod 64, N mod 16)
// and K, with and without bias and with strides; C's padding columns are
// left alone.
func TestGemm(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512F kernel here:", Path())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range []struct{ r, n, k, lda, ldc int }{
		{1, 1, 1, 1, 1}, {5, 17, 3, 3, 17}, {7, 33, 257, 260, 40}, {13, 100, 64, 64, 100},
		{6, 64, 256, 256, 64}, {64, 200, 256, 257, 203}, {300, 130, 8, 8, 130}, {11, 49, 1000, 1000, 49},
	} {
		a := randSlice(rng, (s.r-1)*s.lda+s.k)
		b := randSlice(rng, s.n*s.k)
		var p Matrix
		if err := Pack(&p, b, s.n, s.k); err != nil {
			t.Fatal(err)
		}
		for _, bias := range [][]float32{nil, randSlice(rng, s.n)} {
			c := make([]float32, (s.r-1)*s.ldc+s.n)
			for i := range c {
				c[i] = 7
			}
			if err := Gemm(c, s.ldc, a, s.lda, s.r, &p, bias); err != nil {
				t.Fatal(err)
			}
			within(t, c, s.ldc, a, s.lda, s.r, b, s.n, s.k, bias)
			for i := 0; i < s.r-1; i++ {
				for j := s.n; j < s.ldc; j++ {
					if c[i*s.ldc+j] != 7 {
						t.Fatalf("%+v: padding c[%d,%d] written", s, i, j)
					}
				}
			}
			ref := make([]float32, len(c))
			if err := GemmRef(ref, s.ldc, a, s.lda, s.r, &p, bias); err != nil {
				t.Fatal(err)
			}
			within(t, ref, s.ldc, a, s.lda, s.r, b, s.n, s.k, bias)
		}
	}
}

// TestGemmAgainstSgemm: the head's product through the kernel against
// num.Gemm (OpenBLAS) on the bias-augmented matrices [A|1]·[B|bias]ᵀ, the
// float32 head's other path: within the error bound, and the count of
// differing outputs logged (zero with OpenBLAS's AVX-512 kernels).
func TestGemmAgainstSgemm(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512F kernel here:", Path())
	}
	rng := rand.New(rand.NewPCG(3, 4))
	r, n, k := 70, 1000, 256
	a, b, bias := randSlice(rng, r*k), randSlice(rng, n*k), randSlice(rng, n)
	aa, bb := make([]float32, r*(k+1)), make([]float32, n*(k+1))
	for i := 0; i < r; i++ {
		copy(aa[i*(k+1):], a[i*k:(i+1)*k])
		aa[i*(k+1)+k] = 1
	}
	for i := 0; i < n; i++ {
		copy(bb[i*(k+1):], b[i*k:(i+1)*k])
		bb[i*(k+1)+k] = bias[i]
	}
	want := make([]float32, r*n)
	num.Gemm(false, true, r, n, k+1, 1, aa, k+1, bb, k+1, 0, want, n)
	var p Matrix
	if err := Pack(&p, b, n, k); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, r*n)
	if err := Gemm(got, n, a, k, r, &p, bias); err != nil {
		t.Fatal(err)
	}
	within(t, got, n, a, k, r, b, n, k, bias)
	diff := 0
	for i := range got {
		if got[i] != want[i] {
			diff++
		}
	}
	t.Logf("%d of %d outputs differ from num.Gemm's (%s, core %s)", diff, len(got), num.Backend(), num.Info().Core)
}

// TestPack: panels hold B's columns in k order, zero past N; a smaller
// matrix reuses the storage.
func TestPack(t *testing.T) {
	b := make([]float32, 20*3)
	for i := range b {
		b[i] = float32(i + 1)
	}
	var p Matrix
	if err := Pack(&p, b, 20, 3); err != nil {
		t.Fatal(err)
	}
	if p.Panels != 2 || len(p.Data) != 2*3*Panel {
		t.Fatalf("Pack: %d panels, %d values", p.Panels, len(p.Data))
	}
	for n := 0; n < 32; n++ {
		for k := 0; k < 3; k++ {
			want := float32(0)
			if n < 20 {
				want = b[n*3+k]
			}
			if got := p.Data[(n/Panel)*3*Panel+k*Panel+n%Panel]; got != want {
				t.Fatalf("packed B[%d,%d] = %v, want %v", n, k, got, want)
			}
		}
	}
	data := &p.Data[0]
	if err := Pack(&p, b[:16*3], 16, 3); err != nil || &p.Data[0] != data || p.Panels != 1 {
		t.Fatalf("repack: err %v, panels %d, storage reused %v", err, p.Panels, &p.Data[0] == data)
	}
}

// TestErrors: wrong sizes are errors, not panics; without the kernel Gemm
// says so.
func TestErrors(t *testing.T) {
	var p Matrix
	if err := Pack(&p, make([]float32, 5), 2, 3); err == nil {
		t.Error("Pack of 5 values as 2×3: no error")
	}
	if err := Pack(&p, make([]float32, 6), 2, 3); err != nil {
		t.Fatal(err)
	}
	if !Available() {
		if err := Gemm(make([]float32, 2), 2, make([]float32, 3), 3, 1, &p, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Gemm without the kernel: %v, want ErrUnsupported", err)
		}
		return
	}
	bad := &Matrix{N: 10, K: 3, Panels: 3, Data: make([]float32, 3*3*Panel)} // N needs one panel
	for name, f := range map[string]func() error{
		"panels ≠ ⌈N/16⌉, Gemm":      func() error { return Gemm(make([]float32, 10), 10, make([]float32, 3), 3, 1, bad, nil) },
		"panels ≠ ⌈N/16⌉, GemmKB":    func() error { return GemmKB(make([]float32, 10), 10, make([]float32, 3), 3, 1, bad, nil) },
		"panels ≠ ⌈N/16⌉, GemmTNAdd": func() error { return GemmTNAdd(make([]float32, 10), 10, make([]float32, 3), 1, 1, bad, -1) },
		"K = 0": func() error {
			return Gemm(make([]float32, 2), 2, make([]float32, 3), 3, 1, &Matrix{N: 2, Panels: 1}, nil)
		},
		"short A":    func() error { return Gemm(make([]float32, 2), 2, make([]float32, 2), 3, 1, &p, nil) },
		"short C":    func() error { return Gemm(make([]float32, 1), 2, make([]float32, 3), 3, 1, &p, nil) },
		"bias":       func() error { return Gemm(make([]float32, 2), 2, make([]float32, 3), 3, 1, &p, make([]float32, 3)) },
		"lda < K":    func() error { return Gemm(make([]float32, 4), 2, make([]float32, 6), 2, 2, &p, nil) },
		"not packed": func() error { return Gemm(make([]float32, 2), 2, make([]float32, 3), 3, 1, &Matrix{}, nil) },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// BenchmarkHead is the seed's head on a block of 1024 rows (the model's
// default), the kernel against OpenBLAS's sgemm on the bias-augmented
// product: go test -bench Head ./framework/num/packed (with and without
// OPENBLAS_CORETYPE; the kernel does not depend on it).
func BenchmarkHead(b *testing.B) {
	r, n, k := 1024, 32000, 256
	rng := rand.New(rand.NewPCG(5, 6))
	a, w, bias := randSlice(rng, r*k), randSlice(rng, n*k), randSlice(rng, n)
	c := make([]float32, r*n)
	flops := 2 * float64(r) * float64(n) * float64(k+1)
	b.Run("kernel=packed", func(b *testing.B) {
		if !Available() {
			b.Skip(Path())
		}
		var p Matrix
		if err := Pack(&p, w, n, k); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := Gemm(c, n, a, k, r, &p, bias); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("kernel=sgemm", func(b *testing.B) {
		aa, bb := make([]float32, r*(k+1)), make([]float32, n*(k+1))
		for i := 0; i < r; i++ {
			copy(aa[i*(k+1):], a[i*k:(i+1)*k])
			aa[i*(k+1)+k] = 1
		}
		for i := 0; i < n; i++ {
			copy(bb[i*(k+1):], w[i*k:(i+1)*k])
			bb[i*(k+1)+k] = bias[i]
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			num.Gemm(false, true, r, n, k+1, 1, aa, k+1, bb, k+1, 0, c, n)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("pack", func(b *testing.B) {
		var p Matrix
		for i := 0; i < b.N; i++ {
			if err := Pack(&p, w, n, k); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSquare is the 2048³ product bench's sgemm probe times, through
// the kernel (B packed beforehand) and through num.Gemm.
func BenchmarkSquare(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(7, 8))
	a, w := randSlice(rng, n*n), randSlice(rng, n*n)
	c := make([]float32, n*n)
	flops := 2 * float64(n) * n * n
	b.Run("kernel=packed", func(b *testing.B) {
		if !Available() {
			b.Skip(Path())
		}
		var p Matrix
		if err := Pack(&p, w, n, n); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := Gemm(c, n, a, n, n, &p, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("kernel=sgemm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			num.Gemm(false, true, n, n, n, 1, a, n, w, n, 0, c, n)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}

// TestPeak: the probe gives a positive rate where the kernel runs, 0 where
// it does not.
func TestPeak(t *testing.T) {
	g := Peak(64, 2)
	if Available() != (g > 0) {
		t.Errorf("Peak = %v with Available() = %v", g, Available())
	}
}

// TestGemmKB: B packed from [K,N] layout (PackKN) and multiplied with K in
// blocks (GemmKB) is within float32's error bound of the float64 product,
// for K a multiple of the block, past it and below it, every row tail, and N
// not a multiple of 16; the first block overwrites whatever C held.
func TestGemmKB(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512F kernel here:", Path())
	}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range []struct{ r, n, k, lda, ldb, ldc int }{
		{1, 16, 1, 1, 16, 16}, {7, 33, 1500, 1500, 40, 33}, {13, 256, 1024, 1030, 257, 256},
		{6, 20, 511, 511, 20, 25}, {25, 64, 2049, 2049, 64, 64},
	} {
		a := randSlice(rng, (s.r-1)*s.lda+s.k)
		bKN := randSlice(rng, (s.k-1)*s.ldb+s.n)
		b := make([]float32, s.n*s.k) // the same matrix in [N,K] layout, for within
		for kk := 0; kk < s.k; kk++ {
			for j := 0; j < s.n; j++ {
				b[j*s.k+kk] = bKN[kk*s.ldb+j]
			}
		}
		var p Matrix
		if err := PackKN(&p, bKN, s.k, s.n, s.ldb); err != nil {
			t.Fatal(err)
		}
		var q Matrix
		if err := Pack(&q, b, s.n, s.k); err != nil {
			t.Fatal(err)
		}
		for i := range q.Data {
			if q.Data[i] != p.Data[i] {
				t.Fatalf("%+v: PackKN and Pack of the transpose differ at %d", s, i)
			}
		}
		for _, bias := range [][]float32{nil, randSlice(rng, s.n)} {
			c := make([]float32, (s.r-1)*s.ldc+s.n)
			for i := range c {
				c[i] = 7
			}
			if err := GemmKB(c, s.ldc, a, s.lda, s.r, &p, bias); err != nil {
				t.Fatal(err)
			}
			within(t, c, s.ldc, a, s.lda, s.r, b, s.n, s.k, bias)
		}
	}
	var p Matrix
	if err := PackKN(&p, make([]float32, 10), 3, 4, 4); err == nil {
		t.Error("PackKN of 10 values as 3×4: no error")
	}
}

// BenchmarkHeadBackward is the head's backward product de = dlogits·W_o on a
// block of 1024 rows (K = 32000): GemmKB on W_o packed by PackKN against
// num.Gemm on [W_o | b_o] (stride 257), and the packing itself.
func BenchmarkHeadBackward(b *testing.B) {
	r, n, k := 1024, 256, 32000
	rng := rand.New(rand.NewPCG(9, 10))
	dl, wob := randSlice(rng, r*k), randSlice(rng, k*(n+1))
	c := make([]float32, r*n)
	flops := 2 * float64(r) * float64(n) * float64(k)
	b.Run("kernel=packed", func(b *testing.B) {
		if !Available() {
			b.Skip(Path())
		}
		var p Matrix
		if err := PackKN(&p, wob, k, n, n+1); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := GemmKB(c, n, dl, k, r, &p, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("kernel=sgemm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			num.Gemm(false, false, r, n, k, 1, dl, k, wob, n+1, 0, c, n)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("pack", func(b *testing.B) {
		var p Matrix
		for i := 0; i < b.N; i++ {
			if err := PackKN(&p, wob, k, n, n+1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestGemmTNAdd: c += aᵀ·B with a [K,M] (stride lda), within float32's error
// bound of the float64 sum (c's old value included), for K below, at and
// past the block, every row tail and N not a multiple of 16.
func TestGemmTNAdd(t *testing.T) {
	if !Available() {
		t.Skip("no AVX-512F kernel here:", Path())
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range []struct{ m, n, k, lda, ldc int }{
		{1, 1, 1, 1, 1}, {7, 33, 300, 9, 40}, {13, 257, 512, 13, 257}, {100, 20, 257, 101, 20}, {6, 64, 1, 6, 64},
	} {
		a := randSlice(rng, (s.k-1)*s.lda+s.m)
		bKN := randSlice(rng, s.k*s.n)
		var p Matrix
		if err := PackKN(&p, bKN, s.k, s.n, s.n); err != nil {
			t.Fatal(err)
		}
		sumCol := -1
		if s.ldc > s.n {
			sumCol = s.ldc - 1 // the ones column of [e|1]
		}
		c := randSlice(rng, (s.m-1)*s.ldc+max(s.n, sumCol+1))
		c0 := append([]float32(nil), c...)
		if err := GemmTNAdd(c, s.ldc, a, s.lda, s.m, &p, sumCol); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < s.m; i++ {
			for j := 0; j < s.n; j++ {
				ref, mag := float64(c0[i*s.ldc+j]), math.Abs(float64(c0[i*s.ldc+j]))
				for kk := 0; kk < s.k; kk++ {
					v := float64(a[kk*s.lda+i]) * float64(bKN[kk*s.n+j])
					ref += v
					mag += math.Abs(v)
				}
				if d := math.Abs(float64(c[i*s.ldc+j]) - ref); d > float64(s.k+2)*0x1p-24*mag+1e-30 {
					t.Fatalf("%+v: c[%d,%d] = %v, want %v", s, i, j, c[i*s.ldc+j], ref)
				}
			}
			for j := s.n; j < s.ldc && (i < s.m-1 || j <= sumCol); j++ {
				ref, mag := float64(c0[i*s.ldc+j]), math.Abs(float64(c0[i*s.ldc+j]))
				if j == sumCol {
					for kk := 0; kk < s.k; kk++ {
						ref += float64(a[kk*s.lda+i])
						mag += math.Abs(float64(a[kk*s.lda+i]))
					}
				}
				if d := math.Abs(float64(c[i*s.ldc+j]) - ref); d > float64(s.k+2)*0x1p-24*mag+1e-30 {
					t.Fatalf("%+v: c[%d,%d] (sum column %d) = %v, want %v", s, i, j, sumCol, c[i*s.ldc+j], ref)
				}
			}
		}
	}
	if err := GemmTNAdd(make([]float32, 4), 4, make([]float32, 3), 2, 2, &Matrix{}, -1); err == nil {
		t.Error("GemmTNAdd with an unpacked B: no error")
	}
	var p Matrix
	if err := PackKN(&p, make([]float32, 6), 2, 3, 3); err != nil {
		t.Fatal(err)
	}
	if err := GemmTNAdd(make([]float32, 8), 4, make([]float32, 4), 2, 2, &p, 1); err == nil {
		t.Error("GemmTNAdd with the sum column among B's: no error")
	}
}

// BenchmarkHeadDW is the head's backward product d[W_o|b_o] += dlogitsᵀ·[e|1]
// on a block of 1024 rows (M = 32000, N = 257, K = 1024): PackKN of [e|1]
// plus GemmTNAdd against num.Gemm.
func BenchmarkHeadDW(b *testing.B) {
	r, v, ha := 1024, 32000, 257
	h := ha - 1
	rng := rand.New(rand.NewPCG(15, 16))
	dl, hin := randSlice(rng, r*v), randSlice(rng, r*ha)
	dw := make([]float32, v*ha)
	flops := 2 * float64(r) * float64(v) * float64(ha)
	b.Run("kernel=packed", func(b *testing.B) {
		if !Available() {
			b.Skip(Path())
		}
		var p Matrix
		for i := 0; i < b.N; i++ {
			if err := PackKN(&p, hin, r, h, ha); err != nil {
				b.Fatal(err)
			}
			if err := GemmTNAdd(dw, ha, dl, v, v, &p, h); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("kernel=sgemm", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			num.Gemm(true, false, v, ha, r, 1, dl, v, hin, ha, 1, dw, ha)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
}
