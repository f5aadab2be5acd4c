package causal

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/num/numtest"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func testConfig(H, W int) stage.Config {
	return stage.Config{Dims: map[string]int{"hidden_size": H}, Options: map[string]string{"window": fmt.Sprint(W)}}
}

func randn(r *rand.Rand, n int, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * std)
	}
	return out
}

// randParams returns parameters shaped by Describe, all non-zero (out.weight
// included, or its gradient check would be vacuous), scaled so the softmax is
// neither flat nor one-hot.
func randParams(t testing.TB, r *rand.Rand, cfg stage.Config) tensor.Map {
	t.Helper()
	d, err := New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := tensor.Map{}
	for _, p := range d.Params {
		std := 0.5
		if len(p.Shape) == 2 {
			std = 1.5 / math.Sqrt(float64(p.Shape[1]))
		}
		m[p.Name] = tensor.From(randn(r, tensor.Numel(p.Shape), std), p.Shape...)
	}
	return m
}

// chunkInputs returns positions [lo,hi) of every row of e [B,S,H], with
// timestamps and h as the host passes them.
func chunkInputs(e *tensor.Tensor, lo, hi int) tensor.Map {
	B, S, H := e.Shape[0], e.Shape[1], e.Shape[2]
	n := hi - lo
	out := make([]float32, 0, B*n*H)
	for b := 0; b < B; b++ {
		out = append(out, e.Data[(b*S+lo)*H:(b*S+hi)*H]...)
	}
	return tensor.Map{
		"e":          tensor.From(out, B, n, H),
		"timestamps": tensor.New(B, n),
		"h":          tensor.New(B, H),
	}
}

// reference is the attention in float64 with explicit per-token loops over the
// whole sequence e [B,S,H].
func reference(pm tensor.Map, e *tensor.Tensor, W int) [][]float64 {
	B, S, H := e.Shape[0], e.Shape[1], e.Shape[2]
	P := func(n string) []float32 { return pm[n].Data }
	lin := func(w, bs []float32, x []float64) []float64 {
		out := make([]float64, H)
		for o := range out {
			s := float64(bs[o])
			for i, v := range x {
				s += float64(w[o*H+i]) * v
			}
			out[o] = s
		}
		return out
	}
	y := make([][]float64, B)
	for b := 0; b < B; b++ {
		q, k, v := make([][]float64, S), make([][]float64, S), make([][]float64, S)
		for t := 0; t < S; t++ {
			x := make([]float64, H)
			for i := range x {
				x[i] = float64(e.Data[(b*S+t)*H+i])
			}
			q[t] = lin(P("query.weight"), P("query.bias"), x)
			k[t] = lin(P("key.weight"), P("key.bias"), x)
			v[t] = lin(P("value.weight"), P("value.bias"), x)
		}
		for t := 0; t < S; t++ {
			lo := max(0, t-W+1)
			sc := make([]float64, t+1-lo)
			M := math.Inf(-1)
			for s := lo; s <= t; s++ {
				for i := 0; i < H; i++ {
					sc[s-lo] += q[t][i] * k[s][i]
				}
				sc[s-lo] /= math.Sqrt(float64(H))
				M = math.Max(M, sc[s-lo])
			}
			Z := 0.0
			for j := range sc {
				sc[j] = math.Exp(sc[j] - M)
				Z += sc[j]
			}
			a := make([]float64, H)
			for s := lo; s <= t; s++ {
				for i := range a {
					a[i] += sc[s-lo] / Z * v[s][i]
				}
			}
			y[b] = append(y[b], lin(P("out.weight"), P("out.bias"), a)...)
		}
	}
	return y
}

func runChunks(t *testing.T, s *Stage, cfg stage.Config, pm tensor.Map, e *tensor.Tensor, bounds []int) []*stage.ForwardResult {
	t.Helper()
	var state tensor.Map
	var out []*stage.ForwardResult
	for i := 0; i+1 < len(bounds); i++ {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{
			Params: pm, Inputs: chunkInputs(e, bounds[i], bounds[i+1]), State: state,
		})
		if err != nil {
			t.Fatal(err)
		}
		state = res.State
		out = append(out, res)
	}
	return out
}

