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
