package realnvp

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func randn(r *rand.Rand, n int, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * std)
	}
	return out
}

func testConfig(D, L, F, K int, opts ...string) stage.Config {
	c := stage.Config{Dims: map[string]int{"embedding_dim": D, "latent_dim": L, "hidden_dim": F, "num_flows": K}, Options: map[string]string{}}
	for i := 0; i+1 < len(opts); i += 2 {
		c.Options[opts[i]] = opts[i+1]
	}
	return c
}

// testParams draws every parameter away from its (identity) initialisation.
func testParams(t testing.TB, r *rand.Rand, cfg stage.Config, std float64) tensor.Map {
	t.Helper()
	d, err := New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := tensor.Map{}
	for _, ps := range d.Params {
		p[ps.Name] = tensor.From(randn(r, tensor.Numel(ps.Shape), std), ps.Shape...)
	}
	return p
}

func fwd(t testing.TB, s *Stage, cfg stage.Config, p tensor.Map, x *tensor.Tensor, grad bool) *stage.ForwardResult {
	t.Helper()
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: tensor.Map{"x": x}, NeedGrad: grad})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGradients(t *testing.T) {
	const B, S, D, F = 2, 3, 6, 5
	for _, tc := range []struct {
		name string
		K, L int
		opts []string
	}{
		{"projection K3", 3, 4, nil},
		{"first K2", 2, 2, []string{OptZFrom, ZFirst}},
		{"first K1 L=D", 1, 6, []string{OptZFrom, ZFirst, OptScaleClamp, "0.7"}},
		{"K0", 0, 3, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The seed keeps every ReLU pre-activation out of the finite
			// differences' reach of its kink (other seeds can put one within it).
			r := rand.New(rand.NewPCG(5, 9))
			cfg := testConfig(D, tc.L, F, tc.K, tc.opts...)
			p := testParams(t, r, cfg, 0.6)
			x := tensor.From(randn(r, B*S*D, 1), B, S, D)
			rz, rl := randn(r, B*S*tc.L, 1), randn(r, B*S, 1)
			s := New()
			loss := func() float64 {
				res := fwd(t, s, cfg, p, x, false)
				var l float64
				for i, v := range res.Outputs["z"].Data {
					l += float64(v) * float64(rz[i])
				}
				for i, v := range res.Outputs["ldj"].Data {
					l += float64(v) * float64(rl[i])
				}
				return l
			}
			res := fwd(t, s, cfg, p, x, true)
			g, err := s.Backward(context.Background(), res.Handle, tensor.Map{"z": tensor.From(rz, B, S, tc.L), "ldj": tensor.From(rl, B, S)})
			if err != nil {
				t.Fatal(err)
			}
			if s.Live() != 0 {
				t.Errorf("%d handles left", s.Live())
			}
			numtest.CheckGrad(t, "x", x.Data, g.InputGrads["x"].Data, loss, 1e-3, 1e-3, 1e-2)
			if len(g.ParamGrads) != len(p) {
				t.Errorf("%d parameter gradients for %d parameters", len(g.ParamGrads), len(p))
			}
			for _, name := range p.Names() {
				gt := g.ParamGrads[name]
				if gt == nil || !slices.Equal(gt.Shape, p[name].Shape) {
					t.Fatalf("gradient of %s missing or misshapen", name)
				}
				numtest.CheckGrad(t, name, p[name].Data, gt.Data, loss, 1e-3, 1e-3, 1e-2)
			}
		})
	}
}

// TestLogDet checks ldj = log|det ∂x_K/∂x| against a central-difference
// Jacobian of the whole flow (z_from first with L = D exposes x_K).
func TestLogDet(t *testing.T) {
	const D, F = 6, 7
	for _, K := range []int{1, 2, 4} {
		r := rand.New(rand.NewPCG(3, uint64(K)))
		cfg := testConfig(D, D, F, K, OptZFrom, ZFirst)
		// Moderate parameters keep x_K of order one, so the float32 differences
		// resolve the Jacobian.
		p := testParams(t, r, cfg, 0.3)
		x := randn(r, D, 1)
		res := fwd(t, New(), cfg, p, tensor.From(x, 1, 1, D), false)
		J := mat.NewDense(D, D, nil)
		const h = 1e-3 // larger steps can cross a ReLU kink
		for j := 0; j < D; j++ {
			xp, xm := slices.Clone(x), slices.Clone(x)
			xp[j] += h
			xm[j] -= h
			zp := fwd(t, New(), cfg, p, tensor.From(xp, 1, 1, D), false).Outputs["z"].Data
			zm := fwd(t, New(), cfg, p, tensor.From(xm, 1, 1, D), false).Outputs["z"].Data
			for i := 0; i < D; i++ {
				J.Set(i, j, float64(zp[i]-zm[i])/(2*h))
			}
		}
		want := math.Log(math.Abs(mat.Det(J)))
		if got := float64(res.Outputs["ldj"].Data[0]); math.Abs(got-want) > 1e-2 {
			t.Errorf("K = %d: ldj %v, log|det J| %v", K, got, want)
		}
	}
}