func near(a float32, b, tol float64) bool { return math.Abs(float64(a)-b) <= tol*(1+math.Abs(b)) }

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background(), stage.Config{Dims: map[string]int{"hidden_size": 8}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != stage.KindAttention || d.Name != "causal" || d.Version != "1.1.0" {
		t.Errorf("identity %s/%s/%s", d.Kind, d.Name, d.Version)
	}
	if fmt.Sprint(d.Inputs) != "[e timestamps h]" || fmt.Sprint(d.Outputs) != "[y c]" {
		t.Errorf("inputs %v, outputs %v", d.Inputs, d.Outputs)
	}
	var names []string
	for _, p := range d.Params {
		names = append(names, p.Name)
		zero := strings.HasPrefix(p.Name, "out.")
		if zero != (p.Init == "zeros") {
			t.Errorf("%s: init %q", p.Name, p.Init)
		}
	}
	if fmt.Sprint(names) != fmt.Sprint(paramNames) {
		t.Errorf("params %v", names)
	}
	if d.State[0].Shape[1] != DefaultWindow {
		t.Errorf("k_cache shape %v, want window %d", d.State[0].Shape, DefaultWindow)
	}
}

func TestForwardMatchesReference(t *testing.T) {
	const B, S, H = 2, 11, 6
	for _, W := range []int{1, 3, 11, 20} {
		t.Run(fmt.Sprint("W=", W), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(W)))
			cfg := testConfig(H, W)
			pm := randParams(t, r, cfg)
			e := tensor.From(randn(r, B*S*H, 1), B, S, H)
			eCopy, pCopy := e.Clone(), map[string]*tensor.Tensor{}
			for n, v := range pm {
				pCopy[n] = v.Clone()
			}
			res := runChunks(t, New(), cfg, pm, e, []int{0, S})[0]
			want := reference(pm, e, W)
			y, c := res.Outputs["y"], res.Outputs["c"]
			for b := 0; b < B; b++ {
				for i, v := range want[b] {
					if !near(y.Data[b*S*H+i], v, 1e-5) {
						t.Fatalf("y[%d][%d] = %v, want %v", b, i, y.Data[b*S*H+i], v)
					}
				}
				for i := 0; i < H; i++ {
					if c.Data[b*H+i] != y.Data[(b*S+S-1)*H+i] {
						t.Fatalf("c[%d] is not y of the last token", b)
					}
				}
			}
			if n := res.State["n_cache"].Data[0]; int(n) != min(W, S) {
				t.Errorf("n_cache = %v, want %d", n, min(W, S))
			}
			if !equal(e.Data, eCopy.Data) {
				t.Error("input e was modified")
			}
			for n, v := range pm {
				if !equal(v.Data, pCopy[n].Data) {
					t.Errorf("parameter %s was modified", n)
				}
			}
		})
	}
}

func equal(a, b []float32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestChunkedEqualsUnchunked(t *testing.T) {
	const B, S, H, W = 2, 23, 5, 4
	for _, bounds := range [][]int{{0, 9, 11, S}, {0, 2, 17, S}, {0, 1, 2, S}, {0, 12, 13, S}} {
		t.Run(fmt.Sprint(bounds), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, 6))
			cfg := testConfig(H, W)
			pm := randParams(t, r, cfg)
			e := tensor.From(randn(r, B*S*H, 1), B, S, H)
			whole := runChunks(t, New(), cfg, pm, e, []int{0, S})[0].Outputs["y"].Data
			parts := runChunks(t, New(), cfg, pm, e, bounds)
			for i, res := range parts {
				lo, n := bounds[i], bounds[i+1]-bounds[i]
				y := res.Outputs["y"].Data
				for b := 0; b < B; b++ {
					for j := 0; j < n*H; j++ {
						got, want := y[b*n*H+j], whole[(b*S+lo)*H+j]
						if math.Abs(float64(got-want)) > 1e-5*(1+math.Abs(float64(want))) {
							t.Fatalf("chunk %d y[%d,%d] = %v, unchunked %v", i, b, j, got, want)
						}
					}
				}
				if got := int(res.State["n_cache"].Data[0]); got != min(W, bounds[i+1]) {
					t.Errorf("n_cache after chunk %d = %d, want %d", i, got, min(W, bounds[i+1]))
				}
			}
		})
	}
}

