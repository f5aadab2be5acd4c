package adaptive

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func randn(r *rand.Rand, n int, mean, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(mean + r.NormFloat64()*std)
	}
	return out
}

func testConfig(H int, opts ...string) stage.Config {
	c := stage.Config{Dims: map[string]int{"hidden_size": H}, Options: map[string]string{}}
	for i := 0; i+1 < len(opts); i += 2 {
		c.Options[opts[i]] = opts[i+1]
	}
	return c
}

// testParams are the seed's initial values moved by noise, so every path
// matters (tau and the LayerNorm weight stay near one, tau positive).
func testParams(t testing.TB, r *rand.Rand, H int) tensor.Map {
	t.Helper()
	d, err := New().Describe(context.Background(), testConfig(H))
	if err != nil {
		t.Fatal(err)
	}
	p := tensor.Map{}
	for _, ps := range d.Params {
		mean, std := 0.0, 0.4
		switch ps.Init {
		case "ones":
			mean, std = 1, 0.2
		case "linear_weight", "linear_bias":
			std = 1 / math.Sqrt(float64(H))
		}
		p[ps.Name] = tensor.From(randn(r, tensor.Numel(ps.Shape), mean, std), ps.Shape...)
	}
	return p
}

func testTimestamps(r *rand.Rand, B, S int, scale float32) []float32 {
	ts := make([]float32, B*S)
	for b := 0; b < B; b++ {
		var acc float32
		for t := 0; t < S; t++ {
			if r.IntN(3) == 0 {
				acc += scale * r.Float32() / float32(S)
			}
			ts[b*S+t] = acc
		}
	}
	return ts
}

// reference integrates each token's Δ with n explicit Euler steps in float64,
// straight from the formulas of doc.go.
func reference(p tensor.Map, e, ts, h0 []float32, B, S, H, n int) []float64 {
	f := func(name string) []float64 {
		out := make([]float64, len(p[name].Data))
		for i, v := range p[name].Data {
			out[i] = float64(v)
		}
		return out
	}
	wRec, bias, tau, decay := f("neuron.base_params.W_rec"), f("neuron.base_params.bias"), f("neuron.base_params.tau"), f("neuron.base_params.decay")
	lnW, lnB := f("neuron.base_params.layer_norm.weight"), f("neuron.base_params.layer_norm.bias")
	w0, b0, w3, b3 := f("neuron.context_encoder.0.weight"), f("neuron.context_encoder.0.bias"), f("neuron.context_encoder.3.weight"), f("neuron.context_encoder.3.bias")
	wm, bm := f("neuron.param_modulator.weight"), f("neuron.param_modulator.bias")
	sg := 1 / (1 + math.Exp(-float64(p["stability_gate"].Data[0])))
	lin := func(w, b, x []float64) []float64 {
		out := make([]float64, H)
		for i := range out {
			out[i] = b[i]
			for j := range H {
				out[i] += w[i*H+j] * x[j]
			}
		}
		return out
	}
	sig := func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
	F := func(h, mc []float64) []float64 {
		r := lin(w0, b0, h)
		for i, v := range r {
			r[i] = max(v, 0)
		}
		a := lin(wm, bm, lin(w3, b3, r))
		u := make([]float64, H)
		var mean, vr float64
		for i := range u {
			u[i] = (-decay[i]*h[i] + (1+a[i])*mc[i] + bias[i]) / (tau[i] * sig(a[i]))
			mean += u[i] / float64(H)
		}
		for _, v := range u {
			vr += (v - mean) * (v - mean) / float64(H)
		}
		out := make([]float64, H)
		for i, v := range u {
			out[i] = sg * ((v-mean)/math.Sqrt(vr+1e-5)*lnW[i] + lnB[i])
		}
		return out
	}
	y := make([]float64, B*S*H)
	zero := make([]float64, H)
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
			x := make([]float64, H)
			for i := range x {
				x[i] = float64(e[(b*S+t)*H+i])
			}
			mc := lin(wRec, zero, x)
			for range n {
				k := F(h, mc)
				for i := range h {
					h[i] += dt / float64(n) * k[i]
				}
			}
			copy(y[(b*S+t)*H:], h)
		}
	}
	return y
}