// TestFlowCountChangesZ is the point of the variant: with trained (non-zero)
// output layers, every added coupling changes z, with either z_from; and the
// zero initialisation starts at the identity.
func TestFlowCountChangesZ(t *testing.T) {
	const B, S, D, L, F = 2, 3, 8, 3, 5
	r := rand.New(rand.NewPCG(5, 6))
	x := tensor.From(randn(r, B*S*D, 1), B, S, D)
	for _, zf := range []string{ZProjection, ZFirst} {
		big := testParams(t, r, testConfig(D, L, F, 4, OptZFrom, zf), 0.5)
		var prev []float32
		for K := 0; K <= 4; K++ {
			cfg := testConfig(D, L, F, K, OptZFrom, zf)
			d, _ := New().Describe(context.Background(), cfg)
			p := tensor.Map{}
			for _, ps := range d.Params {
				p[ps.Name] = big[strings.Replace(ps.Name, "flows.", "flows.", 1)]
			}
			// Layer i of the K-stack takes layer i's parameters of the 4-stack.
			z := fwd(t, New(), cfg, p, x, false).Outputs["z"].Data
			if prev != nil && slices.Equal(z, prev) {
				t.Errorf("z_from %s: z with %d couplings equals z with %d", zf, K, K-1)
			}
			prev = z
		}
	}
	// Identity at initialisation: output layers zero → z and ldj as without flows.
	cfg0, cfg3 := testConfig(D, L, F, 0), testConfig(D, L, F, 3)
	p3 := testParams(t, r, cfg3, 0.5)
	for i := 0; i < 3; i++ {
		clear(p3[layerName(i, "2.weight")].Data)
		clear(p3[layerName(i, "2.bias")].Data)
	}
	p0 := tensor.Map{"out_proj.weight": p3["out_proj.weight"], "out_proj.bias": p3["out_proj.bias"]}
	a, b := fwd(t, New(), cfg0, p0, x, false), fwd(t, New(), cfg3, p3, x, false)
	if !slices.Equal(a.Outputs["z"].Data, b.Outputs["z"].Data) || slices.ContainsFunc(b.Outputs["ldj"].Data, func(v float32) bool { return v != 0 }) {
		t.Error("zero output layers are not the identity")
	}
}

// TestClamp: log-scales stay within ±scale_clamp, however large the raw ones.
func TestClamp(t *testing.T) {
	const D, F = 4, 3
	r := rand.New(rand.NewPCG(7, 8))
	cfg := testConfig(D, D, F, 1, OptZFrom, ZFirst, OptScaleClamp, "0.5")
	p := testParams(t, r, cfg, 50)
	res := fwd(t, New(), cfg, p, tensor.From(randn(r, 5*D, 3), 1, 5, D), false)
	for i, v := range res.Outputs["ldj"].Data {
		if math.Abs(float64(v)) > 0.5*float64(D/2)+1e-5 || math.IsNaN(float64(v)) {
			t.Errorf("ldj[%d] = %v beyond the clamp", i, v)
		}
	}
}

func TestInputsUnchanged(t *testing.T) {
	const B, S, D, L, F, K = 2, 3, 6, 4, 5, 3
	r := rand.New(rand.NewPCG(9, 10))
	cfg := testConfig(D, L, F, K)
	p := testParams(t, r, cfg, 0.5)
	x := tensor.From(randn(r, B*S*D, 1), B, S, D)
	og := tensor.Map{"z": tensor.From(randn(r, B*S*L, 1), B, S, L), "ldj": tensor.From(randn(r, B*S, 1), B, S)}
	before := map[string][]float32{"x": slices.Clone(x.Data), "dz": slices.Clone(og["z"].Data), "dldj": slices.Clone(og["ldj"].Data)}
	for k, v := range p {
		before[k] = slices.Clone(v.Data)
	}
	s := New()
	a := fwd(t, s, cfg, p, x, true)
	if _, err := s.Backward(context.Background(), a.Handle, og); err != nil {
		t.Fatal(err)
	}
	b := fwd(t, s, cfg, p, x, false)
	after := map[string][]float32{"x": x.Data, "dz": og["z"].Data, "dldj": og["ldj"].Data}
	for k, v := range p {
		after[k] = v.Data
	}
	for k, v := range before {
		if !slices.Equal(v, after[k]) {
			t.Errorf("%s was modified", k)
		}
	}
	if !slices.Equal(a.Outputs["z"].Data, b.Outputs["z"].Data) {
		t.Error("two forward passes differ")
	}
}

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background(), testConfig(512, 256, 128, 4))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "flows" || d.Name != "realnvp" || !slices.Equal(d.Inputs, []string{"x"}) || !slices.Equal(d.Outputs, []string{"z", "ldj"}) {
		t.Errorf("description %+v", d)
	}
	if len(d.Params) != 4*4+2 || !slices.Equal(d.Params[2].Shape, []int{512, 128}) || d.Params[2].Init != "zeros" {
		t.Errorf("params %+v", d.Params)
	}
	if len(d.State) != 0 {
		t.Errorf("state %v", d.State)
	}
}

