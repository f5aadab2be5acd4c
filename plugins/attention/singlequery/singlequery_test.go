package singlequery

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

var paramNames = []string{
	"time_embed.weight", "time_embed.bias",
	"attention_query.weight", "attention_query.bias",
	"attention_key.weight", "attention_key.bias",
	"attention_value.weight", "attention_value.bias",
}

func testConfig(H int, pattern string, opts ...string) stage.Config {
	cfg := stage.Config{Dims: map[string]int{"hidden_size": H}, Options: map[string]string{"pattern": pattern}}
	for i := 0; i+1 < len(opts); i += 2 {
		cfg.Options[opts[i]] = opts[i+1]
	}
	return cfg
}

// randParams returns parameters shaped by Describe, with scales that make the
// softmax neither flat nor one-hot.
func randParams(t testing.TB, r *rand.Rand, cfg stage.Config) tensor.Map {
	t.Helper()
	d, err := New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := tensor.Map{}
	for _, p := range d.Params {
		std := 0.5
		if len(p.Shape) == 2 && p.Shape[1] > 1 {
			std = 1 / math.Sqrt(float64(p.Shape[1]))
		}
		m[p.Name] = tensor.From(stagetest.Randn(r, tensor.Numel(p.Shape), std), p.Shape...)
	}
	return m
}

type data struct {
	e, ts, h *tensor.Tensor
}

func randData(r *rand.Rand, B, S, H int) data {
	ts := make([]float32, B*S)
	for b := 0; b < B; b++ {
		acc := 0.0
		for j := 0; j < S; j++ {
			acc += r.Float64()
			ts[b*S+j] = float32(acc / float64(S))
		}
	}
	return data{
		e:  tensor.From(stagetest.Randn(r, B*S*H, 1), B, S, H),
		ts: tensor.From(ts, B, S),
		h:  tensor.From(stagetest.Randn(r, B*H, 1), B, H),
	}
}

// slice returns positions [lo,hi) of every row.
func (d data) slice(lo, hi int) tensor.Map {
	B, S, H := d.e.Shape[0], d.e.Shape[1], d.e.Shape[2]
	n := hi - lo
	e, ts := make([]float32, 0, B*n*H), make([]float32, 0, B*n)
	for b := 0; b < B; b++ {
		e = append(e, d.e.Data[(b*S+lo)*H:(b*S+hi)*H]...)
		ts = append(ts, d.ts.Data[b*S+lo:b*S+hi]...)
	}
	return tensor.Map{"e": tensor.From(e, B, n, H), "ts": nil, "timestamps": tensor.From(ts, B, n), "h": d.h}
}

func inputs(m tensor.Map) tensor.Map {
	return tensor.Map{"e": m["e"], "timestamps": m["timestamps"], "h": m["h"]}
}

// reference is the seed's attention in float64 with explicit keys and values,
// over the positions of the whole sequence that the pattern selects.
func reference(cfg stage.Config, pm tensor.Map, d data) (c, w, score [][]float64) {
	o, err := parseOptions(cfg)
	if err != nil {
		panic(err)
	}
	B, S, H := d.e.Shape[0], d.e.Shape[1], d.e.Shape[2]
	P := func(n string) []float32 { return pm[n].Data }
	lin := func(wt, bs []float32, x []float64) []float64 {
		out := make([]float64, H)
		for o := 0; o < H; o++ {
			s := float64(bs[o])
			for i, v := range x {
				s += float64(wt[o*len(x)+i]) * v
			}
			out[o] = s
		}
		return out
	}
	c, w, score = make([][]float64, B), make([][]float64, B), make([][]float64, B)
	for b := 0; b < B; b++ {
		hb := make([]float64, H)
		for i := range hb {
			hb[i] = float64(d.h.Data[b*H+i])
		}
		q := lin(P("attention_query.weight"), P("attention_query.bias"), hb)
		vs := make([][]float64, S)
		score[b], w[b], c[b] = make([]float64, S), make([]float64, S), make([]float64, H)
		M := math.Inf(-1)
		for j := 0; j < S; j++ {
			x := make([]float64, H)
			for i := range x {
				x[i] = float64(d.e.Data[(b*S+j)*H+i]) + float64(d.ts.Data[b*S+j])*float64(P("time_embed.weight")[i]) + float64(P("time_embed.bias")[i])
			}
			k := lin(P("attention_key.weight"), P("attention_key.bias"), x)
			vs[j] = lin(P("attention_value.weight"), P("attention_value.bias"), x)
			s := 0.0
			for i := range k {
				s += q[i] * k[i]
			}
			s /= math.Sqrt(float64(H))
			if !bruteSelected(&o, j, S) {
				s = math.Inf(-1)
			}
			score[b][j] = s
			M = math.Max(M, s)
		}
		L := 0.0
		for j := range S {
			w[b][j] = math.Exp(score[b][j] - M)
			L += w[b][j]
		}
		for j := range S {
			w[b][j] /= L
			for i := range c[b] {
				c[b][i] += w[b][j] * vs[j][i]
			}
		}
	}
	return c, w, score
}