func inputs(r *rand.Rand, B, S, H int, tsScale float32) tensor.Map {
	return tensor.Map{
		"e":          tensor.From(randn(r, B*S*H, 0, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S, tsScale), B, S),
		"h":          tensor.From(randn(r, B*H, 0, 0.5), B, H),
	}
}

func TestForwardMatchesReference(t *testing.T) {
	for _, tc := range []struct{ B, S, H, n int }{{1, 7, 5, 1}, {3, 6, 4, 3}, {2, 0, 4, 1}} {
		r := rand.New(rand.NewPCG(1, uint64(tc.B)))
		p := testParams(t, r, tc.H)
		in := inputs(r, tc.B, tc.S, tc.H, 1)
		cfg := testConfig(tc.H, OptUnfolds, []string{"", "1", "", "3"}[tc.n], OptMaxStep, "0")
		res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in})
		if err != nil {
			t.Fatal(err)
		}
		want := reference(p, in["e"].Data, in["timestamps"].Data, in["h"].Data, tc.B, tc.S, tc.H, tc.n)
		for i, v := range res.Outputs["y"].Data {
			if math.Abs(float64(v)-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Fatalf("%+v: y[%d] = %v, want %v", tc, i, v, want[i])
			}
		}
		if tc.S > 0 && !slices.Equal(res.Outputs["h"].Data, res.Outputs["y"].Data[(tc.S-1)*tc.H:tc.S*tc.H]) && tc.B == 1 {
			t.Error("h is not the last y")
		}
	}
}

// TestSolverChangesDynamics: the ODE axis reaches the recurrent state.
func TestSolverChangesDynamics(t *testing.T) {
	const B, S, H = 2, 8, 4
	r := rand.New(rand.NewPCG(3, 4))
	p := testParams(t, r, H)
	in := inputs(r, B, S, H, 2)
	var outs [][]float32
	for _, m := range []string{"euler", "midpoint", "rk4", "dopri5"} {
		res, err := New().Forward(context.Background(), testConfig(H, "method", m, OptMaxStep, "0"), &stage.ForwardRequest{Params: p, Inputs: in})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if slices.Equal(o, res.Outputs["y"].Data) {
				t.Errorf("%s gives the output of an earlier method", m)
			}
		}
		outs = append(outs, res.Outputs["y"].Data)
	}
}

func TestChunkedEqualsWhole(t *testing.T) {
	const B, S, H = 2, 19, 4
	for _, m := range []string{"euler", "rk4", "dopri5"} {
		t.Run(m, func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			p := testParams(t, r, H)
			in := inputs(r, B, S, H, 1)
			cfg := testConfig(H, "method", m)
			s := New()
			whole, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := s.Describe(context.Background(), cfg)
			var state tensor.Map
			var last *stage.ForwardResult
			s0 := 0
			for _, sc := range []int{7, 1, 11} {
				ec, tc := make([]float32, B*sc*H), make([]float32, B*sc)
				for b := 0; b < B; b++ {
					copy(ec[b*sc*H:], in["e"].Data[(b*S+s0)*H:(b*S+s0+sc)*H])
					copy(tc[b*sc:], in["timestamps"].Data[b*S+s0:b*S+s0+sc])
				}
				hin := in["h"]
				if state != nil {
					hin = tensor.From(randn(r, B*H, 0, 1), B, H)
				}
				last, err = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, State: state,
					Inputs: tensor.Map{"e": tensor.From(ec, B, sc, H), "timestamps": tensor.From(tc, B, sc), "h": hin}})
				if err != nil {
					t.Fatal(err)
				}
				state = tensor.Map{}
				for _, st := range d.State {
					state[st.Name] = last.State[st.Name]
				}
				for b := 0; b < B; b++ {
					for i, v := range last.Outputs["y"].Data[b*sc*H : (b+1)*sc*H] {
						if w := whole.Outputs["y"].Data[(b*S+s0)*H+i]; math.Abs(float64(v-w)) > 1e-6 {
							t.Fatalf("row %d token %d: chunked %v, whole %v", b, s0+i/H, v, w)
						}
					}
				}
				s0 += sc
			}
			if !slices.Equal(last.Outputs["h"].Data, whole.Outputs["h"].Data) {
				t.Error("final h differs")
			}
		})
	}
}

