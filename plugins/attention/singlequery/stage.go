package singlequery

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "singlequery"
	Version = "1.0.0"
)

// Patterns lists the values of the "pattern" option.
var Patterns = []string{"all", "window", "strided", "global_window"}

// maxOffset bounds the positions a float32 "offset" state counts exactly.
const maxOffset = 1 << 24

// Stage is the single-query attention stage. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

// options is a parsed stage.Config.
type options struct {
	H       int
	pattern string
	window  int
	stride  int
	global  int
}

func parseOptions(cfg stage.Config) (options, error) {
	var o options
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("singlequery: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("singlequery: hidden_size must be positive, got %d", h)
	}
	o.H = h
	o.pattern = "all"
	if v, ok := cfg.Options["pattern"]; ok && v != "" {
		o.pattern = v
	}
	known := false
	for _, p := range Patterns {
		known = known || p == o.pattern
	}
	if !known {
		return o, fmt.Errorf("singlequery: option pattern = %q, want one of %v", o.pattern, Patterns)
	}
	ints := []struct {
		name string
		def  int
		min  int
		dst  *int
	}{{"window", 256, 1, &o.window}, {"stride", 8, 1, &o.stride}, {"global", 16, 0, &o.global}}
	for _, it := range ints {
		*it.dst = it.def
		v, ok := cfg.Options[it.name]
		if !ok || v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("singlequery: option %s = %q is not an integer", it.name, v)
		}
		if n < it.min || n > maxOffset {
			return o, fmt.Errorf("singlequery: option %s = %d, want %d..%d", it.name, n, it.min, maxOffset)
		}
		*it.dst = n
	}
	return o, nil
}

// ring reports whether the pattern keeps a window cache.
func (o *options) ring() bool { return o.pattern == "window" || o.pattern == "global_window" }

// online reports whether position p is counted in the online softmax state
// (selected for good, whatever follows).
func (o *options) online(p int) bool {
	switch o.pattern {
	case "all":
		return true
	case "strided":
		return p%o.stride == 0
	case "global_window":
		return p < o.global
	}
	return false
}

// inRing reports whether position p, when inside the window, is counted by the
// ring (positions of the global part are counted online instead).
func (o *options) inRing(p int) bool {
	return o.ring() && p >= 0 && (o.pattern != "global_window" || p >= o.global)
}

// selected reports whether position p counts once n positions have been seen.
func (o *options) selected(p, n int) bool {
	return o.online(p) || (o.inRing(p) && p >= n-o.window)
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	lin := func(name string, in, out int) []stage.ParamSpec {
		return []stage.ParamSpec{
			{Name: name + ".weight", Shape: []int{out, in}, Init: "linear_weight", FanIn: in},
			{Name: name + ".bias", Shape: []int{out}, Init: "linear_bias", FanIn: in},
		}
	}
	var params []stage.ParamSpec
	params = append(params, lin("time_embed", 1, H)...)
	params = append(params, lin("attention_query", H, H)...)
	params = append(params, lin("attention_key", H, H)...)
	params = append(params, lin("attention_value", H, H)...)
	state := []stage.StateSpec{
		{Name: "offset", Shape: []int{1}},
		{Name: "m", Shape: []int{-1}},
		{Name: "l", Shape: []int{-1}},
		{Name: "acc", Shape: []int{-1, H}},
	}
	if o.ring() {
		state = append(state,
			stage.StateSpec{Name: "win_s", Shape: []int{-1, o.window}},
			stage.StateSpec{Name: "win_v", Shape: []int{-1, o.window, H}},
			stage.StateSpec{Name: "win_n", Shape: []int{1}})
	}
	return &stage.Description{
		Kind:    stage.KindAttention,
		Name:    Name,
		Version: Version,
		Params:  params,
		State:   state,
		Options: []stage.OptionSpec{
			{Name: "pattern", Type: "string", Default: "all", Choices: Patterns,
				Help: "positions the query attends to: all, the last `window`, every `stride`-th, or the first `global` plus the last `window`"},
			{Name: "window", Type: "int", Default: "256", Help: "window and global_window: how many of the last positions count"},
			{Name: "stride", Type: "int", Default: "8", Help: "strided: every k-th position (by global index) counts"},
			{Name: "global", Type: "int", Default: "16", Help: "global_window: the first G positions always count"},
		},
		Inputs:  []string{"e", "timestamps", "h"},
		Outputs: []string{"c", "w", "score"},
		Memory:  o.memoryHint(),
	}, nil
}

