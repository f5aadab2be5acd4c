package coupling

import (
	"math"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage/stagetest"
)

// TestLayerRowsCMatchesGo: the cgo build's row kernel gives exactly the Go
// loop's bits (seedRow, the copy, the odd layers' residual, the
// log-determinant), in place and not, for large scale inputs too.
func TestLayerRowsCMatchesGo(t *testing.T) {
	const rows, D, H = 21, 96, 48
	r := rand.New(rand.NewPCG(8, 8))
	for _, odd := range []bool{false, true} {
		for _, inPlace := range []bool{false, true} {
			in := stagetest.Randn(r, rows*D, 1)
			x0 := stagetest.Randn(r, rows*D, 1)
			th := stagetest.Randn(r, rows*H, 3)
			th[0], th[1] = 40, -1e-30
			ut := stagetest.Randn(r, rows*H, 1)
			ldj := stagetest.Randn(r, rows, 1)
			as, at, g := float32(1.7), float32(0.6), float32(0.8)

			inC, thC, ldjC := append([]float32(nil), in...), append([]float32(nil), th...), append([]float32(nil), ldj...)
			outC := make([]float32, rows*D)
			if inPlace {
				outC = inC
			}
			if !layerRowsC(inC, outC, x0, ldjC, thC, ut, rows, D, H, as, at, g, odd, inPlace) {
				t.Skip("no C kernel in this build")
			}
			outG := make([]float32, rows*D)
			sb, eb := make([]float32, H), make([]float32, H)
			for i := 0; i < rows; i++ {
				xi, yo := in[i*D:(i+1)*D], outG[i*D:(i+1)*D]
				acc := seedRow(xi[H:], yo[H:], th[i*H:(i+1)*H], ut[i*H:(i+1)*H], sb, eb, as, at, g)
				copy(yo[:H], xi[:H])
				if odd {
					for k, v := range x0[i*D : (i+1)*D] {
						yo[k] += float32(v * Residual)
					}
				}
				ldj[i] += float32(acc)
			}
			for _, c := range []struct {
				what string
				a, b []float32
			}{{"out", outC, outG}, {"tanh", thC, th}, {"ldj", ldjC, ldj}} {
				for i := range c.a {
					if math.Float32bits(c.a[i]) != math.Float32bits(c.b[i]) {
						t.Fatalf("odd=%v inPlace=%v %s[%d]: C %v, Go %v", odd, inPlace, c.what, i, c.a[i], c.b[i])
					}
				}
			}
		}
	}
}

// TestLayerBackRowsCMatchesGo: the cgo build's backward row kernel gives
// exactly the Go loop's bits (the three gradients it leaves in th, ut and dY,
// the residual's share of dX0 on odd layers, the float64 sums), on the seed's
// path and the exact one, with and without a log-determinant gradient, for
// arguments inside and outside expm1's polynomial range.
func TestLayerBackRowsCMatchesGo(t *testing.T) {
	const rows, D, H = 21, 96, 48
	r := rand.New(rand.NewPCG(9, 9))
	for _, odd := range []bool{false, true} {
		for _, exact := range []bool{false, true} {
			for _, withLDJ := range []bool{false, true} {
				in := stagetest.Randn(r, rows*D, 1)
				th := stagetest.Randn(r, rows*H, 0.5)
				th[0], th[1], th[2] = 0.99, -1e-30, 0.2
				ut := stagetest.Randn(r, rows*H, 1)
				dY := stagetest.Randn(r, rows*D, 1)
				dX0 := stagetest.Randn(r, rows*D, 1)
				var dldj []float32
				if withLDJ {
					dldj = stagetest.Randn(r, rows, 1)
				}
				as, at, g := float32(1.7), float32(0.6), float32(0.8)
				cl := func(v []float32) []float32 { return append([]float32(nil), v...) }
				thC, utC, dYC, dX0C := cl(th), cl(ut), cl(dY), cl(dX0)
				sgC, sasC, satC, ok := layerBackRowsC(in, thC, utC, dYC, dX0C, dldj, rows, D, H, as, at, g, exact, odd)
				if !ok {
					t.Skip("no C kernel in this build")
				}
				sg, sas, sat := layerBackRows(in, th, ut, dY, dX0, dldj, rows, D, H, as, at, g, exact, odd)
				if sgC != sg || sasC != sas || satC != sat {
					t.Fatalf("odd=%v exact=%v ldj=%v: sums C %v %v %v, Go %v %v %v", odd, exact, withLDJ, sgC, sasC, satC, sg, sas, sat)
				}
				for _, c := range []struct {
					what string
					a, b []float32
				}{{"th", thC, th}, {"ut", utC, ut}, {"dY", dYC, dY}, {"dX0", dX0C, dX0}} {
					for i := range c.a {
						if math.Float32bits(c.a[i]) != math.Float32bits(c.b[i]) {
							t.Fatalf("odd=%v exact=%v ldj=%v %s[%d]: C %v, Go %v", odd, exact, withLDJ, c.what, i, c.a[i], c.b[i])
						}
					}
				}
			}
		}
	}
}

// TestNetForwardPacked: a coupling net on package packed's kernel (rows of
// stride D, as the layers call it) gives OpenBLAS's sgemm path's h and u
// within float32 rounding, twice on the same net (the packed weights are
// kept for the call).
func TestNetForwardPacked(t *testing.T) {
	const n, D, H, F = 300, 96, 48, 20
	if !usePacked(n) {
		t.Skip("no packed kernel here")
	}
	r := rand.New(rand.NewPCG(9, 9))
	nt := &net{w1: stagetest.Randn(r, F*H, 0.3), b1: stagetest.Randn(r, F, 0.3), w2: stagetest.Randn(r, H*F, 0.3), b2: stagetest.Randn(r, H, 0.3)}
	x := stagetest.Randn(r, n*D, 1)
	hS, uS := make([]float32, n*F), make([]float32, n*H)
	netForwardSgemm(nt, x, D, hS, uS, n, H, F)
	for rep := 0; rep < 2; rep++ {
		hP, uP := make([]float32, n*F), make([]float32, n*H)
		if !netForwardPacked(nt, x, D, hP, uP, n, H, F) || nt.p1 == nil {
			t.Fatal("the packed kernel refused")
		}
		for _, c := range []struct {
			name string
			a, b []float32
		}{{"h", hP, hS}, {"u", uP, uS}} {
			for i := range c.a {
				if d := math.Abs(float64(c.a[i] - c.b[i])); d > 1e-5*math.Max(1, math.Abs(float64(c.b[i]))) {
					t.Fatalf("rep %d: %s[%d] = %v packed, %v sgemm", rep, c.name, i, c.a[i], c.b[i])
				}
			}
		}
	}
}