func TestGradients(t *testing.T) {
	const B, S, H = 2, 4, 4
	for _, tc := range []struct {
		name       string
		opts       []string
		carried    bool
		atol, rtol float64
	}{
		{"euler", nil, false, 2e-3, 2e-2},
		{"euler carried", nil, true, 2e-3, 2e-2},
		{"rk4 x2", []string{"method", "rk4", OptUnfolds, "2"}, false, 2e-3, 2e-2},
		{"midpoint constant", []string{"method", "midpoint", OptDtMode, ModeConstant, OptDtConst, "0.3"}, true, 2e-3, 2e-2},
		// Backward holds the adaptive step sizes constant (as torchdiffeq's
		// reference does); finite differences also see them move with the
		// inputs, by about the tolerance, which float32 round-off amplifies.
		{"dopri5", []string{"method", "dopri5", "rtol", "1e-5", "atol", "1e-5"}, false, 5e-3, 5e-2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			p := testParams(t, r, H)
			cfg := testConfig(H, tc.opts...)
			in := inputs(r, B, S, H, 0.1) // Δ ≤ about 1.7: long horizons make the finite differences nonlinear
			var state tensor.Map
			initial := in["h"]
			if tc.carried {
				state = tensor.Map{"h": tensor.From(randn(r, B*H, 0, 0.5), B, H), "last_ts": tensor.New(B)}
				initial = state["h"]
			}
			ry, rh := randn(r, B*S*H, 0, 1), randn(r, B*H, 0, 1)
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
			numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, tc.atol, tc.rtol)
			numtest.CheckGrad(t, "initial h", initial.Data, g.InputGrads["h"].Data, loss, 1e-3, tc.atol, tc.rtol)
			if len(g.ParamGrads) != 13 {
				t.Errorf("%d parameter gradients, want 13", len(g.ParamGrads))
			}
			for _, name := range p.Names() {
				numtest.CheckGrad(t, name, p[name].Data, g.ParamGrads[name].Data, loss, 1e-3, tc.atol, tc.rtol)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background(), testConfig(16))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "liquid" || d.Name != "adaptive" || !slices.Equal(d.Inputs, []string{"e", "timestamps", "h"}) || !slices.Equal(d.Outputs, []string{"y", "h"}) {
		t.Errorf("description %+v", d)
	}
	if len(d.Params) != 13 || d.Params[0].Name != "neuron.base_params.W_rec" || d.Params[0].Init != "normal:0.1" {
		t.Errorf("params %+v", d.Params)
	}
	if len(d.State) != 2 {
		t.Errorf("state %+v", d.State)
	}
	for _, o := range d.Options {
		if o.Name == "method" && o.Default != "euler" {
			t.Errorf("method default %q", o.Default)
		}
	}
}

func TestErrors(t *testing.T) {
	const B, S, H = 2, 3, 4
	r := rand.New(rand.NewPCG(9, 10))
	p := testParams(t, r, H)
	good := tensor.Map{"e": tensor.New(B, S, H), "timestamps": tensor.New(B, S), "h": tensor.New(B, H)}
	cfg := testConfig(H)
	for _, tc := range []struct {
		name  string
		cfg   stage.Config
		in    tensor.Map
		state tensor.Map
		want  string
	}{
		{"no hidden_size", stage.Config{}, good, nil, "hidden_size"},
		{"bad method", testConfig(H, "method", "leapfrog"), good, nil, "method"},
		{"bad unfolds", testConfig(H, OptUnfolds, "0"), good, nil, OptUnfolds},
		{"bad max_step", testConfig(H, OptMaxStep, "-1"), good, nil, OptMaxStep},
		{"bad dt_mode", testConfig(H, OptDtMode, "x"), good, nil, OptDtMode},
		{"e missing", cfg, tensor.Map{"h": tensor.New(B, H)}, nil, `"e"`},
		{"timestamps back", cfg, tensor.Map{"e": tensor.New(B, S, H), "timestamps": tensor.From([]float32{0.5, 0, 0, 0, 0, 0}, B, S), "h": tensor.New(B, H)}, nil, `"timestamps"[0,1]`},
		{"state h shape", cfg, good, tensor.Map{"h": tensor.New(B, H+1), "last_ts": tensor.New(B)}, `"h"`},
		{"h missing", cfg, tensor.Map{"e": tensor.New(B, S, H), "timestamps": tensor.New(B, S)}, nil, `"h"`},
	} {
		_, err := New().Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: p, Inputs: tc.in, State: tc.state})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "adaptive: ") {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
	bad := tensor.Map{}
	for k, v := range p {
		bad[k] = v
	}
	delete(bad, "stability_gate")
	if _, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: bad, Inputs: good}); err == nil || !strings.Contains(err.Error(), "stability_gate") {
		t.Errorf("missing parameter: %v", err)
	}
	s := New()
	if _, err := s.Backward(context.Background(), 7, nil); err == nil {
		t.Error("unknown handle accepted")
	}
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"q": tensor.New(1)}); err == nil {
		t.Error("unknown gradient accepted")
	}
	res, _ = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
	s.Release(context.Background(), res.Handle)
	if s.Live() != 0 {
		t.Errorf("%d handles left", s.Live())
	}
}

