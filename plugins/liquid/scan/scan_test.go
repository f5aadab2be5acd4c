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

// testParams are parameters moved off their initial values, so every path of
// the cell matters.
func testParams(r *rand.Rand, H int) tensor.Map {
	return tensor.Map{
		"input.weight":     tensor.From(stagetest.Randn(r, H*H, 0.6), H, H),
		"input.bias":       tensor.From(stagetest.Randn(r, H, 0.3), H),
		"recurrent.weight": tensor.From(stagetest.Randn(r, H*H, 0.6), H, H),
		"tau_raw":          tensor.From(stagetest.Randn(r, H, 0.5), H),
		"A":                tensor.From(addTo(stagetest.Randn(r, H, 0.5), 1), H),
	}
}

// addTo adds c to every element of v and returns v.
func addTo(v []float32, c float32) []float32 {
	for i := range v {
		v[i] += c
	}
	return v
}

// testTimestamps are nondecreasing in [0,1] per row, with repeats, like the
// seed's.
func testTimestamps(r *rand.Rand, B, S int) []float32 {
	ts := make([]float32, B*S)
	for b := 0; b < B; b++ {
		var acc float32
		for t := 0; t < S; t++ {
			if r.IntN(3) == 0 {
				acc += r.Float32() / float32(S)
			}
			ts[b*S+t] = acc
		}
	}
	return ts
}

func testConfig(H int, opts ...string) stage.Config {
	c := stage.Config{Dims: map[string]int{"hidden_size": H}, Options: map[string]string{}}
	for i := 0; i+1 < len(opts); i += 2 {
		c.Options[opts[i]] = opts[i+1]
	}
	return c
}

// reference is the recurrence in float64, straight from the formulas in doc.go;
// it returns y [B,S,H] and the final h [B,H].
func reference(p tensor.Map, e, ts, h0 []float32, B, S, H int, dtScale, dtMin float64) ([]float64, []float64) {
	f64 := func(name string) []float64 {
		out := make([]float64, len(p[name].Data))
		for i, v := range p[name].Data {
			out[i] = float64(v)
		}
		return out
	}
	wx, bx, wh, tr, A := f64("input.weight"), f64("input.bias"), f64("recurrent.weight"), f64("tau_raw"), f64("A")
	y := make([]float64, B*S*H)
	hT := make([]float64, B*H)
	for b := 0; b < B; b++ {
		h := make([]float64, H)
		for i := range h {
			h[i] = float64(h0[b*H+i])
		}
		prev := 0.0
		for t := 0; t < S; t++ {
			cur := float64(ts[b*S+t])
			dt := dtScale*(cur-prev) + dtMin
			prev = cur
			x := e[(b*S+t)*H:][:H]
			hn := make([]float64, H)
			for i := range H {
				u := bx[i]
				for j := range H {
					u += wx[i*H+j]*float64(x[j]) + wh[i*H+j]*h[j]
				}
				f := 1 / (1 + math.Exp(-u))
				tau := math.Log1p(math.Exp(tr[i])) + TauMin
				hn[i] = (h[i] + dt*f*A[i]) / (1 + dt*(1/tau+f))
			}
			h = hn
			copy(y[(b*S+t)*H:], h)
		}
		copy(hT[b*H:], h)
	}
	return y, hT
}

func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); !(d <= tol*(1+math.Abs(want[i]))) {
			if bad < 5 {
				t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(got))
	}
}

func TestForwardMatchesReference(t *testing.T) {
	for _, tc := range []struct{ B, S, H int }{{1, 9, 5}, {3, 7, 6}, {2, 0, 4}} {
		r := rand.New(rand.NewPCG(1, uint64(tc.B)))
		B, S, H := tc.B, tc.S, tc.H
		p := testParams(r, H)
		e, ts, h0 := stagetest.Randn(r, B*S*H, 1), testTimestamps(r, B, S), stagetest.Randn(r, B*H, 0.5)
		res, err := New().Forward(context.Background(), testConfig(H), &stage.ForwardRequest{Params: p,
			Inputs: tensor.Map{"e": tensor.From(e, B, S, H), "timestamps": tensor.From(ts, B, S), "h": tensor.From(h0, B, H)}})
		if err != nil {
			t.Fatal(err)
		}
		wy, wh := reference(p, e, ts, h0, B, S, H, 64, 0.05)
		closeTo(t, "y", res.Outputs["y"].Data, wy, 1e-5)
		closeTo(t, "h", res.Outputs["h"].Data, wh, 1e-5)
		closeTo(t, "state h", res.State["h"].Data, wh, 1e-5)
		if S > 0 {
			for b := 0; b < B; b++ {
				if got := res.State["last_ts"].Data[b]; got != ts[b*S+S-1] {
					t.Errorf("last_ts[%d] = %v, want %v", b, got, ts[b*S+S-1])
				}
			}
		}
	}
}