// bruteSelected restates the patterns independently of options.selected.
func bruteSelected(o *options, p, n int) bool {
	last := p >= n-o.window
	switch o.pattern {
	case "all":
		return true
	case "strided":
		return p%o.stride == 0
	case "window":
		return last
	default:
		return p < o.global || last
	}
}

func near(a float32, b, tol float64) bool {
	if math.IsInf(b, -1) {
		return math.IsInf(float64(a), -1)
	}
	return math.Abs(float64(a)-b) <= tol*(1+math.Abs(b))
}

func checkClose(t *testing.T, what string, got []float32, want [][]float64, tol float64) {
	t.Helper()
	n := len(want[0])
	for b := range want {
		for j, v := range want[b] {
			if !near(got[b*n+j], v, tol) {
				t.Errorf("%s[%d,%d] = %v, want %v", what, b, j, got[b*n+j], v)
				return
			}
		}
	}
}

var patternCases = []struct {
	pattern string
	opts    []string
}{
	{"all", nil},
	{"strided", []string{"stride", "3"}},
	{"window", []string{"window", "4"}},
	{"global_window", []string{"window", "4", "global", "2"}},
	{"global_window", []string{"window", "5", "global", "10"}}, // overlapping parts
	{"window", []string{"window", "50"}},                       // longer than the sequence
}

func runChunks(t *testing.T, s *Stage, cfg stage.Config, pm tensor.Map, d data, bounds []int, needGrad bool) []*stage.ForwardResult {
	t.Helper()
	var state tensor.Map
	var out []*stage.ForwardResult
	for i := 0; i+1 < len(bounds); i++ {
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{
			Params: pm, Inputs: inputs(d.slice(bounds[i], bounds[i+1])), State: state, NeedGrad: needGrad,
		})
		if err != nil {
			t.Fatal(err)
		}
		state = res.State
		out = append(out, res)
	}
	return out
}

func TestSingleChunkMatchesReference(t *testing.T) {
	const B, S, H = 2, 13, 6
	for _, tc := range patternCases {
		t.Run(fmt.Sprint(tc.pattern, tc.opts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			cfg := testConfig(H, tc.pattern, tc.opts...)
			pm := randParams(t, r, cfg)
			d := randData(r, B, S, H)
			eCopy := d.e.Clone()
			res := runChunks(t, New(), cfg, pm, d, []int{0, S}, false)[0]
			c, w, score := reference(cfg, pm, d)
			checkClose(t, "c", res.Outputs["c"].Data, c, 1e-5)
			checkClose(t, "w", res.Outputs["w"].Data, w, 1e-5)
			checkClose(t, "score", res.Outputs["score"].Data, score, 1e-5)
			for i, v := range eCopy.Data {
				if d.e.Data[i] != v {
					t.Fatal("input e was modified")
				}
			}
			for b := 0; b < B; b++ {
				sum := 0.0
				for _, v := range res.Outputs["w"].Data[b*S : (b+1)*S] {
					sum += float64(v)
				}
				if math.Abs(sum-1) > 1e-5 {
					t.Errorf("row %d: weights sum to %v", b, sum)
				}
			}
		})
	}
}