// params are the stage's parameters, by role.
type params struct {
	wt, bt, wq, bq, wk, bk, wv, bv []float32
}

func readParams(m tensor.Map, H int) (params, error) {
	var p params
	specs := []struct {
		name  string
		shape []int
		dst   *[]float32
	}{
		{"time_embed.weight", []int{H, 1}, &p.wt}, {"time_embed.bias", []int{H}, &p.bt},
		{"attention_query.weight", []int{H, H}, &p.wq}, {"attention_query.bias", []int{H}, &p.bq},
		{"attention_key.weight", []int{H, H}, &p.wk}, {"attention_key.bias", []int{H}, &p.bk},
		{"attention_value.weight", []int{H, H}, &p.wv}, {"attention_value.bias", []int{H}, &p.bv},
	}
	for _, sp := range specs {
		t, err := m.Need(sp.name, sp.shape...)
		if err != nil {
			return p, fmt.Errorf("singlequery: parameter: %w", err)
		}
		*sp.dst = t.Data
	}
	return p, nil
}

func (p params) clone() params {
	c := func(s []float32) []float32 { return append([]float32(nil), s...) }
	return params{c(p.wt), c(p.bt), c(p.wq), c(p.bq), c(p.wk), c(p.bk), c(p.wv), c(p.bv)}
}

// carry is the streaming state.
type carry struct {
	offset     int
	m, l, acc  []float32 // [B], [B], [B,H]
	winS, winV []float32 // [B,W], [B,W,H]; nil unless the pattern keeps a ring
}

func readState(m tensor.Map, o *options, B int) (*carry, error) {
	st := &carry{
		m:   make([]float32, B),
		l:   make([]float32, B),
		acc: make([]float32, B*o.H),
	}
	if o.ring() {
		st.winS = make([]float32, B*o.window)
		st.winV = make([]float32, B*o.window*o.H)
	}
	if len(m) == 0 {
		return st, nil
	}
	want := map[string][]int{"offset": {1}, "m": {B}, "l": {B}, "acc": {B, o.H}}
	if o.ring() {
		want["win_s"] = []int{B, o.window}
		want["win_v"] = []int{B, o.window, o.H}
		want["win_n"] = []int{1}
	}
	for _, name := range m.Names() {
		if _, ok := want[name]; !ok {
			return nil, fmt.Errorf("singlequery: state %q is not carried by pattern %q", name, o.pattern)
		}
	}
	got := map[string][]float32{}
	for name, shape := range want {
		t, err := m.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("singlequery: state (pattern %q): %w", o.pattern, err)
		}
		got[name] = t.Data
	}
	off := float64(got["offset"][0])
	if off < 0 || off >= maxOffset || off != math.Trunc(off) {
		return nil, fmt.Errorf("singlequery: state offset = %v, want a whole number in 0..%d", off, maxOffset-1)
	}
	st.offset = int(off)
	for b := 0; b < B; b++ {
		l, mx := got["l"][b], got["m"][b]
		if l < 0 || isBad(l) || (l > 0 && isBad(mx)) {
			return nil, fmt.Errorf("singlequery: state row %d: l = %v, m = %v, want finite values and l ≥ 0", b, l, mx)
		}
	}
	copy(st.m, got["m"])
	copy(st.l, got["l"])
	copy(st.acc, got["acc"])
	if o.ring() {
		if n := int(got["win_n"][0]); float64(got["win_n"][0]) != float64(min(st.offset, o.window)) {
			return nil, fmt.Errorf("singlequery: state win_n = %d, want min(offset, window) = %d", n, min(st.offset, o.window))
		}
		copy(st.winS, got["win_s"])
		copy(st.winV, got["win_v"])
	}
	return st, nil
}

