package causal

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
	Name    = "causal"
	Version = "1.0.0"
)

// DefaultWindow is the default of option "window"; MaxWindow bounds it, so a typo
// cannot ask for a cache of gigabytes.
const (
	DefaultWindow = 64
	MaxWindow     = 1 << 16
)

// paramNames lists the parameters in Describe's order.
var paramNames = []string{
	"query.weight", "query.bias",
	"key.weight", "key.bias",
	"value.weight", "value.bias",
	"out.weight", "out.bias",
}

// Stage is the causal sliding-window attention stage. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

// options is a parsed stage.Config.
type options struct {
	H, W int
}

func parseOptions(cfg stage.Config) (options, error) {
	var o options
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("causal: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("causal: hidden_size must be positive, got %d", h)
	}
	o.H, o.W = h, DefaultWindow
	if v := cfg.Options["window"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return o, fmt.Errorf("causal: option window = %q is not an integer", v)
		}
		if n < 1 || n > MaxWindow {
			return o, fmt.Errorf("causal: option window = %d, want 1..%d", n, MaxWindow)
		}
		o.W = n
	}
	return o, nil
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	var params []stage.ParamSpec
	for _, name := range []string{"query", "key", "value"} {
		params = append(params,
			stage.ParamSpec{Name: name + ".weight", Shape: []int{H, H}, Init: "linear_weight", FanIn: H},
			stage.ParamSpec{Name: name + ".bias", Shape: []int{H}, Init: "linear_bias", FanIn: H})
	}
	params = append(params,
		stage.ParamSpec{Name: "out.weight", Shape: []int{H, H}, Init: "zeros"},
		stage.ParamSpec{Name: "out.bias", Shape: []int{H}, Init: "zeros"})
	return &stage.Description{
		Kind:    stage.KindAttention,
		Name:    Name,
		Version: Version,
		Params:  params,
		State: []stage.StateSpec{
			{Name: "k_cache", Shape: []int{-1, o.W, H}},
			{Name: "v_cache", Shape: []int{-1, o.W, H}},
			{Name: "n_cache", Shape: []int{1}},
		},
		Options: []stage.OptionSpec{
			{Name: "window", Type: "int", Default: strconv.Itoa(DefaultWindow),
				Help: "each token attends to itself and the previous window−1 tokens of the sequence"},
		},
		Inputs:  []string{"e", "timestamps", "h"},
		Outputs: []string{"y", "c"},
	}, nil
}

// params are the stage's parameters, by role.
type params struct {
	wq, bq, wk, bk, wv, bv, wo, bo []float32
}

func readParams(m tensor.Map, H int) (params, error) {
	var p params
	dst := []*[]float32{&p.wq, &p.bq, &p.wk, &p.bk, &p.wv, &p.bv, &p.wo, &p.bo}
	for i, name := range paramNames {
		shape := []int{H, H}
		if i%2 == 1 {
			shape = []int{H}
		}
		t, err := m.Need(name, shape...)
		if err != nil {
			return p, fmt.Errorf("causal: parameter: %w", err)
		}
		*dst[i] = t.Data
	}
	return p, nil
}

func (p params) clone() params {
	c := func(s []float32) []float32 { return append([]float32(nil), s...) }
	return params{c(p.wq), c(p.bq), c(p.wk), c(p.bk), c(p.wv), c(p.bv), c(p.wo), c(p.bo)}
}

// carry is the streaming state: the last n keys and values of each row, oldest
// first, in rows 0..n-1 of [B,W,H].
type carry struct {
	n      int
	kc, vc []float32
}

func readState(m tensor.Map, o *options, B int) (*carry, error) {
	st := &carry{}
	if len(m) == 0 {
		return st, nil
	}
	want := map[string][]int{"k_cache": {B, o.W, o.H}, "v_cache": {B, o.W, o.H}, "n_cache": {1}}
	for _, name := range m.Names() {
		if _, ok := want[name]; !ok {
			return nil, fmt.Errorf("causal: unknown state %q (state: k_cache, v_cache, n_cache)", name)
		}
	}
	got := map[string][]float32{}
	for name, shape := range want {
		t, err := m.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("causal: state (window %d): %w", o.W, err)
		}
		got[name] = t.Data
	}
	n := float64(got["n_cache"][0])
	if !(n >= 0 && n <= float64(o.W)) || n != math.Trunc(n) {
		return nil, fmt.Errorf("causal: state n_cache = %v, want a whole number in 0..%d (the window)", n, o.W)
	}
	st.n, st.kc, st.vc = int(n), got["k_cache"], got["v_cache"]
	return st, nil
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("causal: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	e, err := req.Inputs.Need("e", -1, -1, H)
	if err != nil {
		return nil, fmt.Errorf("causal: input: %w", err)
	}
	B, Sc := e.Shape[0], e.Shape[1]
	if B == 0 || Sc == 0 {
		return nil, fmt.Errorf("causal: input e has shape %v: empty batch or chunk", e.Shape)
	}
	// timestamps and h are ignored, but a wrong shape means the host is confused.
	for name, shape := range map[string][]int{"timestamps": {B, Sc}, "h": {B, H}} {
		if req.Inputs[name] == nil {
			continue
		}
		if _, err := req.Inputs.Need(name, shape...); err != nil {
			return nil, fmt.Errorf("causal: input (ignored, but checked): %w", err)
		}
	}
	p, err := readParams(req.Params, H)
	if err != nil {
		return nil, err
	}
	st, err := readState(req.State, &o, B)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("causal: %w", err)
	}
	f, y, c, next := forward(&o, p, e.Data, B, Sc, st)
	res := &stage.ForwardResult{
		Outputs: tensor.Map{"y": tensor.From(y, B, Sc, H), "c": tensor.From(c, B, H)},
		State: tensor.Map{
			"k_cache": tensor.From(next.kc, B, o.W, H),
			"v_cache": tensor.From(next.vc, B, o.W, H),
			"n_cache": tensor.From([]float32{float32(next.n)}, 1),
		},
	}
	if req.NeedGrad {
		f.p = p.clone()
		res.Handle = s.handles.Put(f)
	} else {
		f.free()
	}
	return res, nil
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("causal: backward: %w", err)
	}
	f := v.(*saved)
	defer f.free()
	B, Sc, H := f.B, f.Sc, f.o.H
	want := map[string][]int{"y": {B, Sc, H}, "c": {B, H}}
	grads := map[string][]float32{}
	for _, name := range outGrads.Names() {
		shape, ok := want[name]
		if !ok {
			return nil, fmt.Errorf("causal: backward: gradient for unknown output %q (outputs: y, c)", name)
		}
		if outGrads[name] == nil {
			continue
		}
		t, err := outGrads.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("causal: backward: output gradient: %w", err)
		}
		grads[name] = t.Data
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("causal: backward: %w", err)
	}
	g := backward(f, grads["y"], grads["c"])
	pg := tensor.Map{}
	for i, name := range paramNames {
		if i%2 == 0 {
			pg[name] = tensor.From(g.dp[i], H, H)
		} else {
			pg[name] = tensor.From(g.dp[i], H)
		}
	}
	return &stage.BackwardResult{
		InputGrads: tensor.Map{"e": tensor.From(g.de, B, Sc, H)},
		ParamGrads: pg,
	}, nil
}

// Release implements stage.Stage.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	if v, err := s.handles.Take(handle); err == nil {
		v.(*saved).free()
	}
	return nil
}

// Live is the number of handles not yet consumed (tests use it to find leaks).
func (s *Stage) Live() int { return s.handles.Len() }
