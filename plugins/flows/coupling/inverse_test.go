package coupling

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

func TestInverseOfTransform(t *testing.T) {
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(c.K*10+c.L)))
			cfg := testConfig(tD, c.L, tF, c.K, c.share, c.exact)
			params := randParams(t, cfg, rng)
			emb := tensor.From(stagetest.Randn(rng, tB*tS*tD, 1), tB, tS, tD)
			pc, ec := cloneMap(params), emb.Clone()
			y, ldj, err := Transform(cfg, params, emb)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(y.Shape, emb.Shape) || !tensor.SameShape(ldj.Shape, []int{tB, tS}) {
				t.Fatalf("shapes %v %v", y.Shape, ldj.Shape)
			}
			// Transform agrees with the reference and with Forward's z.
			r := newRef(t, cfg, params)
			res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": emb}})
			if err != nil {
				t.Fatal(err)
			}
			for row := 0; row < tB*tS; row++ {
				_, _, wy, wx0 := r.row(row64(emb, row, tD))
				for j, v := range wy {
					if !near(float64(y.Data[row*tD+j]), v, 1e-5, 1e-5) {
						t.Fatalf("y[%d,%d] = %g, want %g", row, j, y.Data[row*tD+j], v)
					}
				}
				for j := 0; j < c.L; j++ {
					want := y.Data[row*tD+j]
					if c.L == tD/2 {
						want += 0.1 * float32(wx0[j])
					}
					if !near(float64(res.Outputs["z"].Data[row*c.L+j]), float64(want), 1e-6, 1e-5) {
						t.Fatalf("z[%d,%d] is not y's slice", row, j)
					}
				}
				if ldj.Data[row] != res.Outputs["ldj"].Data[row] {
					t.Fatalf("ldj[%d]: Transform %g, Forward %g", row, ldj.Data[row], res.Outputs["ldj"].Data[row])
				}
			}
			yc := y.Clone()
			back, err := Inverse(cfg, params, y)
			if err != nil {
				t.Fatal(err)
			}
			sameMap(t, "inverse", tensor.Map{"emb": ec, "y": yc}, tensor.Map{"emb": emb, "y": y})
			sameMap(t, "inverse", pc, params)
			for i, v := range back.Data {
				if !near(float64(v), float64(emb.Data[i]), 2e-5, 1e-4) {
					t.Fatalf("inverse(transform(x))[%d] = %g, want %g", i, v, emb.Data[i])
				}
			}
		})
	}
}

func TestInverseErrors(t *testing.T) {
	cfg := testConfig(tD, 4, tF, 2, true, false)
	params := randParams(t, cfg, rand.New(rand.NewPCG(8, 8)))
	// g_p = 1 with W = 0: the projection forgets its input.
	params[nameProjG].Data[0] = 1
	clear(params[nameProjW].Data)
	if _, err := InvertProjection(cfg, params, tensor.New(2, tD)); err == nil || !strings.Contains(err.Error(), "ill-conditioned") {
		t.Errorf("singular projection: %v", err)
	}
	// An infinite gate makes the slope of the second half non-finite.
	params = randParams(t, cfg, rand.New(rand.NewPCG(8, 9)))
	params["flows.0.gate"].Data[0] = float32(math.Inf(1))
	if _, err := InvertCoupling(cfg, params, tensor.New(2, tD)); err == nil || !strings.Contains(err.Error(), "not invertible") {
		t.Errorf("infinite gate: %v", err)
	}
}

// numericLogDet is log|det J| of the reference map emb → y (the stack output)
// for one row, with J by central differences in float64.
func numericLogDet(r *ref, emb []float64) float64 {
	D := r.D
	const h = 1e-6
	j := mat.NewDense(D, D, nil)
	for k := 0; k < D; k++ {
		p := append([]float64(nil), emb...)
		m := append([]float64(nil), emb...)
		p[k] += h
		m[k] -= h
		_, _, yp, _ := r.row(p)
		_, _, ym, _ := r.row(m)
		for i := 0; i < D; i++ {
			j.Set(i, k, (yp[i]-ym[i])/(2*h))
		}
	}
	var lu mat.LU
	lu.Factorize(j)
	ld, _ := lu.LogDet()
	return ld
}

// With proj_gate 0 and one (even, residual-free) coupling layer, the map emb → y
// is exactly the coupling, so its log|det J| must equal ldj.
func TestLogDetIsLogAbsDetJacobian(t *testing.T) {
	for _, tc := range []struct {
		gate         float32
		exact, equal bool
	}{
		{1, false, true},    // the seed's formula is exact for g = 1 …
		{0, false, true},    // … and g = 0 …
		{0.5, false, false}, // … but not in between,
		{0.5, true, true},   // where exact_logdet is,
		{0.9, true, true},
		{1.3, true, true}, // also for gates outside [0,1] (log|·|).
	} {
		cfg := testConfig(tD, 3, tF, 1, true, tc.exact)
		params := randParams(t, cfg, rand.New(rand.NewPCG(9, 9)))
		params[nameProjG].Data[0] = 0
		params["flows.0.gate"].Data[0] = tc.gate
		params["flows.0.scale_adapter"].Data[0] = 1.5
		emb := tensor.From(stagetest.Randn(rand.New(rand.NewPCG(10, 10)), 4*tD, 1), 4, tD)
		_, ldj, err := Transform(cfg, params, emb)
		if err != nil {
			t.Fatal(err)
		}
		r := newRef(t, cfg, params)
		for row := 0; row < 4; row++ {
			want := numericLogDet(r, row64(emb, row, tD))
			got := float64(ldj.Data[row])
			if eq := near(got, want, 1e-5, 1e-5); eq != tc.equal {
				t.Errorf("gate %g exact %v row %d: ldj %.7g, log|det J| %.7g", tc.gate, tc.exact, row, got, want)
			}
		}
	}
}