// TestChunkedEqualsWhole runs one sequence in three uneven chunks, carrying the
// state, and compares with a single pass.
func TestChunkedEqualsWhole(t *testing.T) {
	const B, S, H = 2, 37, 8
	for _, mode := range []string{ModeTimestamps, ModeConstant} {
		t.Run(mode, func(t *testing.T) {
			r := rand.New(rand.NewPCG(2, 3))
			p := testParams(r, H)
			e, ts, h0 := stagetest.Randn(r, B*S*H, 1), testTimestamps(r, B, S), stagetest.Randn(r, B*H, 0.5)
			cfg := testConfig(H, "dt_mode", mode)
			s := New()
			whole, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p,
				Inputs: tensor.Map{"e": tensor.From(e, B, S, H), "timestamps": tensor.From(ts, B, S), "h": tensor.From(h0, B, H)}})
			if err != nil {
				t.Fatal(err)
			}
			y := make([]float32, B*S*H)
			var state tensor.Map
			var last *stage.ForwardResult
			s0 := 0
			for _, sc := range []int{10, 3, 24} {
				ec, tc := make([]float32, B*sc*H), make([]float32, B*sc)
				for b := 0; b < B; b++ {
					copy(ec[b*sc*H:(b+1)*sc*H], e[(b*S+s0)*H:(b*S+s0+sc)*H])
					copy(tc[b*sc:(b+1)*sc], ts[b*S+s0:b*S+s0+sc])
				}
				// From the second chunk on, input "h" is noise: the carried state must win.
				hin := h0
				if state != nil {
					hin = stagetest.Randn(r, B*H, 1)
				}
				last, err = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, State: state,
					Inputs: tensor.Map{"e": tensor.From(ec, B, sc, H), "timestamps": tensor.From(tc, B, sc), "h": tensor.From(hin, B, H)}})
				if err != nil {
					t.Fatal(err)
				}
				state = last.State
				for b := 0; b < B; b++ {
					copy(y[(b*S+s0)*H:(b*S+s0+sc)*H], last.Outputs["y"].Data[b*sc*H:(b+1)*sc*H])
				}
				s0 += sc
			}
			for i, v := range whole.Outputs["y"].Data {
				if math.Abs(float64(v-y[i])) > 1e-5 {
					t.Fatalf("y[%d]: chunked %v, whole %v", i, y[i], v)
				}
			}
			for i, v := range whole.Outputs["h"].Data {
				if math.Abs(float64(v-last.Outputs["h"].Data[i])) > 1e-5 {
					t.Fatalf("h[%d]: chunked %v, whole %v", i, last.Outputs["h"].Data[i], v)
				}
			}
		})
	}
}

