package cfc

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

// testParams draws every declared parameter with a spread that makes every path
// of the cell matter.
func testParams(t testing.TB, r *rand.Rand, cfg stage.Config) tensor.Map {
	t.Helper()
	d, err := New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := tensor.Map{}
	for _, ps := range d.Params {
		std := 0.3
		if len(ps.Shape) == 2 {
			std = 1 / math.Sqrt(float64(ps.Shape[1]))
		}
		p[ps.Name] = tensor.From(randn(r, tensor.Numel(ps.Shape), 0, std), ps.Shape...)
	}
	return p
}

// testTimestamps are nondecreasing in [0,1] per row, with repeats.
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

// reference is the cell in float64 straight from the formulas in doc.go.
func reference(p tensor.Map, o options, e, ts, h0 []float32, B, S int) (y, hT []float64) {
	H := o.H
	lin := func(name string, x []float64) []float64 {
		w, b := p[name+".weight"], p[name+".bias"]
		out := make([]float64, w.Shape[0])
		for i := range out {
			s := float64(b.Data[i])
			for j, v := range x {
				s += float64(w.Data[i*len(x)+j]) * v
			}
			out[i] = s
		}
		return out
	}
	y, hT = make([]float64, B*S*H), make([]float64, B*H)
	for b := 0; b < B; b++ {
		h := make([]float64, H)
		for i := range h {
			h[i] = float64(h0[b*H+i])
		}
		prev := 0.0
		for t := 0; t < S; t++ {
			d := float64(o.dtConst)
			if o.mode == ModeTimestamps {
				cur := float64(ts[b*S+t])
				d = float64(o.dtScale)*(cur-prev) + float64(o.dtMin)
				prev = cur
			}
			x := make([]float64, 0, 2*H)
			for _, v := range e[(b*S+t)*H:][:H] {
				x = append(x, float64(v))
			}
			x = append(x, h...)
			for l := 0; l < o.L; l++ {
				x = lin(strings.TrimSuffix(backboneName(l, "weight"), ".weight"), x)
				for i, v := range x {
					x[i] = lecunA * math.Tanh(lecunB*v)
				}
			}
			f1, f2, ta, tb := lin("ff1", x), lin("ff2", x), lin("time_a", x), lin("time_b", x)
			for i := range h {
				ti := 1 / (1 + math.Exp(ta[i]*d-tb[i]))
				h[i] = math.Tanh(f1[i])*(1-ti) + ti*math.Tanh(f2[i])
			}
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

var configs = []struct {
	name string
	opts []string
}{
	{"backbone1", nil},
	{"no backbone", []string{OptBackboneLayers, "0"}},
	{"backbone2 units5", []string{OptBackboneLayers, "2", OptBackboneUnits, "5"}},
	{"constant", []string{OptDtMode, ModeConstant, OptDtConst, "0.7"}},
	{"small steps", []string{OptDtMin, "0.05"}},
}

func TestForwardMatchesReference(t *testing.T) {
	for _, cc := range configs {
		for _, sh := range []struct{ B, S, H int }{{1, 9, 5}, {3, 7, 6}, {2, 0, 4}} {
			t.Run(cc.name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, uint64(sh.B)))
				B, S, H := sh.B, sh.S, sh.H
				cfg := testConfig(H, cc.opts...)
				o, err := parseOptions(cfg)
				if err != nil {
					t.Fatal(err)
				}
				p := testParams(t, r, cfg)
				e, ts, h0 := randn(r, B*S*H, 0, 1), testTimestamps(r, B, S), randn(r, B*H, 0, 0.5)
				res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p,
					Inputs: tensor.Map{"e": tensor.From(e, B, S, H), "timestamps": tensor.From(ts, B, S), "h": tensor.From(h0, B, H)}})
				if err != nil {
					t.Fatal(err)
				}
				wy, wh := reference(p, o, e, ts, h0, B, S)
				closeTo(t, "y", res.Outputs["y"].Data, wy, 2e-5)
				closeTo(t, "h", res.Outputs["h"].Data, wh, 2e-5)
				closeTo(t, "state h", res.State["h"].Data, wh, 2e-5)
				if S == 0 {
					closeTo(t, "h through an empty chunk", res.Outputs["h"].Data, func() []float64 {
						out := make([]float64, len(h0))
						for i, v := range h0 {
							out[i] = float64(v)
						}
						return out
					}(), 0)
				}
			})
		}
	}
}