func TestPatternsSelectPositions(t *testing.T) {
	cases := []struct {
		pattern string
		opts    []string
		S       int
		want    []int
	}{
		{"all", nil, 5, []int{0, 1, 2, 3, 4}},
		{"strided", []string{"stride", "3"}, 10, []int{0, 3, 6, 9}},
		{"window", []string{"window", "4"}, 10, []int{6, 7, 8, 9}},
		{"global_window", []string{"window", "3", "global", "2"}, 10, []int{0, 1, 7, 8, 9}},
		{"global_window", []string{"window", "3", "global", "8"}, 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.pattern, tc.opts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, 4))
			cfg := testConfig(4, tc.pattern, tc.opts...)
			pm := randParams(t, r, cfg)
			d := randData(r, 1, tc.S, 4)
			// chunked 3 + rest, so the ring and the online state both take part
			res := runChunks(t, New(), cfg, pm, d, []int{0, 3, tc.S}, false)
			// The last chunk's selection, as seen after the whole sequence.
			var got []int
			last := res[1].Outputs["score"].Data
			for j, v := range last {
				if !math.IsInf(float64(v), -1) {
					got = append(got, 3+j)
				}
			}
			var wantLast []int
			for _, p := range tc.want {
				if p >= 3 {
					wantLast = append(wantLast, p)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantLast) {
				t.Errorf("selected positions of the last chunk %v, want %v", got, wantLast)
			}
			// A single chunk selects exactly tc.want.
			one := runChunks(t, New(), cfg, pm, d, []int{0, tc.S}, false)[0]
			got = got[:0]
			for j, v := range one.Outputs["score"].Data {
				if !math.IsInf(float64(v), -1) {
					got = append(got, j)
				}
				if w := one.Outputs["w"].Data[j]; (w > 0) != !math.IsInf(float64(v), -1) {
					t.Errorf("position %d: weight %v with score %v", j, w, v)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("selected positions %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChunkedEqualsUnchunked(t *testing.T) {
	const B, S, H = 2, 23, 5
	for _, tc := range patternCases {
		for _, bounds := range [][]int{{0, 9, 10, S}, {0, 2, 17, S}, {0, 1, 2, S}} {
			t.Run(fmt.Sprint(tc.pattern, tc.opts, bounds), func(t *testing.T) {
				r := rand.New(rand.NewPCG(5, 6))
				cfg := testConfig(H, tc.pattern, tc.opts...)
				pm := randParams(t, r, cfg)
				d := randData(r, B, S, H)
				whole := runChunks(t, New(), cfg, pm, d, []int{0, S}, false)[0]
				parts := runChunks(t, New(), cfg, pm, d, bounds, false)
				for i, res := range parts {
					// after each chunk, c is the attention over the prefix seen so far
					prefix := d.slice(0, bounds[i+1])
					pd := data{e: prefix["e"], ts: prefix["timestamps"], h: d.h}
					c, w, _ := reference(cfg, pm, pd)
					checkClose(t, fmt.Sprintf("c after chunk %d", i), res.Outputs["c"].Data, c, 1e-5)
					lo, n := bounds[i], bounds[i+1]-bounds[i]
					for b := 0; b < B; b++ {
						for j := 0; j < n; j++ {
							if !near(res.Outputs["w"].Data[b*n+j], w[b][lo+j], 1e-5) {
								t.Fatalf("w after chunk %d [%d,%d] = %v, want %v", i, b, j, res.Outputs["w"].Data[b*n+j], w[b][lo+j])
							}
						}
					}
				}
				last := parts[len(parts)-1].Outputs["c"].Data
				for i, v := range whole.Outputs["c"].Data {
					if math.Abs(float64(last[i]-v)) > 1e-5*(1+math.Abs(float64(v))) {
						t.Fatalf("chunked c[%d] = %v, unchunked %v", i, last[i], v)
					}
				}
			})
		}
	}
}

// TestGradients checks Backward against finite differences of a loss on all
// three outputs, for a first chunk and for a later chunk with its carried state
// held constant (the truncated gradient).
func TestGradients(t *testing.T) {
	const B, H = 2, 4
	for _, tc := range patternCases[:5] {
		for _, bounds := range [][]int{{0, 9}, {0, 6, 9}} {
			t.Run(fmt.Sprint(tc.pattern, tc.opts, bounds), func(t *testing.T) {
				r := rand.New(rand.NewPCG(7, 8))
				cfg := testConfig(H, tc.pattern, append([]string{"window", "4"}, tc.opts...)...)
				pm := randParams(t, r, cfg)
				d := randData(r, B, bounds[len(bounds)-1], H)
				s := New()
				var state tensor.Map
				if len(bounds) > 2 {
					state = runChunks(t, s, cfg, pm, d, bounds[:len(bounds)-1], false)[len(bounds)-3].State
				}
				in := inputs(d.slice(bounds[len(bounds)-2], bounds[len(bounds)-1]))
				Sc := in["e"].Shape[1]
				rc, rw, rs := stagetest.Randn(r, B*H, 1), stagetest.Randn(r, B*Sc, 1), stagetest.Randn(r, B*Sc, 1)
				loss := func() float64 {
					res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, State: state})
					if err != nil {
						t.Fatal(err)
					}
					l := dot(res.Outputs["c"].Data, rc) + dot(res.Outputs["w"].Data, rw)
					for j, v := range res.Outputs["score"].Data {
						if !math.IsInf(float64(v), -1) {
							l += float64(v) * float64(rs[j])
						}
					}
					return l
				}
				res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, State: state, NeedGrad: true})
				if err != nil {
					t.Fatal(err)
				}
				g, err := s.Backward(context.Background(), res.Handle, tensor.Map{
					"c": tensor.From(rc, B, H), "w": tensor.From(rw, B, Sc), "score": tensor.From(rs, B, Sc),
				})
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range []string{"e", "timestamps", "h"} {
					numtest.CheckGrad(t, name, in[name].Data, g.InputGrads[name].Data, loss, 1e-3, 2e-3, 1e-2)
				}
				for _, name := range paramNames {
					numtest.CheckGrad(t, name, pm[name].Data, g.ParamGrads[name].Data, loss, 1e-3, 2e-3, 1e-2)
				}
			})
		}
	}
}