// TestGradients checks Backward against central finite differences of
// L = Σ ry⊙y + Σ rh⊙h for e, the initial state and every parameter, on a first
// chunk (initial state from input "h") and on a chunk with carried state.
func TestGradients(t *testing.T) {
	const B, S, H = 2, 6, 4
	for _, tc := range []struct {
		name    string
		opts    []string
		carried bool
		noDY    bool
		noDH    bool
	}{
		{"timestamps", nil, false, false, false},
		{"carried", nil, true, false, false},
		{"constant", []string{"dt_mode", "constant", "dt_const", "0.7"}, false, false, false},
		{"only dy", nil, false, false, true},
		{"only dh", nil, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(4, 5))
			p := testParams(r, H)
			cfg := testConfig(H, tc.opts...)
			in := tensor.Map{
				"e":          tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H),
				"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
				"h":          tensor.From(stagetest.Randn(r, B*H, 0.5), B, H),
			}
			var state tensor.Map
			initial := in["h"]
			if tc.carried {
				for i := range in["timestamps"].Data {
					in["timestamps"].Data[i] += 0.3
				}
				state = tensor.Map{"h": tensor.From(stagetest.Randn(r, B*H, 0.5), B, H), "last_ts": tensor.From([]float32{0.1, 0.25}, B)}
				initial = state["h"]
			}
			ry, rh := stagetest.Randn(r, B*S*H, 1), stagetest.Randn(r, B*H, 1)
			if tc.noDY {
				clear(ry)
			}
			if tc.noDH {
				clear(rh)
			}
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
			og := tensor.Map{}
			if !tc.noDY {
				og["y"] = tensor.From(ry, B, S, H)
			}
			if !tc.noDH {
				og["h"] = tensor.From(rh, B, H)
			}
			g, err := s.Backward(context.Background(), res.Handle, og)
			if err != nil {
				t.Fatal(err)
			}
			numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 1e-3, 1e-2)
			numtest.CheckGrad(t, "initial h", initial.Data, g.InputGrads["h"].Data, loss, 1e-3, 1e-3, 1e-2)
			for _, name := range p.Names() {
				numtest.CheckGrad(t, name, p[name].Data, g.ParamGrads[name].Data, loss, 1e-3, 1e-3, 1e-2)
			}
		})
	}
}

// TestForwardRepeatable checks that Forward is deterministic and that output
// and state do not share memory (the conformance kit checks that inputs,
// parameters and output gradients are left as they were).
func TestForwardRepeatable(t *testing.T) {
	const B, S, H = 2, 5, 4
	r := rand.New(rand.NewPCG(6, 7))
	p := testParams(r, H)
	in := tensor.Map{
		"e":          tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
		"h":          tensor.From(stagetest.Randn(r, B*H, 0.5), B, H),
	}
	state := tensor.Map{"h": tensor.From(stagetest.Randn(r, B*H, 0.5), B, H), "last_ts": tensor.New(B)}
	og := tensor.Map{"y": tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H), "h": tensor.From(stagetest.Randn(r, B*H, 1), B, H)}
	s := New()
	a, err := s.Forward(context.Background(), testConfig(H), &stage.ForwardRequest{Params: p, Inputs: in, State: state, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), a.Handle, og); err != nil {
		t.Fatal(err)
	}
	b, err := s.Forward(context.Background(), testConfig(H), &stage.ForwardRequest{Params: p, Inputs: in, State: state})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Outputs["y"].Data, b.Outputs["y"].Data) {
		t.Error("two forward passes differ")
	}
	if &a.Outputs["h"].Data[0] == &a.State["h"].Data[0] {
		t.Error("output h and state h share memory")
	}
}

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background(), testConfig(256))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "liquid" || d.Name != "scan" || d.Version != "1.0.0" {
		t.Errorf("identity %s/%s/%s", d.Kind, d.Name, d.Version)
	}
	if !slices.Equal(d.Inputs, []string{"e", "timestamps", "h"}) || !slices.Equal(d.Outputs, []string{"y", "h"}) {
		t.Errorf("inputs %v, outputs %v", d.Inputs, d.Outputs)
	}
	want := map[string]string{
		"input.weight": "linear_weight", "input.bias": "linear_bias", "recurrent.weight": "normal:0.0625",
		"tau_raw": "zeros", "A": "ones",
	}
	for _, p := range d.Params {
		if string(p.Init) != want[p.Name] {
			t.Errorf("param %s init %q, want %q", p.Name, p.Init, want[p.Name])
		}
		if strings.HasPrefix(string(p.Init), "linear_") && p.FanIn != 256 {
			t.Errorf("param %s fan-in %d", p.Name, p.FanIn)
		}
		delete(want, p.Name)
	}
	if len(want) != 0 {
		t.Errorf("params not declared: %v", want)
	}
	if len(d.State) != 2 || d.State[0].Name != "h" || d.State[1].Name != "last_ts" {
		t.Errorf("state %+v", d.State)
	}
	if StdRecurrent(100) != "0.1" {
		t.Errorf("StdRecurrent(100) = %s", StdRecurrent(100))
	}
}