// TestGradients checks Backward against finite differences of a loss on both
// outputs, for a first chunk and for a later one whose carried cache is held
// constant (the truncated gradient).
func TestGradients(t *testing.T) {
	const B, H = 2, 4
	for _, tc := range []struct {
		W      int
		bounds []int
	}{{3, []int{0, 7}}, {3, []int{0, 5, 9}}, {1, []int{0, 2, 5}}, {8, []int{0, 2, 6}}} {
		t.Run(fmt.Sprint(tc.W, tc.bounds), func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			cfg := testConfig(H, tc.W)
			pm := randParams(t, r, cfg)
			bounds := tc.bounds
			e := tensor.From(randn(r, B*bounds[len(bounds)-1]*H, 1), B, bounds[len(bounds)-1], H)
			s := New()
			var state tensor.Map
			if len(bounds) > 2 {
				state = runChunks(t, s, cfg, pm, e, bounds[:len(bounds)-1])[len(bounds)-3].State
			}
			in := chunkInputs(e, bounds[len(bounds)-2], bounds[len(bounds)-1])
			Sc := in["e"].Shape[1]
			ry, rc := randn(r, B*Sc*H, 1), randn(r, B*H, 1)
			loss := func() float64 {
				res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, State: state})
				if err != nil {
					t.Fatal(err)
				}
				var l float64
				for i, v := range res.Outputs["y"].Data {
					l += float64(v) * float64(ry[i])
				}
				for i, v := range res.Outputs["c"].Data {
					l += float64(v) * float64(rc[i])
				}
				return l
			}
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, State: state, NeedGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			g, err := s.Backward(context.Background(), res.Handle, tensor.Map{
				"y": tensor.From(ry, B, Sc, H), "c": tensor.From(rc, B, H),
			})
			if err != nil {
				t.Fatal(err)
			}
			if s.Live() != 0 {
				t.Errorf("%d handles left after Backward", s.Live())
			}
			if len(g.InputGrads) != 1 || len(g.ParamGrads) != len(paramNames) {
				t.Errorf("got %d input and %d parameter gradients", len(g.InputGrads), len(g.ParamGrads))
			}
			numtest.CheckGrad(t, "e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 2e-3, 1e-2)
			for _, name := range paramNames {
				numtest.CheckGrad(t, name, pm[name].Data, g.ParamGrads[name].Data, loss, 1e-3, 2e-3, 1e-2)
			}
		})
	}
}

// TestBackwardPartialGrads checks that an absent "y" or "c" gradient means zero.
func TestBackwardPartialGrads(t *testing.T) {
	const B, S, H, W = 1, 6, 4, 3
	r := rand.New(rand.NewPCG(3, 4))
	cfg := testConfig(H, W)
	pm := randParams(t, r, cfg)
	e := tensor.From(randn(r, B*S*H, 1), B, S, H)
	dc := tensor.From(randn(r, B*H, 1), B, H)
	dy := tensor.New(B, S, H)
	copy(dy.Data[(S-1)*H:], dc.Data)
	s := New()
	run := func(g tensor.Map) []float32 {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, 0, S), NeedGrad: true})
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Backward(context.Background(), res.Handle, g)
		if err != nil {
			t.Fatal(err)
		}
		return out.InputGrads["e"].Data
	}
	a, b := run(tensor.Map{"c": dc}), run(tensor.Map{"y": dy})
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6 {
			t.Fatalf("de[%d]: %v via c, %v via y", i, a[i], b[i])
		}
	}
	for _, v := range run(tensor.Map{}) {
		if v != 0 {
			t.Fatal("no output gradient gave a non-zero de")
		}
	}
}

