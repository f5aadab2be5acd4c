package bf16

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/num"
)

func TestFromFloat32(t *testing.T) {
	for _, c := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0, 0}, {float32(math.Inf(1)), 0x7f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even below: stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd below: rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{math.Float32frombits(0x7f7fffff), 0x7f80}, // largest float32 rounds to +Inf, as in PyTorch
	} {
		if got := FromFloat32(c.in); got != c.want {
			t.Errorf("FromFloat32(%#x) = %#x, want %#x", math.Float32bits(c.in), got, c.want)
		}
	}
	if h := FromFloat32(float32(math.NaN())); !math.IsNaN(float64(ToFloat32(h))) {
		t.Errorf("NaN → %#x, not a NaN", h)
	}
}

func randMat(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestGemmMatchesReference checks the kernel bit for bit against GemmRef's
// sum of pair sums... up to float32 reassociation: the kernel sums the same
// pair products in the same order per lane, so they agree to a few ulps of the
// sum of magnitudes; and both against the float64 product of the bf16-rounded
// inputs.
func TestGemmMatchesReference(t *testing.T) {
	if !Available() {
		t.Skip("no AVX512_BF16 here: ", ErrUnsupported)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range []struct{ r, n, k int }{{1, 1, 1}, {7, 33, 5}, {13, 100, 64}, {6, 64, 256}, {25, 1000, 256}, {3, 17, 2}} {
		a, b, bias := randMat(rng, sz.r*sz.k), randMat(rng, sz.n*sz.k), randMat(rng, sz.n)
		var p Packed
		if err := Pack(&p, b, sz.n, sz.k); err != nil {
			t.Fatal(err)
		}
		ab := ConvertA(nil, a, sz.r, sz.k)
		got, ref := make([]float32, sz.r*sz.n), make([]float32, sz.r*sz.n)
		if err := Gemm(got, ab, sz.r, &p, bias); err != nil {
			t.Fatal(err)
		}
		if err := GemmRef(ref, ab, sz.r, &p, bias); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < sz.r; i++ {
			for j := 0; j < sz.n; j++ {
				var exact, mag float64
				for k := 0; k < sz.k; k++ {
					x := float64(ToFloat32(FromFloat32(a[i*sz.k+k]))) * float64(ToFloat32(FromFloat32(b[j*sz.k+k])))
					exact += x
					mag += math.Abs(x)
				}
				exact += float64(bias[j])
				tol := 4 * float64(sz.k) * 0x1p-24 * (mag + math.Abs(float64(bias[j])))
				g := float64(got[i*sz.n+j])
				if math.Abs(g-exact) > tol || math.Abs(float64(ref[i*sz.n+j])-exact) > tol {
					t.Fatalf("%v: C[%d,%d] kernel %v ref %v exact %v (tol %g)", sz, i, j, g, ref[i*sz.n+j], exact, tol)
				}
			}
		}
	}
}

// TestErrorAgainstFP32 reports the logit error of the bf16 head at the seed's
// hidden size against the float32 product (no assertion beyond a loose bound:
// bf16 keeps 8 significant bits).
func TestErrorAgainstFP32(t *testing.T) {
	if !Available() {
		t.Skip("no AVX512_BF16 here")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	r, n, k := 64, 2000, 256
	a, b := randMat(rng, r*k), randMat(rng, n*k)
	for i := range b {
		b[i] *= 1 / 16.0 // nn.Linear's scale: 1/sqrt(256)
	}
	var p Packed
	Pack(&p, b, n, k)
	got, want := make([]float32, r*n), make([]float32, r*n)
	if err := Gemm(got, ConvertA(nil, a, r, k), r, &p, nil); err != nil {
		t.Fatal(err)
	}
	num.Gemm(false, true, r, n, k, 1, a, k, b, k, 0, want, n)
	var maxAbs, maxRef float64
	for i := range got {
		maxAbs = max(maxAbs, math.Abs(float64(got[i]-want[i])))
		maxRef = max(maxRef, math.Abs(float64(want[i])))
	}
	t.Logf("largest |bf16 − fp32| logit error %.3g (largest |logit| %.3g)", maxAbs, maxRef)
	if maxAbs > 0.05*maxRef {
		t.Errorf("bf16 logits off by %g of %g", maxAbs, maxRef)
	}
}

func TestErrors(t *testing.T) {
	var p Packed
	if err := Pack(&p, make([]float32, 5), 2, 3); err == nil {
		t.Error("Pack accepted 5 values for 2×3")
	}
	Pack(&p, make([]float32, 6), 2, 3)
	if err := GemmRef(make([]float32, 3), make([]uint16, 4), 1, &p, nil); err == nil {
		t.Error("GemmRef accepted a C of the wrong size")
	}
	if !Available() {
		if err := Gemm(make([]float32, 2), make([]uint16, 4), 1, &p, nil); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Gemm without the CPU feature: %v, want ErrUnsupported", err)
		}
	}
}

// BenchmarkHead compares the seed head (512 rows × 256 → 32000) in bf16 with
// the float32 sgemm through OpenBLAS, in one run.
func BenchmarkHead(b *testing.B) {
	r, n, k := 512, 32000, 256
	rng := rand.New(rand.NewPCG(5, 6))
	a, w, bias := randMat(rng, r*k), randMat(rng, n*k), randMat(rng, n)
	c := make([]float32, r*n)
	flops := 2 * float64(r*n*k)
	b.Run("fp32-openblas", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			num.Gemm(false, true, r, n, k, 1, a, k, w, k, 0, c, n)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	if !Available() {
		b.Skip("no AVX512_BF16")
	}
	var p Packed
	Pack(&p, w, n, k)
	ab := ConvertA(nil, a, r, k)
	b.Run("bf16", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ab = ConvertA(ab, a, r, k)
			Gemm(c, ab, r, &p, bias)
		}
		b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	})
	b.Run("bf16-pack", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Pack(&p, w, n, k)
		}
	})
}

func TestPackKernelMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range []struct{ n, k int }{{1, 1}, {17, 5}, {40, 256}} {
		b := randMat(rng, sz.n*sz.k)
		b[0] = float32(math.NaN())
		b[len(b)-1] = math.Float32frombits(1) // a denormal
		var p, q Packed
		Pack(&p, b, sz.n, sz.k)
		q = Packed{N: p.N, K: p.K, Kp: p.Kp, Panels: p.Panels, Data: make([]uint16, len(p.Data))}
		packGo(&q, b, 0, q.Panels)
		for i := range p.Data {
			if p.Data[i] != q.Data[i] {
				t.Fatalf("%v: packed[%d] = %#x, Go %#x", sz, i, p.Data[i], q.Data[i])
			}
		}
	}
}
