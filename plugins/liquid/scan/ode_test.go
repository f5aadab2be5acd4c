package scan

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// odeReference integrates dh/dt = f⊙A − h⊙(1/τ + f), f = σ(W_x·x + W_h·h + b),
// over each token's Δ in float64 with n classic RK4 steps (n large: the exact
// flow for the tests' purposes) or n Euler steps (euler = true).
func odeReference(p tensor.Map, e, ts, h0 []float32, B, S, H int, n int, euler bool) []float64 {
	f64 := func(name string) []float64 {
		out := make([]float64, len(p[name].Data))
		for i, v := range p[name].Data {
			out[i] = float64(v)
		}
		return out
	}
	wx, bx, wh, tr, A := f64("input.weight"), f64("input.bias"), f64("recurrent.weight"), f64("tau_raw"), f64("A")
	y := make([]float64, B*S*H)
	F := func(ux, h []float64) []float64 {
		out := make([]float64, H)
		for i := range H {
			u := ux[i]
			for j := range H {
				u += wh[i*H+j] * h[j]
			}
			f := 1 / (1 + math.Exp(-u))
			k := 1 / (math.Log1p(math.Exp(tr[i])) + TauMin)
			out[i] = f*A[i] - h[i]*(k+f)
		}
		return out
	}
	axpy := func(h []float64, a float64, k []float64) []float64 {
		out := make([]float64, H)
		for i := range out {
			out[i] = h[i] + a*k[i]
		}
		return out
	}
	for b := 0; b < B; b++ {
		h := make([]float64, H)
		for i := range h {
			h[i] = float64(h0[b*H+i])
		}
		prev := 0.0
		for t := 0; t < S; t++ {
			cur := float64(ts[b*S+t])
			dt := 64*(cur-prev) + 0.05
			prev = cur
			ux := make([]float64, H)
			for i := range H {
				ux[i] = bx[i]
				for j := range H {
					ux[i] += wx[i*H+j] * float64(e[(b*S+t)*H+j])
				}
			}
			d := dt / float64(n)
			for range n {
				if euler {
					h = axpy(h, d, F(ux, h))
					continue
				}
				k1 := F(ux, h)
				k2 := F(ux, axpy(h, d/2, k1))
				k3 := F(ux, axpy(h, d/2, k2))
				k4 := F(ux, axpy(h, d, k3))
				for i := range h {
					h[i] += d / 6 * (k1[i] + 2*k2[i] + 2*k3[i] + k4[i])
				}
			}
			copy(y[(b*S+t)*H:], h)
		}
	}
	return y
}

func odeInputs(r *rand.Rand, B, S, H int) tensor.Map {
	ts := testTimestamps(r, B, S)
	for i := range ts {
		ts[i] *= 0.25 // steps up to about Δ = 0.05 + 16/S: the methods differ visibly, explicit ones stay stable
	}
	return tensor.Map{
		"e":          tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H),
		"timestamps": tensor.From(ts, B, S),
		"h":          tensor.From(stagetest.Randn(r, B*H, 0.5), B, H),
	}
}

