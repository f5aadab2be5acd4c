package coupling

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

type tcase struct {
	L, K         int
	share, exact bool
}

func (c tcase) String() string {
	return fmt.Sprintf("K=%d/L=%d/share=%v/exact=%v", c.K, c.L, c.share, c.exact)
}

// D=8 (H=4), F=5: L=4 takes the seed's extra residual, the others do not.
var cases = []tcase{
	{L: 4, K: 0, share: true}, {L: 3, K: 0, share: false, exact: true},
	{L: 3, K: 1, share: true}, {L: 4, K: 1, share: false, exact: true},
	{L: 4, K: 3, share: true}, {L: 4, K: 3, share: true, exact: true},
	{L: 5, K: 3, share: false}, {L: 8, K: 3, share: false, exact: true},
	{L: 2, K: 4, share: true, exact: true},
}

const tD, tF, tB, tS = 8, 5, 2, 3

func TestDescribe(t *testing.T) {
	desc, err := New().Describe(context.Background(), testConfig(16, 4, 12, 4, true, false))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Kind != "flows" || desc.Name != "coupling" || desc.Version != "1.0.0" {
		t.Errorf("got %s/%s/%s", desc.Kind, desc.Name, desc.Version)
	}
	if len(desc.Params) != 3+3*4+8 {
		t.Errorf("%d params", len(desc.Params))
	}
	for _, p := range desc.Params {
		if p.Name == "flows.0.scale_net.0.weight" {
			if fmt.Sprint(p.Shape, p.Aliases, p.FanIn) != "[12 8] [flows.1.scale_net.0.weight flows.2.scale_net.0.weight flows.3.scale_net.0.weight] 8" {
				t.Errorf("shared net spec %+v", p)
			}
		}
	}
}

func TestForwardMatchesFloat64Reference(t *testing.T) {
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(c.K*10+c.L)))
			cfg := testConfig(tD, c.L, tF, c.K, c.share, c.exact)
			params := randParams(t, cfg, rng)
			x := tensor.From(stagetest.Randn(rng, tB*tS*tD, 1), tB, tS, tD)
			res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}})
			if err != nil {
				t.Fatal(err)
			}
			z, ldj := res.Outputs["z"], res.Outputs["ldj"]
			if fmt.Sprint(z.Shape, ldj.Shape) != fmt.Sprintf("[%d %d %d] [%d %d]", tB, tS, c.L, tB, tS) {
				t.Fatalf("shapes %v %v", z.Shape, ldj.Shape)
			}
			r := newRef(t, cfg, params)
			for row := 0; row < tB*tS; row++ {
				wz, wl, _, _ := r.row(row64(x, row, tD))
				for j, v := range wz {
					if !near(float64(z.Data[row*c.L+j]), v, 1e-5, 1e-5) {
						t.Errorf("z[%d,%d] = %g, want %g", row, j, z.Data[row*c.L+j], v)
					}
				}
				if !near(float64(ldj.Data[row]), wl, 1e-5, 1e-5) {
					t.Errorf("ldj[%d] = %g, want %g", row, ldj.Data[row], wl)
				}
			}
		})
	}
}

func TestBackwardFiniteDifferences(t *testing.T) {
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(c.K*10+c.L)))
			cfg := testConfig(tD, c.L, tF, c.K, c.share, c.exact)
			params := randParams(t, cfg, rng)
			x := tensor.From(stagetest.Randn(rng, tB*tS*tD, 1), tB, tS, tD)
			wz := tensor.From(stagetest.Randn(rng, tB*tS*c.L, 1), tB, tS, c.L)
			wl := tensor.From(stagetest.Randn(rng, tB*tS, 1), tB, tS)
			s := New()
			ctx := context.Background()
			res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}, NeedGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			bw, err := s.Backward(ctx, res.Handle, tensor.Map{"z": wz.Clone(), "ldj": wl.Clone()})
			if err != nil {
				t.Fatal(err)
			}
			// The stage's own float32 loss checks the whole path loosely; the float64
			// reference (equal to the stage within 1e-5, see the forward test) checks
			// it tightly, with a step small enough to stay clear of ReLU kinks.
			stageLoss := func() float64 {
				out, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}})
				if err != nil {
					t.Fatal(err)
				}
				var l float64
				for i, v := range out.Outputs["z"].Data {
					l += float64(v) * float64(wz.Data[i])
				}
				for i, v := range out.Outputs["ldj"].Data {
					l += float64(v) * float64(wl.Data[i])
				}
				return l
			}
			refLoss := func() float64 {
				r := newRef(t, cfg, params)
				var l float64
				for row := 0; row < tB*tS; row++ {
					z, ldj, _, _ := r.row(row64(x, row, tD))
					for j, v := range z {
						l += v * float64(wz.Data[row*c.L+j])
					}
					l += ldj * float64(wl.Data[row])
				}
				return l
			}
			check := func(name string, v, g []float32) {
				numtest.CheckGrad(t, name+" (float32 stage)", v, g, stageLoss, 3e-4, 2e-3, 1e-2)
				numtest.CheckGrad(t, name+" (float64 reference)", v, g, refLoss, 1e-4, 2e-5, 2e-3)
			}
			check("x", x.Data, bw.InputGrads["x"].Data)
			for _, name := range params.Names() {
				check(name, params[name].Data, bw.ParamGrads[name].Data)
			}
		})
	}
}

func TestBackwardAbsentGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	cfg := testConfig(tD, 4, tF, 2, true, false)
	params := randParams(t, cfg, rng)
	x := tensor.From(stagetest.Randn(rng, tB*tS*tD, 1), tB, tS, tD)
	s := New()
	ctx := context.Background()
	run := func(grads tensor.Map) *stage.BackwardResult {
		res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}, NeedGrad: true})
		if err != nil {
			t.Fatal(err)
		}
		bw, err := s.Backward(ctx, res.Handle, grads)
		if err != nil {
			t.Fatal(err)
		}
		return bw
	}
	none := run(nil)
	for name, g := range none.ParamGrads {
		for _, v := range g.Data {
			if v != 0 {
				t.Fatalf("no output gradient, but %s has gradient %g", name, v)
			}
		}
	}
	// z only plus ldj only equals both together.
	dz, dl := tensor.From(stagetest.Randn(rng, tB*tS*4, 1), tB, tS, 4), tensor.From(stagetest.Randn(rng, tB*tS, 1), tB, tS)
	a, b, both := run(tensor.Map{"z": dz}), run(tensor.Map{"ldj": dl}), run(tensor.Map{"z": dz, "ldj": dl})
	for name, g := range both.ParamGrads {
		for i, v := range g.Data {
			if w := a.ParamGrads[name].Data[i] + b.ParamGrads[name].Data[i]; !near(float64(v), float64(w), 1e-5, 1e-4) {
				t.Fatalf("%s[%d]: %g together, %g apart", name, i, v, w)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	s := New()
	good := testConfig(tD, 4, tF, 2, true, false)
	rng := rand.New(rand.NewPCG(5, 5))
	params := randParams(t, good, rng)
	x := tensor.From(stagetest.Randn(rng, tB*tS*tD, 1), tB, tS, tD)
	cfgWith := func(f func(c stage.Config)) stage.Config {
		c := testConfig(tD, 4, tF, 2, true, false)
		f(c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  stage.Config
		want string
	}{
		{"odd D", cfgWith(func(c stage.Config) { c.Dims["embedding_dim"] = 7 }), "embedding_dim"},
		{"no D", cfgWith(func(c stage.Config) { delete(c.Dims, "embedding_dim") }), "embedding_dim"},
		{"L > D", cfgWith(func(c stage.Config) { c.Dims["latent_dim"] = 9 }), "latent_dim"},
		{"L = 0", cfgWith(func(c stage.Config) { c.Dims["latent_dim"] = 0 }), "latent_dim"},
		{"F = 0", cfgWith(func(c stage.Config) { c.Dims["hidden_dim"] = 0 }), "hidden_dim"},
		{"K < 0", cfgWith(func(c stage.Config) { c.Dims["num_flows"] = -1 }), "num_flows"},
		{"option", cfgWith(func(c stage.Config) { c.Options[OptExactLogdet] = "maybe" }), OptExactLogdet},
	} {
		if _, err := s.Describe(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Describe %s: %v", tc.name, err)
		}
		if _, err := s.Forward(ctx, tc.cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": x}}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Forward %s: %v", tc.name, err)
		}
	}
	if _, _, err := Transform(good, params, tensor.New(3, tD+1)); err == nil {
		t.Error("Transform accepted a bad width")
	}
	if _, err := Inverse(good, params, tensor.New(3, tD-2)); err == nil {
		t.Error("Inverse accepted a bad width")
	}
}

func TestEmptyBatch(t *testing.T) {
	cfg := testConfig(tD, 4, tF, 2, true, true)
	params := randParams(t, cfg, rand.New(rand.NewPCG(6, 6)))
	s := New()
	ctx := context.Background()
	res, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: tensor.Map{"x": tensor.New(0, 5, tD)}, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(ctx, res.Handle, tensor.Map{"z": tensor.New(0, 5, 4)}); err != nil {
		t.Fatal(err)
	}
}

func TestFastMath(t *testing.T) {
	for x := -30.0; x <= 30; x += 1e-3 {
		f := float32(x)
		if got, want := float64(tanh32(f)), math.Tanh(float64(f)); !near(got, want, 1e-30, 3e-7) {
			t.Fatalf("tanh32(%g) = %g, want %g", f, got, want)
		}
		if _, got := expm1(f); !near(float64(got), math.Expm1(float64(f)), 1e-30, 3e-7) {
			t.Fatalf("expm1(%g) = %g, want %g", f, got, math.Expm1(float64(f)))
		}
	}
	for _, f := range []float32{1e-30, -1e-30, 0, 88, -87, 100, -100} {
		if got, want := float64(tanh32(f)), math.Tanh(float64(f)); !near(got, want, 0, 3e-7) {
			t.Errorf("tanh32(%g) = %g, want %g", f, got, want)
		}
	}
	nan := float32(math.NaN())
	if _, e := expm1(nan); e == e || tanh32(nan) == tanh32(nan) {
		t.Error("NaN not propagated")
	}
}