func TestReleaseAndHandles(t *testing.T) {
	const H = 4
	r := rand.New(rand.NewPCG(9, 9))
	cfg := testConfig(H, 2)
	pm := randParams(t, r, cfg)
	e := tensor.From(randn(r, 3*H, 1), 1, 3, H)
	s := New()
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, 0, 3), NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(context.Background(), res.Handle); err != nil || s.Live() != 0 {
		t.Fatalf("release: %v, %d live", err, s.Live())
	}
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{}); err == nil {
		t.Error("backward on a released handle succeeded")
	}
	if err := s.Release(context.Background(), res.Handle); err != nil {
		t.Errorf("releasing twice: %v", err)
	}
}

func TestErrors(t *testing.T) {
	const H, W = 4, 3
	r := rand.New(rand.NewPCG(11, 12))
	cfg := testConfig(H, W)
	pm := randParams(t, r, cfg)
	e := tensor.From(randn(r, 2*5*H, 1), 2, 5, H)
	good := chunkInputs(e, 0, 5)
	state := runChunks(t, New(), cfg, pm, e, []int{0, 5})[0].State
	with := func(m tensor.Map, k string, v *tensor.Tensor) tensor.Map {
		out := tensor.Map{}
		for n, x := range m {
			out[n] = x
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name   string
		cfg    stage.Config
		params tensor.Map
		inputs tensor.Map
		state  tensor.Map
		want   string
	}{
		{"no hidden_size", stage.Config{}, pm, good, nil, "hidden_size"},
		{"bad hidden_size", stage.Config{Dims: map[string]int{"hidden_size": 0}}, pm, good, nil, "hidden_size"},
		{"window not int", stage.Config{Dims: cfg.Dims, Options: map[string]string{"window": "x"}}, pm, good, nil, "window"},
		{"window zero", testConfig(H, 0), pm, good, nil, "window"},
		{"missing e", cfg, pm, with(good, "e", nil), nil, `"e"`},
		{"e shape", cfg, pm, with(good, "e", tensor.New(2, 5, H+1)), nil, `"e"`},
		{"empty chunk", cfg, pm, with(good, "e", tensor.New(2, 0, H)), nil, "empty"},
		{"e data", cfg, pm, with(good, "e", &tensor.Tensor{Shape: []int{2, 5, H}, Data: make([]float32, 3)}), nil, `"e"`},
		{"timestamps shape", cfg, pm, with(good, "timestamps", tensor.New(2, 4)), nil, "timestamps"},
		{"h shape", cfg, pm, with(good, "h", tensor.New(1, H)), nil, `"h"`},
		{"missing param", cfg, with(pm, "out.bias", nil), good, nil, "out.bias"},
		{"param shape", cfg, with(pm, "key.weight", tensor.New(H, H+1)), good, nil, "key.weight"},
		{"unknown state", cfg, pm, good, with(state, "m", tensor.New(1)), `"m"`},
		{"missing state", cfg, pm, good, with(state, "v_cache", nil), "v_cache"},
		{"cache shape", cfg, pm, good, with(state, "k_cache", tensor.New(2, W+1, H)), "k_cache"},
		{"n_cache too big", cfg, pm, good, with(state, "n_cache", tensor.From([]float32{W + 1}, 1)), "n_cache"},
		{"n_cache fraction", cfg, pm, good, with(state, "n_cache", tensor.From([]float32{1.5}, 1)), "n_cache"},
		{"n_cache NaN", cfg, pm, good, with(state, "n_cache", tensor.From([]float32{float32(math.NaN())}, 1)), "n_cache"},
	}
	s := New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.params, Inputs: tc.inputs, State: tc.state})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "causal: ") {
				t.Errorf("error %v, want one naming %s", err, tc.want)
			}
		})
	}
	if _, err := s.Forward(context.Background(), cfg, nil); err == nil {
		t.Error("nil request accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: pm, Inputs: good}); err == nil {
		t.Error("cancelled context accepted")
	}
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []tensor.Map{{"w": tensor.New(2, H)}, {"c": tensor.New(2, H+1)}, {"y": tensor.New(2, 4, H)}} {
		if _, err := s.Backward(context.Background(), res.Handle, g); err == nil {
			t.Errorf("backward accepted %v", g.Names())
		}
		res, _ = s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good, NeedGrad: true})
	}
	s.Release(context.Background(), res.Handle)
	if s.Live() != 0 {
		t.Errorf("%d handles live", s.Live())
	}
}