func forwardY(t *testing.T, cfg stage.Config, p, in tensor.Map) *stage.ForwardResult {
	t.Helper()
	res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestODEMethods checks every method against the flow of the LTC ODE: Euler
// exactly (float64 Euler with the same steps), the others against a fine RK4
// within their accuracy; and that the methods do change the dynamics.
func TestODEMethods(t *testing.T) {
	const B, S, H = 2, 12, 5
	r := rand.New(rand.NewPCG(21, 22))
	p := testParams(r, H)
	in := odeInputs(r, B, S, H)
	e, ts, h0 := in["e"].Data, in["timestamps"].Data, in["h"].Data
	exact := odeReference(p, e, ts, h0, B, S, H, 400, false)
	maxDiff := func(got []float32, want []float64) float64 {
		var m float64
		for i, v := range got {
			m = max(m, math.Abs(float64(v)-want[i]))
		}
		return m
	}
	for _, tc := range []struct {
		method, unfolds string
		tol             float64
	}{
		{"midpoint", "32", 1e-3},
		{"heun", "32", 1e-3},
		{"rk4", "8", 1e-4},
		{"bosh3", "1", 1e-3},
		{"dopri5", "1", 1e-4},
	} {
		res := forwardY(t, testConfig(H, "method", tc.method, "ode_unfolds", tc.unfolds, "max_step", "0", "rtol", "1e-6", "atol", "1e-6"), p, in)
		if d := maxDiff(res.Outputs["y"].Data, exact); d > tc.tol {
			t.Errorf("%s × %s: max |y − exact| = %.3g, want ≤ %g", tc.method, tc.unfolds, d, tc.tol)
		}
		if res.Stats["nfe"] <= 0 {
			t.Errorf("%s: stats %v", tc.method, res.Stats)
		}
	}
	for _, n := range []int{1, 3} {
		res := forwardY(t, testConfig(H, "method", "euler", "ode_unfolds", []string{"", "1", "", "3"}[n], "max_step", "0"), p, in)
		closeTo(t, "euler", res.Outputs["y"].Data, odeReference(p, e, ts, h0, B, S, H, n, true), 2e-5)
		if d := maxDiff(res.Outputs["y"].Data, exact); d < 1e-2 {
			t.Errorf("euler × %d is within %.3g of the exact flow: the test's steps are too small to tell methods apart", n, d)
		}
	}
	few := forwardY(t, testConfig(H, "method", "euler", "max_step", "0"), p, in)
	many := forwardY(t, testConfig(H, "method", "euler", "max_step", "0.05"), p, in)
	if few.Stats["nfe"] != S || many.Stats["nfe"] <= 2*S {
		t.Errorf("euler: nfe %v without max_step (want %d), %v with max_step 0.05 (want more)", few.Stats["nfe"], S, many.Stats["nfe"])
	}
	fused := forwardY(t, testConfig(H), p, in)
	if d := maxDiff(fused.Outputs["y"].Data, exact); d < 1e-2 {
		t.Errorf("the fused step is within %.3g of the exact flow", d)
	}
	if fused.Stats != nil {
		t.Errorf("fused mode reports stats %v", fused.Stats)
	}
}

// TestODEDefaultIsFused: method "fused" and no method give the scan exactly.
func TestODEDefaultIsFused(t *testing.T) {
	const B, S, H = 2, 9, 6
	r := rand.New(rand.NewPCG(23, 24))
	p := testParams(r, H)
	in := odeInputs(r, B, S, H)
	a := forwardY(t, testConfig(H), p, in)
	b := forwardY(t, testConfig(H, "method", "fused", "ode_unfolds", "6", "rtol", "1e-5"), p, in)
	if !slices.Equal(a.Outputs["y"].Data, b.Outputs["y"].Data) {
		t.Error("method fused differs from the default")
	}
}

// TestODEChunkedEqualsWhole: every token is its own solve, so chunking changes
// nothing, also for the adaptive methods.
func TestODEChunkedEqualsWhole(t *testing.T) {
	const B, S, H = 2, 17, 4
	for _, m := range []string{"rk4", "dopri5"} {
		t.Run(m, func(t *testing.T) {
			r := rand.New(rand.NewPCG(25, 26))
			p := testParams(r, H)
			in := odeInputs(r, B, S, H)
			cfg := testConfig(H, "method", m, "ode_unfolds", "2")
			whole := forwardY(t, cfg, p, in)
			var state tensor.Map
			s0 := 0
			for _, sc := range []int{5, 1, 11} {
				ec, tc := make([]float32, B*sc*H), make([]float32, B*sc)
				for b := 0; b < B; b++ {
					copy(ec[b*sc*H:], in["e"].Data[(b*S+s0)*H:(b*S+s0+sc)*H])
					copy(tc[b*sc:], in["timestamps"].Data[b*S+s0:b*S+s0+sc])
				}
				res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, State: state,
					Inputs: tensor.Map{"e": tensor.From(ec, B, sc, H), "timestamps": tensor.From(tc, B, sc), "h": in["h"]}})
				if err != nil {
					t.Fatal(err)
				}
				state = res.State
				for b := 0; b < B; b++ {
					for i, v := range res.Outputs["y"].Data[b*sc*H : (b+1)*sc*H] {
						if w := whole.Outputs["y"].Data[(b*S+s0)*H+i]; math.Abs(float64(v-w)) > 1e-6 {
							t.Fatalf("row %d token %d: chunked %v, whole %v", b, s0+i/H, v, w)
						}
					}
				}
				s0 += sc
			}
		})
	}
}