// TestChunkedEqualsWhole runs sequences in three uneven chunks, carrying the
// declared state, and compares with one pass.
func TestChunkedEqualsWhole(t *testing.T) {
	const B, S, H = 2, 37, 8
	for _, cc := range configs {
		t.Run(cc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(2, 3))
			cfg := testConfig(H, cc.opts...)
			p := testParams(t, r, cfg)
			e, ts, h0 := randn(r, B*S*H, 0, 1), testTimestamps(r, B, S), randn(r, B*H, 0, 0.5)
			s := New()
			whole, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p,
				Inputs: tensor.Map{"e": tensor.From(e, B, S, H), "timestamps": tensor.From(ts, B, S), "h": tensor.From(h0, B, H)}})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := s.Describe(context.Background(), cfg)
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
				hin := h0
				if state != nil {
					hin = randn(r, B*H, 0, 1) // the carried state must win over input "h"
				}
				last, err = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, State: state,
					Inputs: tensor.Map{"e": tensor.From(ec, B, sc, H), "timestamps": tensor.From(tc, B, sc), "h": tensor.From(hin, B, H)}})
				if err != nil {
					t.Fatal(err)
				}
				// Carry exactly the declared state, nothing else.
				state = tensor.Map{}
				for _, st := range d.State {
					state[st.Name] = last.State[st.Name]
				}
				if len(last.State) != len(d.State) {
					t.Errorf("state has %d tensors, %d declared", len(last.State), len(d.State))
				}
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
// L = Σ ry⊙y + Σ rh⊙h for e, the initial state and every parameter.
func TestGradients(t *testing.T) {
	const B, S, H = 2, 5, 4
	type gcase struct {
		name          string
		opts          []string
		carried       bool
		noDY, noDH    bool
		wantNumParams int
	}
	cases := []gcase{
		{"backbone1", nil, false, false, false, 10},
		{"carried", nil, true, false, false, 10},
		{"no backbone", []string{OptBackboneLayers, "0"}, false, false, false, 8},
		{"backbone2 units3", []string{OptBackboneLayers, "2", OptBackboneUnits, "3"}, true, false, false, 12},
		{"constant", []string{OptDtMode, ModeConstant, OptDtConst, "0.7"}, false, false, false, 10},
		{"only dy", nil, false, false, true, 10},
		{"only dh", nil, true, true, false, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(4, 5))
			cfg := testConfig(H, tc.opts...)
			p := testParams(t, r, cfg)
			in := tensor.Map{
				"e":          tensor.From(randn(r, B*S*H, 0, 1), B, S, H),
				"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
				"h":          tensor.From(randn(r, B*H, 0, 0.5), B, H),
			}
			var state tensor.Map
			initial := in["h"]
			if tc.carried {
				for i := range in["timestamps"].Data {
					in["timestamps"].Data[i] += 0.3
				}
				state = tensor.Map{"h": tensor.From(randn(r, B*H, 0, 0.5), B, H), "last_ts": tensor.From([]float32{0.29, 0.25}, B)}
				initial = state["h"]
			}
			ry, rh := randn(r, B*S*H, 0, 1), randn(r, B*H, 0, 1)
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
			if s.Live() != 0 {
				t.Errorf("%d handles left", s.Live())
			}
			numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 1e-3, 1e-2)
			numtest.CheckGrad(t, "initial h", initial.Data, g.InputGrads["h"].Data, loss, 1e-3, 1e-3, 1e-2)
			if len(g.ParamGrads) != tc.wantNumParams || len(p) != tc.wantNumParams {
				t.Errorf("%d parameter gradients for %d parameters, want %d", len(g.ParamGrads), len(p), tc.wantNumParams)
			}
			for _, name := range p.Names() {
				gt := g.ParamGrads[name]
				if gt == nil || !slices.Equal(gt.Shape, p[name].Shape) {
					t.Fatalf("gradient of %s missing or of the wrong shape", name)
				}
				numtest.CheckGrad(t, name, p[name].Data, gt.Data, loss, 1e-3, 1e-3, 1e-2)
			}
		})
	}
}