// TestOverflowGuard: a very negative a makes tau⊙σ(a) underflow and u
// overflow float32 (a ≈ −90: u ≈ 1e39); the stage must still match the float64
// reference. Gradients are checked where the guard rescales u (a ≈ −50,
// u ≈ 1e22 > uScaleAbove) but finite differences in float32 still resolve them.
func TestOverflowGuard(t *testing.T) {
	const B, S, H = 2, 3, 4
	for _, bias := range []float32{-90, -50} {
		r := rand.New(rand.NewPCG(11, 12))
		p := testParams(t, r, H)
		for i := range p["neuron.param_modulator.bias"].Data {
			p["neuron.param_modulator.bias"].Data[i] = bias
		}
		in := inputs(r, B, S, H, 0.1)
		cfg := testConfig(H, OptMaxStep, "0")
		s := New()
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, NeedGrad: true})
		if err != nil {
			t.Fatalf("a ≈ %v: %v", bias, err)
		}
		want := reference(p, in["e"].Data, in["timestamps"].Data, in["h"].Data, B, S, H, 1)
		for i, v := range res.Outputs["y"].Data {
			if math.Abs(float64(v)-want[i]) > 1e-4*(1+math.Abs(want[i])) {
				t.Fatalf("a ≈ %v: y[%d] = %v, want %v", bias, i, v, want[i])
			}
		}
		ry := randn(r, B*S*H, 0, 1)
		g, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": tensor.From(ry, B, S, H)})
		if err != nil {
			t.Fatal(err)
		}
		if bias < -60 {
			continue
		}
		loss := func() float64 {
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in})
			if err != nil {
				t.Fatal(err)
			}
			var l float64
			for i, v := range res.Outputs["y"].Data {
				l += float64(v) * float64(ry[i])
			}
			return l
		}
		numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 2e-3, 2e-2)
		numtest.CheckGrad(t, "initial h", in["h"].Data, g.InputGrads["h"].Data, loss, 1e-3, 2e-3, 2e-2)
		for _, name := range []string{"neuron.base_params.tau", "neuron.base_params.decay", "neuron.base_params.W_rec"} {
			numtest.CheckGrad(t, name, p[name].Data, g.ParamGrads[name].Data, loss, 1e-3, 2e-3, 2e-2)
		}
	}
}