// TestGradientsPartialOutputs checks that absent output gradients count as zero.
func TestGradientsPartialOutputs(t *testing.T) {
	const B, S, H = 1, 7, 3
	r := rand.New(rand.NewPCG(9, 10))
	cfg := testConfig(H, "all")
	pm := randParams(t, r, cfg)
	d := randData(r, B, S, H)
	in := inputs(d.slice(0, S))
	s := New()
	for _, out := range []string{"c", "w"} {
		n := B * H
		shape := []int{B, H}
		if out == "w" {
			n, shape = B*S, []int{B, S}
		}
		rg := stagetest.Randn(r, n, 1)
		loss := func() float64 {
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in})
			if err != nil {
				t.Fatal(err)
			}
			return dot(res.Outputs[out].Data, rg)
		}
		res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: in, NeedGrad: true})
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.Backward(context.Background(), res.Handle, tensor.Map{out: tensor.From(rg, shape...)})
		if err != nil {
			t.Fatal(err)
		}
		numtest.CheckGrad(t, out+"→e", in["e"].Data, g.InputGrads["e"].Data, loss, 1e-3, 2e-3, 1e-2)
		numtest.CheckGrad(t, out+"→h", in["h"].Data, g.InputGrads["h"].Data, loss, 1e-3, 2e-3, 1e-2)
		numtest.CheckGrad(t, out+"→value.weight", pm["attention_value.weight"].Data, g.ParamGrads["attention_value.weight"].Data, loss, 1e-3, 2e-3, 1e-2)
	}
}