func isBad(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

func (st *carry) toMap(o *options, B int) tensor.Map {
	m := tensor.Map{
		"offset": tensor.From([]float32{float32(st.offset)}, 1),
		"m":      tensor.From(st.m, B),
		"l":      tensor.From(st.l, B),
		"acc":    tensor.From(st.acc, B, o.H),
	}
	if o.ring() {
		m["win_s"] = tensor.From(st.winS, B, o.window)
		m["win_v"] = tensor.From(st.winV, B, o.window, o.H)
		m["win_n"] = tensor.From([]float32{float32(min(st.offset, o.window))}, 1)
	}
	return m
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("singlequery: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	e, err := req.Inputs.Need("e", -1, -1, H)
	if err != nil {
		return nil, fmt.Errorf("singlequery: input: %w", err)
	}
	B, Sc := e.Shape[0], e.Shape[1]
	if B == 0 || Sc == 0 {
		return nil, fmt.Errorf("singlequery: input e has shape %v: empty batch or chunk", e.Shape)
	}
	ts, err := req.Inputs.Need("timestamps", B, Sc)
	if err != nil {
		return nil, fmt.Errorf("singlequery: input: %w", err)
	}
	h, err := req.Inputs.Need("h", B, H)
	if err != nil {
		return nil, fmt.Errorf("singlequery: input: %w", err)
	}
	p, err := readParams(req.Params, H)
	if err != nil {
		return nil, err
	}
	st, err := readState(req.State, &o, B)
	if err != nil {
		return nil, err
	}
	if st.offset+Sc >= maxOffset {
		return nil, fmt.Errorf("singlequery: sequence longer than %d positions", maxOffset-1)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("singlequery: %w", err)
	}
	f := forward(&o, p, e.Data, ts.Data, h.Data, B, Sc, st)
	res := &stage.ForwardResult{
		Outputs: tensor.Map{
			"c":     tensor.From(f.c, B, H),
			"w":     tensor.From(f.w, B, Sc),
			"score": tensor.From(f.score, B, Sc),
		},
		State: st.toMap(&o, B),
	}
	if req.NeedGrad {
		f.p = p.clone()
		res.Handle = s.handles.Put(f)
	}
	return res, nil
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("singlequery: backward: %w", err)
	}
	f := v.(*saved)
	B, Sc, H := f.B, f.Sc, f.o.H
	want := map[string][]int{"c": {B, H}, "w": {B, Sc}, "score": {B, Sc}}
	grads := map[string][]float32{}
	for _, name := range outGrads.Names() {
		shape, ok := want[name]
		if !ok {
			return nil, fmt.Errorf("singlequery: backward: gradient for unknown output %q (outputs: c, w, score)", name)
		}
		t, err := outGrads.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("singlequery: backward: output gradient: %w", err)
		}
		grads[name] = t.Data
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("singlequery: backward: %w", err)
	}
	g := backward(f, grads["c"], grads["w"], grads["score"], stage.OutputAlloc(ctx))
	return &stage.BackwardResult{
		InputGrads: tensor.Map{
			"e":          tensor.From(g.de, B, Sc, H),
			"timestamps": tensor.From(g.dts, B, Sc),
			"h":          tensor.From(g.dh, B, H),
		},
		ParamGrads: tensor.Map{
			"time_embed.weight":      tensor.From(g.dwt, H, 1),
			"time_embed.bias":        tensor.From(g.dbt, H),
			"attention_query.weight": tensor.From(g.dwq, H, H),
			"attention_query.bias":   tensor.From(g.dbq, H),
			"attention_key.weight":   tensor.From(g.dwk, H, H),
			"attention_key.bias":     tensor.From(g.dbk, H),
			"attention_value.weight": tensor.From(g.dwv, H, H),
			"attention_value.bias":   tensor.From(g.dbv, H),
		},
	}, nil
}

// Release implements stage.Stage.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	s.handles.Drop(handle)
	return nil
}

// Live is the number of handles not yet consumed (tests use it to find leaks).
func (s *Stage) Live() int { return s.handles.Len() }

// memoryHint is the stage's memory for the host's budget: per token the time
// embedding, key, value and score it keeps for the backward, and as much again
// while it runs; per sequence the window's ring (window and global_window).
func (o *options) memoryHint() *stage.MemoryHint {
	m := &stage.MemoryHint{Saved: int64(4*o.H + 4), Work: int64(4*o.H + 4)}
	if o.ring() {
		m.Row = int64(o.window * (o.H + 1))
	}
	return m
}
