package causal

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/num"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "causal"
	Version = "1.1.0"
)

// DefaultWindow is the default of option "window"; MaxWindow bounds the
// integer options, so a typo cannot ask for a cache of gigabytes.
const (
	DefaultWindow = 64
	MaxWindow     = 1 << 16
)

// paramNames lists all parameters in Describe's order; lsh has no key.*.
var paramNames = []string{
	"query.weight", "query.bias",
	"key.weight", "key.bias",
	"value.weight", "value.bias",
	"out.weight", "out.bias",
}

// Stage is the causal attention stage. Use New.
type Stage struct {
	handles stage.Handles
	caches  owner // the growing caches handed out as state (grow.go)
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

// hasParam reports whether the pattern has parameter i of paramNames.
func (o *options) hasParam(i int) bool { return o.pattern != LSH || (i != 2 && i != 3) }

// stateSpecs is the declared state of the options' pattern.
func (o *options) stateSpecs() []stage.StateSpec {
	H := o.H
	switch o.pattern {
	case Linear:
		return []stage.StateSpec{{Name: "z_sum", Shape: []int{-1, H, o.d}}, {Name: "k_sum", Shape: []int{-1, H}}}
	case Window:
		sp := []stage.StateSpec{
			{Name: "k_cache", Shape: []int{-1, o.W, H}},
			{Name: "v_cache", Shape: []int{-1, o.W, H}},
			{Name: "n_cache", Shape: []int{1}},
		}
		if o.logScale { // the absolute position, for the queries' scale
			sp = append(sp, stage.StateSpec{Name: "pos", Shape: []int{1}})
		}
		return sp
	}
	c := o.capacity()
	return []stage.StateSpec{
		{Name: "k_cache", Shape: []int{-1, c, H}},
		{Name: "v_cache", Shape: []int{-1, c, H}},
		{Name: "n_cache", Shape: []int{1}},
		{Name: "pos", Shape: []int{1}},
	}
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	var params []stage.ParamSpec
	for i, name := range paramNames {
		if !o.hasParam(i) {
			continue
		}
		sp := stage.ParamSpec{Name: name, Shape: []int{H, H}, Init: "linear_weight", FanIn: H}
		if i%2 == 1 {
			sp.Shape, sp.Init = []int{H}, "linear_bias"
		}
		if i >= 6 {
			sp.Init, sp.FanIn = "zeros", 0
		}
		params = append(params, sp)
	}
	return &stage.Description{
		Kind:    stage.KindAttention,
		Name:    Name,
		Version: Version,
		Params:  params,
		State:   o.stateSpecs(),
		Options: append([]stage.OptionSpec(nil), optionSpecs...),
		Inputs:  []string{"e", "timestamps", "h"},
		Outputs: []string{"y", "c"},
		Memory:  o.memoryHint(),
	}, nil
}

// params are the stage's parameters, by role (wk, bk nil for lsh).
type params struct {
	wq, bq, wk, bk, wv, bv, wo, bo []float32
}

func readParams(m tensor.Map, o *options) (params, error) {
	var p params
	H := o.H
	dst := []*[]float32{&p.wq, &p.bq, &p.wk, &p.bk, &p.wv, &p.bv, &p.wo, &p.bo}
	for i, name := range paramNames {
		if !o.hasParam(i) {
			continue
		}
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
	c := func(s []float32) []float32 {
		if s == nil {
			return nil
		}
		return append([]float32(nil), s...)
	}
	return params{c(p.wq), c(p.bq), c(p.wk), c(p.bk), c(p.wv), c(p.bv), c(p.wo), c(p.bo)}
}

// carry is the streaming state. Softmax patterns: n cache rows of keys and
// values per batch row (row stride H, rows·H per batch row) and pos, the
// absolute position of the next token (for window, which needs only relative
// positions, pos = n). abs is the absolute position of the next token (window
// carries it only with qscale log). Linear: the running sums.
type carry struct {
	n, pos, rows, abs int
	kc, vc            []float32 // [B,rows,H]
	zs, ks            []float32 // linear: [B,H,d], [B,H]
}

// whole reads a state scalar that must be a whole number in 0..hi.
func whole(m map[string][]float32, name string, hi int) (int, error) {
	v := float64(m[name][0])
	if !(v >= 0 && v <= float64(hi)) || v != math.Trunc(v) {
		return 0, fmt.Errorf("causal: state %s = %v, want a whole number in 0..%d", name, v, hi)
	}
	return int(v), nil
}

func readState(m tensor.Map, o *options, B int) (*carry, error) {
	st := &carry{}
	if len(m) == 0 {
		return st, nil
	}
	specs := o.stateSpecs()
	names := ""
	for i, sp := range specs {
		if i > 0 {
			names += ", "
		}
		names += sp.Name
	}
	for _, name := range m.Names() {
		ok := false
		for _, sp := range specs {
			ok = ok || sp.Name == name
		}
		if !ok {
			return nil, fmt.Errorf("causal: unknown state %q (pattern %s state: %s)", name, o.pattern, names)
		}
	}
	got := map[string][]float32{}
	if o.pattern == Linear {
		for _, sp := range specs {
			shape := append([]int{B}, sp.Shape[1:]...)
			t, err := m.Need(sp.Name, shape...)
			if err != nil {
				return nil, fmt.Errorf("causal: state: %w", err)
			}
			got[sp.Name] = t.Data
		}
		st.zs, st.ks = got["z_sum"], got["k_sum"]
		return st, nil
	}
	for _, name := range []string{"n_cache", "pos"} {
		if o.pattern == Window && name == "pos" && !o.logScale {
			continue
		}
		t, err := m.Need(name, 1)
		if err != nil {
			return nil, fmt.Errorf("causal: state: %w", err)
		}
		got[name] = t.Data
	}
	var err error
	switch o.pattern {
	case Window:
		if st.n, err = whole(got, "n_cache", o.W); err != nil {
			return nil, err
		}
		st.pos, st.abs = st.n, st.n
		if o.logScale {
			if st.abs, err = whole(got, "pos", 1<<40); err != nil {
				return nil, err
			}
			if st.abs < st.n {
				return nil, fmt.Errorf("causal: state pos = %d is before the %d cached tokens", st.abs, st.n)
			}
		}
	default:
		if st.pos, err = whole(got, "pos", 1<<40); err != nil {
			return nil, err
		}
		want := o.cacheRows(st.pos)
		if st.n, err = whole(got, "n_cache", want); err != nil {
			return nil, err
		}
		if st.n != want {
			return nil, fmt.Errorf("causal: state n_cache = %d, want %d for pos %d (pattern %s)", st.n, want, st.pos, o.pattern)
		}
		st.abs = st.pos
	}
	st.rows = o.capacity()
	if st.rows < 0 {
		st.rows = st.n
	}
	for _, name := range []string{"k_cache", "v_cache"} {
		t, err := m.Need(name, B, st.rows, o.H)
		if err != nil {
			return nil, fmt.Errorf("causal: state (pattern %s): %w", o.pattern, err)
		}
		got[name] = t.Data
	}
	st.kc, st.vc = got["k_cache"], got["v_cache"]
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
	p, err := readParams(req.Params, &o)
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
	need, err := readRows(req, B, Sc)
	if err != nil {
		return nil, err
	}
	f, y, c, next := forward(&o, &s.caches, p, e.Data, B, Sc, st, need, stage.OutputAlloc(ctx))
	res := &stage.ForwardResult{
		Outputs: tensor.Map{"y": tensor.From(y, B, Sc, H), "c": tensor.From(c, B, H)},
		State:   next,
		Stats:   map[string]float64{"flops": f.flopsFwd, "flops_backward": f.flopsBwd, "keys_per_query": f.keysPerQuery},
	}
	if req.NeedGrad {
		f.p = p.clone()
		res.Handle = s.handles.Put(f)
	} else {
		f.free()
	}
	return res, nil
}

// readRows reads the optional input "rows" [B,Sc] (stage.PortRows): 1 where
// the host reads the output y, 0 where it does not. The positional patterns
// skip the query blocks nobody reads (their y is the output bias); the last
// row of each sequence is always computed, for c. Only without NeedGrad: a
// training pass needs every row.
func readRows(req *stage.ForwardRequest, B, Sc int) ([]float32, error) {
	if req.Inputs[stage.PortRows] == nil {
		return nil, nil
	}
	t, err := req.Inputs.Need(stage.PortRows, B, Sc)
	if err != nil {
		return nil, fmt.Errorf("causal: input: %w", err)
	}
	if req.NeedGrad {
		return nil, fmt.Errorf("causal: input %q (rows whose output is read) is for inference: a forward with NeedGrad computes every row", stage.PortRows)
	}
	need := append([]float32(nil), t.Data...)
	for b := 0; b < B; b++ {
		need[b*Sc+Sc-1] = 1
	}
	return need, nil
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
	g := backward(f, grads["y"], grads["c"], stage.OutputAlloc(ctx))
	pg := tensor.Map{}
	for i, name := range paramNames {
		if !f.o.hasParam(i) {
			continue
		}
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

var _ = strconv.Itoa
var _ = num.GetBuf

// memoryHint is the stage's memory for the host's budget: per token the
// queries, keys, values and outputs it keeps for the backward and as much
// again while it runs, plus a row of scores per head for the positions a query
// sees in one block (the window, or for full attention the keys so far, as
// state); full attention's key/value cache grows with the sequence. Its
// State of 24 H per token is calibrated, not derived: the cache is 2 H per
// token, but a training bench of attention-cost.toml's model peaked 0.52 GB
// higher at 32k tokens than at 16k (about 31 H per added token), as the
// carried state was copied from chunk to chunk. Since the cache grows in
// place (grow.go) this overestimates; an overestimate only refuses early.
func (o *options) memoryHint() *stage.MemoryHint {
	m := &stage.MemoryHint{Saved: int64(6*o.H + 2*o.heads), Work: int64(6*o.H + o.heads*max(o.W, 64))}
	switch o.pattern {
	case "full":
		m.State = int64(24 * o.H)
	default:
		m.Row = int64(2 * (o.W + o.G + 64) * o.H)
	}
	return m
}