func TestErrors(t *testing.T) {
	const B, S, H = 2, 3, 4
	r := rand.New(rand.NewPCG(8, 9))
	p := testParams(r, H)
	good := tensor.Map{"e": tensor.New(B, S, H), "timestamps": tensor.New(B, S), "h": tensor.New(B, H)}
	with := func(m tensor.Map, k string, v *tensor.Tensor) tensor.Map {
		out := tensor.Map{}
		for n, t := range m {
			out[n] = t
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	cfg := testConfig(H)
	back := tensor.From([]float32{0.1, 0.0995, 0, 0.2, 0.3, 0.4}, B, S) // the small step back is allowed
	cases := []struct {
		name   string
		cfg    stage.Config
		params tensor.Map
		in     tensor.Map
		state  tensor.Map
		want   string
	}{
		{"no hidden_size", stage.Config{}, p, good, nil, "hidden_size"},
		{"bad hidden_size", testConfig(0), p, good, nil, "hidden_size"},
		{"bad dt_mode", testConfig(H, "dt_mode", "linear"), p, good, nil, "dt_mode"},
		{"bad dt_scale", testConfig(H, "dt_scale", "x"), p, good, nil, "dt_scale"},
		{"negative dt_min", testConfig(H, "dt_min", "-1"), p, good, nil, "dt_min"},
		{"zero dt_const", testConfig(H, "dt_const", "0"), p, good, nil, "dt_const"},
		{"NaN dt_scale", testConfig(H, "dt_scale", "NaN"), p, good, nil, "dt_scale"},
		{"empty batch", cfg, p, with(good, "e", tensor.New(0, S, H)), nil, "empty"},
		{"timestamps back", cfg, p, with(good, "timestamps", back), nil, `"timestamps"[0,2]`},
		{"timestamps NaN", cfg, p, with(good, "timestamps", tensor.From([]float32{0, float32(math.NaN()), 0, 0, 0, 0}, B, S)), nil, `"timestamps"[0,1]`},
		{"state without last_ts", cfg, p, good, tensor.Map{"h": tensor.New(B, H)}, `"last_ts"`},
		{"state h shape", cfg, p, good, tensor.Map{"h": tensor.New(B, H+1), "last_ts": tensor.New(B)}, `"h"`},
	}
	s := New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.params, Inputs: tc.in, State: tc.state})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "scan: ") {
				t.Errorf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"e": tensor.New(B, S, H)}); err == nil || !strings.Contains(err.Error(), `"e"`) {
		t.Errorf("gradient for an input accepted: %v", err)
	}
	res, _ = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
	g, err := s.Backward(context.Background(), res.Handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range g.InputGrads["e"].Data {
		if v != 0 {
			t.Fatal("nonzero gradient without an output gradient")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := tensor.Map{"e": tensor.New(1, 2*ctxEvery, H), "timestamps": tensor.New(1, 2*ctxEvery), "h": tensor.New(1, H)}
	if _, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: long}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestGemv checks the Go matrix–vector loops and num.Gemm against float64 sums.
func TestGemv(t *testing.T) {
	const H = 7
	r := rand.New(rand.NewPCG(10, 11))
	w, x, y0 := stagetest.Randn(r, H*H, 1), stagetest.Randn(r, H, 1), stagetest.Randn(r, H, 1)
	want, wantT := make([]float64, H), make([]float64, H)
	for i := range H {
		want[i], wantT[i] = float64(y0[i]), float64(y0[i])
		for j := range H {
			want[i] += float64(w[i*H+j]) * float64(x[j])
			wantT[i] += float64(w[j*H+i]) * float64(x[j])
		}
	}
	y := slices.Clone(y0)
	gemvAdd(y, w, x, H)
	closeTo(t, "gemvAdd", y, want, 1e-5)
	y = slices.Clone(y0)
	gemvTAdd(y, w, x, H)
	closeTo(t, "gemvTAdd", y, wantT, 1e-5)
	y = slices.Clone(y0)
	wT := make([]float32, H*H)
	for i := range H {
		for j := range H {
			wT[j*H+i] = w[i*H+j]
		}
	}
	recurrentAdd(y, H, x, H, w, wT, 1, H)
	closeTo(t, "recurrentAdd", y, want, 1e-5)
	y = slices.Clone(y0)
	recurrentBackAdd(y, x, H, w, 1, H)
	closeTo(t, "recurrentBackAdd", y, wantT, 1e-5)
}