func TestDescribe(t *testing.T) {
	d, err := New().Describe(context.Background(), testConfig(8, "global_window", "window", "16"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "attention" || d.Name != "singlequery" || d.Version != "1.0.0" {
		t.Errorf("identity %s/%s/%s", d.Kind, d.Name, d.Version)
	}
	shapes := map[string]string{}
	for _, p := range d.Params {
		shapes[p.Name] = fmt.Sprintf("%v %v %v", p.Shape, p.Init, p.FanIn)
	}
	want := map[string]string{
		"time_embed.weight":      "[8 1] linear_weight 1",
		"time_embed.bias":        "[8] linear_bias 1",
		"attention_query.weight": "[8 8] linear_weight 8",
		"attention_key.bias":     "[8] linear_bias 8",
		"attention_value.weight": "[8 8] linear_weight 8",
	}
	for k, v := range want {
		if shapes[k] != v {
			t.Errorf("param %s = %q, want %q", k, shapes[k], v)
		}
	}
	if len(d.Params) != 8 {
		t.Errorf("%d params, want 8", len(d.Params))
	}
	var states []string
	for _, s := range d.State {
		states = append(states, fmt.Sprint(s.Name, s.Shape))
	}
	if got := strings.Join(states, " "); got != "offset[1] m[-1] l[-1] acc[-1 8] win_s[-1 16] win_v[-1 16 8] win_n[1]" {
		t.Errorf("state %s", got)
	}
}

func TestErrors(t *testing.T) {
	const B, S, H = 1, 5, 3
	r := rand.New(rand.NewPCG(11, 12))
	cfg := testConfig(H, "window", "window", "2")
	pm := randParams(t, r, cfg)
	d := randData(r, B, S, H)
	good := inputs(d.slice(0, S))
	s := New()
	first, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good})
	if err != nil {
		t.Fatal(err)
	}
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
	cases := []struct {
		name   string
		cfg    stage.Config
		params tensor.Map
		in     tensor.Map
		state  tensor.Map
		want   string
	}{
		{"no hidden_size", stage.Config{}, pm, good, nil, "hidden_size"},
		{"bad pattern", testConfig(H, "banded"), pm, good, nil, "pattern"},
		{"bad window", testConfig(H, "window", "window", "0"), pm, good, nil, "window"},
		{"bad stride", testConfig(H, "strided", "stride", "x"), pm, good, nil, "stride"},
		{"empty chunk", cfg, pm, with(with(good, "e", tensor.New(B, 0, H)), "timestamps", tensor.New(B, 0)), nil, "empty"},
		{"state key", cfg, pm, good, with(first.State, "extra", tensor.New(1)), "extra"},
		{"state offset", cfg, pm, good, with(first.State, "offset", tensor.From([]float32{-1}, 1)), "offset"},
		{"state win_n", cfg, pm, good, with(first.State, "win_n", tensor.From([]float32{1}, 1)), "win_n"},
		{"state l", cfg, pm, good, with(first.State, "l", tensor.From([]float32{float32(math.NaN())}, 1)), "l ="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Forward(context.Background(), tc.cfg, &stage.ForwardRequest{Params: tc.params, Inputs: tc.in, State: tc.state})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "singlequery: ") {
				t.Errorf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
	res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: good, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"h": tensor.New(B, H)}); err == nil || !strings.Contains(err.Error(), `"h"`) {
		t.Errorf("unknown output gradient: %v", err)
	}
}

func TestZeroStateIsEmpty(t *testing.T) {
	const B, S, H = 2, 6, 3
	r := rand.New(rand.NewPCG(13, 14))
	cfg := testConfig(H, "global_window", "window", "3", "global", "1")
	pm := randParams(t, r, cfg)
	d := randData(r, B, S, H)
	s := New()
	a, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: inputs(d.slice(0, S))})
	if err != nil {
		t.Fatal(err)
	}
	zero := tensor.Map{}
	for k, v := range a.State {
		zero[k] = tensor.New(v.Shape...)
	}
	b, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: inputs(d.slice(0, S)), State: zero})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range a.Outputs["c"].Data {
		if b.Outputs["c"].Data[i] != v {
			t.Fatalf("c[%d]: %v with a zero state, %v with none", i, b.Outputs["c"].Data[i], v)
		}
	}
}