// TestODEGradients checks Backward in ODE mode against finite differences.
func TestODEGradients(t *testing.T) {
	const B, S, H = 2, 5, 4
	for _, tc := range []struct {
		name    string
		opts    []string
		carried bool
	}{
		{"euler x3", []string{"method", "euler", "ode_unfolds", "3"}, false},
		{"midpoint", []string{"method", "midpoint"}, true},
		{"rk4 x2", []string{"method", "rk4", "ode_unfolds", "2"}, false},
		// Adaptive steps depend on the inputs; tight tolerances keep the step
		// sequence of the perturbed runs close to the differentiated one.
		{"dopri5", []string{"method", "dopri5", "rtol", "1e-6", "atol", "1e-6"}, true},
		{"euler max_step", []string{"method", "euler", "max_step", "0.1"}, false},
		{"constant", []string{"method", "rk4", "dt_mode", "constant", "dt_const", "0.8"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(27, 28))
			p := testParams(r, H)
			cfg := testConfig(H, tc.opts...)
			in := odeInputs(r, B, S, H)
			var state tensor.Map
			initial := in["h"]
			if tc.carried {
				state = tensor.Map{"h": tensor.From(stagetest.Randn(r, B*H, 0.5), B, H), "last_ts": tensor.New(B)}
				initial = state["h"]
			}
			ry, rh := stagetest.Randn(r, B*S*H, 1), stagetest.Randn(r, B*H, 1)
			s := New()
			loss := func() float64 {
				res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: state})
				if err != nil {
					t.Fatal(err)
				}
				var l float64
				for i, v := range res.Outputs["y"].Data {
					l += float64(v) * float64(ry[i])
				}
				for i, v := range res.Outputs["h"].Data {
					l += float64(v) * float64(rh[i])
				}
				return l
			}
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: state, NeedGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			g, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": tensor.From(ry, B, S, H), "h": tensor.From(rh, B, H)})
			if err != nil {
				t.Fatal(err)
			}
			if s.Live() != 0 {
				t.Errorf("%d handles left", s.Live())
			}
			numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 1e-3, 1e-2)
			numtest.CheckGrad(t, "initial h", initial.Data, g.InputGrads["h"].Data, loss, 1e-3, 1e-3, 1e-2)
			for _, name := range p.Names() {
				numtest.CheckGrad(t, name, p[name].Data, g.ParamGrads[name].Data, loss, 1e-3, 1e-3, 1e-2)
			}
		})
	}
}

func TestODEOptions(t *testing.T) {
	const H = 4
	for _, tc := range []struct {
		opts []string
		want string
	}{
		{[]string{"method", "leapfrog"}, "method"},
		{[]string{"method", "rk4", "ode_unfolds", "0"}, "ode_unfolds"},
		{[]string{"ode_unfolds", "x"}, "ode_unfolds"},
		{[]string{"method", "dopri5", "rtol", "-1"}, "rtol"},
	} {
		_, err := New().Describe(context.Background(), testConfig(H, tc.opts...))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "scan: ") {
			t.Errorf("%v: error %v, want one naming %s", tc.opts, err, tc.want)
		}
	}
	d, err := New().Describe(context.Background(), testConfig(H))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, o := range d.Options {
		found[o.Name] = o.Default
		if o.Name == "method" && (!slices.Contains(o.Choices, "fused") || !slices.Contains(o.Choices, "dopri5")) {
			t.Errorf("method choices %v", o.Choices)
		}
	}
	if found["method"] != "fused" || found["ode_unfolds"] != "1" || found["rtol"] == "" || found["atol"] == "" {
		t.Errorf("options %v", found)
	}
}