func TestErrors(t *testing.T) {
	const D, L, F, K = 6, 4, 5, 2
	r := rand.New(rand.NewPCG(11, 12))
	cfg := testConfig(D, L, F, K)
	p := testParams(t, r, cfg, 0.5)
	x := tensor.New(2, 3, D)
	for _, tc := range []struct {
		name string
		cfg  stage.Config
		p    tensor.Map
		in   tensor.Map
		want string
	}{
		{"odd D", testConfig(5, 2, F, K), p, tensor.Map{"x": x}, "even"},
		{"L > D", testConfig(D, D+1, F, K), p, tensor.Map{"x": x}, "latent_dim"},
		{"no num_flows", stage.Config{Dims: map[string]int{"embedding_dim": D, "latent_dim": L, "hidden_dim": F}}, p, tensor.Map{"x": x}, "num_flows"},
		{"bad clamp", testConfig(D, L, F, K, OptScaleClamp, "0"), p, tensor.Map{"x": x}, OptScaleClamp},
		{"bad z_from", testConfig(D, L, F, K, OptZFrom, "last"), p, tensor.Map{"x": x}, OptZFrom},
		{"x missing", cfg, p, tensor.Map{}, `"x"`},
		{"x shape", cfg, p, tensor.Map{"x": tensor.New(2, 3, D+2)}, `"x"`},
		{"param missing", cfg, tensor.Map{}, tensor.Map{"x": x}, "flows.0.net.0.weight"},
		{"more flows than params", testConfig(D, L, F, K+1), p, tensor.Map{"x": x}, "flows.2"},
	} {
		_, err := New().Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.p, Inputs: tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "realnvp: ") {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
	s := New()
	if _, err := s.Backward(context.Background(), 42, nil); err == nil {
		t.Error("unknown handle accepted")
	}
	res := fwd(t, s, cfg, p, x, true)
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"z": tensor.New(2, 3, L+1)}); err == nil || !strings.Contains(err.Error(), `"z"`) {
		t.Errorf("bad gradient accepted: %v", err)
	}
	res = fwd(t, s, cfg, p, x, true)
	g, err := s.Backward(context.Background(), res.Handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range g.InputGrads["x"].Data {
		if v != 0 {
			t.Fatal("non-zero gradient without output gradients")
		}
	}
	if s.Live() != 0 {
		t.Errorf("%d handles left", s.Live())
	}
}

// TestChunkedEqualsWhole: the flow is per token and declares no state, so
// splitting the sequence into chunks changes nothing.
func TestChunkedEqualsWhole(t *testing.T) {
	const B, S, D, L, F, K = 2, 11, 6, 4, 5, 3
	r := rand.New(rand.NewPCG(13, 14))
	cfg := testConfig(D, L, F, K)
	p := testParams(t, r, cfg, 0.5)
	x := randn(r, B*S*D, 1)
	d, _ := New().Describe(context.Background(), cfg)
	if len(d.State) != 0 {
		t.Fatalf("declares state %v", d.State)
	}
	whole := fwd(t, New(), cfg, p, tensor.From(x, B, S, D), false)
	s0 := 0
	for _, sc := range []int{4, 1, 6} {
		xc := make([]float32, B*sc*D)
		for b := 0; b < B; b++ {
			copy(xc[b*sc*D:], x[(b*S+s0)*D:(b*S+s0+sc)*D])
		}
		res := fwd(t, New(), cfg, p, tensor.From(xc, B, sc, D), false)
		if len(res.State) != 0 {
			t.Errorf("returns state %v", res.State.Names())
		}
		near := func(a, b []float32) bool {
			for i := range a {
				if math.Abs(float64(a[i]-b[i])) > 1e-6*(1+math.Abs(float64(b[i]))) {
					return false
				}
			}
			return len(a) == len(b)
		}
		for b := 0; b < B; b++ {
			if !near(res.Outputs["z"].Data[b*sc*L:(b+1)*sc*L], whole.Outputs["z"].Data[(b*S+s0)*L:(b*S+s0+sc)*L]) ||
				!near(res.Outputs["ldj"].Data[b*sc:(b+1)*sc], whole.Outputs["ldj"].Data[b*S+s0:b*S+s0+sc]) {
				t.Errorf("row %d, tokens %d..%d differ from the whole sequence", b, s0, s0+sc)
			}
		}
		s0 += sc
	}
}