// TestTimeMatters checks that the elapsed time reaches the output: the same
// tokens with different timestamps give different outputs.
func TestTimeMatters(t *testing.T) {
	const B, S, H = 1, 6, 4
	r := rand.New(rand.NewPCG(12, 13))
	cfg := testConfig(H)
	p := testParams(t, r, cfg)
	e := randn(r, B*S*H, 0, 1)
	run := func(ts []float32) []float32 {
		res, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p,
			Inputs: tensor.Map{"e": tensor.From(e, B, S, H), "timestamps": tensor.From(ts, B, S), "h": tensor.New(B, H)}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Outputs["y"].Data
	}
	a := run([]float32{0, 0, 0, 0, 0, 0})
	b := run([]float32{0, 0, 0.05, 0.05, 0.05, 0.05})
	if slices.Equal(a[:2*H], b[:2*H]) == false {
		t.Error("outputs before the time jump differ")
	}
	if slices.Equal(a[2*H:3*H], b[2*H:3*H]) {
		t.Error("a jump in the timestamps does not change the output")
	}
}

// TestInputsUnchanged checks that Forward and Backward leave inputs, state,
// parameters and output gradients as they were, and that Forward is
// deterministic.
func TestInputsUnchanged(t *testing.T) {
	const B, S, H = 2, 5, 4
	r := rand.New(rand.NewPCG(6, 7))
	cfg := testConfig(H)
	p := testParams(t, r, cfg)
	in := tensor.Map{
		"e":          tensor.From(randn(r, B*S*H, 0, 1), B, S, H),
		"timestamps": tensor.From(testTimestamps(r, B, S), B, S),
		"h":          tensor.From(randn(r, B*H, 0, 0.5), B, H),
	}
	state := tensor.Map{"h": tensor.From(randn(r, B*H, 0, 0.5), B, H), "last_ts": tensor.New(B)}
	og := tensor.Map{"y": tensor.From(randn(r, B*S*H, 0, 1), B, S, H), "h": tensor.From(randn(r, B*H, 0, 1), B, H)}
	clone := func(m tensor.Map) tensor.Map {
		out := tensor.Map{}
		for k, v := range m {
			out[k] = v.Clone()
		}
		return out
	}
	all := []tensor.Map{p, in, state, og}
	var before []tensor.Map
	for _, m := range all {
		before = append(before, clone(m))
	}
	s := New()
	a, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: state, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), a.Handle, og); err != nil {
		t.Fatal(err)
	}
	b, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: in, State: state})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range all {
		for k, v := range m {
			if !slices.Equal(v.Data, before[i][k].Data) {
				t.Errorf("%s was modified", k)
			}
		}
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
	if d.Kind != "liquid" || d.Name != "cfc" || d.Version != "1.0.0" {
		t.Errorf("identity %s/%s/%s", d.Kind, d.Name, d.Version)
	}
	// The host treats a liquid stage that reads "e" and writes "y" as per-token.
	if !slices.Equal(d.Inputs, []string{"e", "timestamps", "h"}) || !slices.Equal(d.Outputs, []string{"y", "h"}) {
		t.Errorf("inputs %v, outputs %v", d.Inputs, d.Outputs)
	}
	want := map[string][]int{
		"backbone.0.weight": {256, 512}, "backbone.0.bias": {256},
		"ff1.weight": {256, 256}, "ff1.bias": {256}, "ff2.weight": {256, 256}, "ff2.bias": {256},
		"time_a.weight": {256, 256}, "time_a.bias": {256}, "time_b.weight": {256, 256}, "time_b.bias": {256},
	}
	for _, p := range d.Params {
		if !slices.Equal(p.Shape, want[p.Name]) {
			t.Errorf("param %s shape %v, want %v", p.Name, p.Shape, want[p.Name])
		}
		delete(want, p.Name)
	}
	if len(want) != 0 {
		t.Errorf("params not declared: %v", want)
	}
	if string(d.Params[0].Init) != "uniform:0.08838834764831845" { // √(6/(256+512))
		t.Errorf("backbone init %q", d.Params[0].Init)
	}
	if len(d.State) != 2 || d.State[0].Name != "h" || d.State[1].Name != "last_ts" {
		t.Errorf("state %+v", d.State)
	}
	d, err = New().Describe(context.Background(), testConfig(8, OptBackboneLayers, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Params) != 8 || !slices.Equal(d.Params[0].Shape, []int{8, 16}) {
		t.Errorf("without backbone: %d params, first %v", len(d.Params), d.Params[0].Shape)
	}
}

func TestErrors(t *testing.T) {
	const B, S, H = 2, 3, 4
	r := rand.New(rand.NewPCG(8, 9))
	cfg := testConfig(H)
	p := testParams(t, r, cfg)
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
	back := tensor.From([]float32{0.1, 0.08, 0, 0.2, 0.3, 0.4}, B, S) // back by more than dt_min/dt_scale
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
		{"bad layers", testConfig(H, OptBackboneLayers, "-1"), p, good, nil, OptBackboneLayers},
		{"bad units", testConfig(H, OptBackboneUnits, "x"), p, good, nil, OptBackboneUnits},
		{"bad dt_mode", testConfig(H, OptDtMode, "linear"), p, good, nil, OptDtMode},
		{"bad dt_scale", testConfig(H, OptDtScale, "x"), p, good, nil, OptDtScale},
		{"negative dt_min", testConfig(H, OptDtMin, "-1"), p, good, nil, OptDtMin},
		{"zero dt_const", testConfig(H, OptDtConst, "0"), p, good, nil, OptDtConst},
		{"e missing", cfg, p, with(good, "e", nil), nil, `"e"`},
		{"e wrong H", cfg, p, with(good, "e", tensor.New(B, S, H+1)), nil, `"e"`},
		{"empty batch", cfg, p, with(good, "e", tensor.New(0, S, H)), nil, "empty"},
		{"timestamps missing", cfg, p, with(good, "timestamps", nil), nil, `"timestamps"`},
		{"timestamps back", cfg, p, with(good, "timestamps", back), nil, `"timestamps"[0,1]`},
		{"h missing", cfg, p, with(good, "h", nil), nil, `"h"`},
		{"state without last_ts", cfg, p, good, tensor.Map{"h": tensor.New(B, H)}, `"last_ts"`},
		{"state h shape", cfg, p, good, tensor.Map{"h": tensor.New(B, H+1), "last_ts": tensor.New(B)}, `"h"`},
		{"param missing", cfg, with(p, "time_a.weight", nil), good, nil, "time_a.weight"},
		{"param shape", cfg, with(p, "backbone.0.weight", tensor.New(H, H)), good, nil, "backbone.0.weight"},
		{"param for another backbone", testConfig(H, OptBackboneLayers, "0"), p, good, nil, "ff1.weight"},
	}
	s := New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.params, Inputs: tc.in, State: tc.state})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "cfc: ") {
				t.Errorf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	if _, err := s.Forward(context.Background(), testConfig(H, OptDtMode, ModeConstant), &stage.ForwardRequest{Params: p, Inputs: with(good, "timestamps", nil)}); err != nil {
		t.Errorf("constant mode without timestamps: %v", err)
	}
	if _, err := s.Forward(context.Background(), cfg, nil); err == nil {
		t.Error("nil request accepted")
	}
	if _, err := s.Backward(context.Background(), 999, nil); err == nil {
		t.Error("unknown handle accepted")
	}
	for _, og := range []tensor.Map{{"y": tensor.New(B, S+1, H)}, {"h": tensor.New(B, H+1)}, {"e": tensor.New(B, S, H)}} {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Backward(context.Background(), res.Handle, og); err == nil || !strings.Contains(err.Error(), `"`+og.Names()[0]+`"`) {
			t.Errorf("bad gradient %v accepted: %v", og.Names(), err)
		}
	}
	res, _ := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: p, Inputs: good, NeedGrad: true})
	if err := s.Release(context.Background(), res.Handle); err != nil {
		t.Fatal(err)
	}
	if s.Live() != 0 {
		t.Errorf("%d handles left", s.Live())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := tensor.Map{"e": tensor.New(1, 2*ctxEvery, H), "timestamps": tensor.New(1, 2*ctxEvery), "h": tensor.New(1, H)}
	if _, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: long}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("cancelled context: %v", err)
	}
}
