package adaptive

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/num"
	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/timestep"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "adaptive"
	Version = "1.0.0"
)

// Step modes (option dt_mode), as the scan's.
const (
	ModeTimestamps = "timestamps"
	ModeConstant   = "constant"
)

// Option names and defaults.
const (
	OptDtMode  = "dt_mode"
	OptDtScale = "dt_scale"
	OptDtMin   = "dt_min"
	OptDtConst = "dt_const"
	OptUnfolds = "ode_unfolds"
	OptMaxStep = "max_step"

	DefaultDtScale = "64"
	DefaultDtMin   = "0.05"
	DefaultDtConst = "1"
	DefaultMethod  = "euler"
	DefaultUnfolds = "1"
	DefaultMaxStep = "0.5"
)

// Stage is the seed's adaptive liquid neuron scanned per token. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

type options struct {
	H                       int
	mode                    string
	dtScale, dtMin, dtConst float32
	ode                     odeint.Options
	unfolds                 int
	maxStep                 float64
}

func parseOptions(cfg stage.Config) (options, error) {
	o := options{mode: ModeTimestamps}
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("adaptive: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("adaptive: hidden_size must be positive, got %d", h)
	}
	o.H = h
	if v := cfg.Options[OptDtMode]; v != "" {
		if v != ModeTimestamps && v != ModeConstant {
			return o, fmt.Errorf("adaptive: option %s = %q, want %q or %q", OptDtMode, v, ModeTimestamps, ModeConstant)
		}
		o.mode = v
	}
	var maxStep float32
	for _, f := range []struct {
		name, def string
		positive  bool
		dst       *float32
	}{
		{OptDtScale, DefaultDtScale, false, &o.dtScale},
		{OptDtMin, DefaultDtMin, false, &o.dtMin},
		{OptDtConst, DefaultDtConst, true, &o.dtConst},
		{OptMaxStep, DefaultMaxStep, false, &maxStep},
	} {
		v := cfg.Options[f.name]
		if v == "" {
			v = f.def
		}
		x, err := strconv.ParseFloat(v, 32)
		if err != nil || !(x >= 0) || math.IsInf(x, 0) || (f.positive && x == 0) {
			want := "a finite number ≥ 0"
			if f.positive {
				want = "a finite number > 0"
			}
			return o, fmt.Errorf("adaptive: option %s = %q, want %s", f.name, v, want)
		}
		*f.dst = float32(x)
	}
	o.maxStep = float64(maxStep)
	v := cfg.Options[OptUnfolds]
	if v == "" {
		v = DefaultUnfolds
	}
	if o.unfolds, err = strconv.Atoi(v); err != nil || o.unfolds < 1 {
		return o, fmt.Errorf("adaptive: option %s = %q, want an integer ≥ 1", OptUnfolds, v)
	}
	opts := map[string]string{}
	for k, v := range cfg.Options {
		opts[k] = v
	}
	if opts[odeint.OptionMethod] == "" {
		opts[odeint.OptionMethod] = DefaultMethod
	}
	if o.ode, err = odeint.ParseOptions(opts); err != nil {
		return o, fmt.Errorf("adaptive: %w", err)
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
	inits := map[string]stage.Init{
		"neuron.base_params.W_rec": "normal:0.1", "neuron.base_params.bias": "zeros", "neuron.base_params.tau": "ones",
		"neuron.base_params.decay": "ones", "neuron.base_params.layer_norm.weight": "ones",
		"neuron.base_params.layer_norm.bias": "zeros", "stability_gate": "zeros",
	}
	var params []stage.ParamSpec
	for _, p := range (&neuron{}).paramTable() {
		ps := stage.ParamSpec{Name: p.name, Shape: shapeOf(p.kind, H), Init: inits[p.name]}
		if ps.Init == "" { // the encoder and modulator linears: PyTorch's default
			ps.Init, ps.FanIn = "linear_bias", H
			if p.kind == 1 {
				ps.Init = "linear_weight"
			}
		}
		params = append(params, ps)
	}
	solver := odeint.OptionSpecs("how each token's Δ_t is integrated (dh/dt = σ(γ)·f(h; e_t) over [0, Δ_t] from h_{t−1})")
	solver[0].Default = DefaultMethod
	return &stage.Description{
		Kind:    stage.KindLiquid,
		Name:    Name,
		Version: Version,
		Params:  params,
		State:   []stage.StateSpec{{Name: stage.PortH, Shape: []int{-1, H}}, {Name: "last_ts", Shape: []int{-1}}},
		Options: append([]stage.OptionSpec{
			{Name: OptDtMode, Type: "string", Default: ModeTimestamps, Choices: []string{ModeTimestamps, ModeConstant},
				Help: "elapsed time of token t: timestamps: dt_scale·(ts_t − ts_{t−1}) + dt_min; constant: dt_const"},
			{Name: OptDtScale, Type: "float", Default: DefaultDtScale, Help: "time units per unit of timestamp (dt_mode timestamps)"},
			{Name: OptDtMin, Type: "float", Default: DefaultDtMin, Help: "time every token advances at least (dt_mode timestamps)"},
			{Name: OptDtConst, Type: "float", Default: DefaultDtConst, Help: "elapsed time of every token (dt_mode constant)"},
			{Name: OptUnfolds, Type: "int", Default: DefaultUnfolds, Help: "fixed-step methods: equal steps per token's Δ_t"},
			{Name: OptMaxStep, Type: "float", Default: DefaultMaxStep,
				Help: "fixed-step methods: more steps for a token whose largest Δ_t over the batch exceeds ode_unfolds·max_step; 0 = exactly ode_unfolds"},
		}, solver...),
		Inputs:  []string{stage.PortE, stage.PortTimestamps, stage.PortH},
		Outputs: []string{stage.PortY, stage.PortH},
		// Memory: per token: the neuron's activations; while running the outputs and gradients.
		Memory: &stage.MemoryHint{Saved: int64(12 * H), Work: int64(8 * H)},
	}, nil
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("adaptive: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	ck, err := timestep.Read(timestep.Spec{Name: "adaptive", Constant: o.mode == ModeConstant, DtConst: o.dtConst, DtScale: o.dtScale, DtMin: o.dtMin}, req, H)
	if err != nil {
		return nil, err
	}
	e, ts, B, S, h0, lastTS, dt := ck.E, ck.TS, ck.B, ck.S, ck.H0, ck.LastTS, ck.Dt
	n, err := readNeuron(req.Params, H)
	if err != nil {
		return nil, err
	}
	c := &chunk{B: B, S: S, H: H, o: o, n: n, e: e.Data, dt: dt}
	nfe, acc, rej, err := c.forward(ctx, h0, req.NeedGrad)
	if err != nil {
		return nil, err
	}
	y := make([]float32, B*S*H)
	for b := 0; b < B; b++ {
		copy(y[b*S*H:(b+1)*S*H], c.hs[(b*(S+1)+1)*H:(b+1)*(S+1)*H])
	}
	hT := make([]float32, B*H)
	for b := 0; b < B; b++ {
		copy(hT[b*H:(b+1)*H], c.hs[(b*(S+1)+S)*H:])
	}
	newTS := append([]float32(nil), lastTS...)
	if ts != nil && S > 0 {
		for b := 0; b < B; b++ {
			newTS[b] = ts.Data[b*S+S-1]
		}
	}
	res := &stage.ForwardResult{
		Outputs: tensor.Map{stage.PortY: tensor.From(y, B, S, H), stage.PortH: tensor.From(hT, B, H)},
		State:   tensor.Map{stage.PortH: tensor.From(append([]float32(nil), hT...), B, H), "last_ts": tensor.From(newTS, B)},
		Stats:   map[string]float64{"nfe": float64(nfe), "accepted": float64(acc), "rejected": float64(rej)},
	}
	if req.NeedGrad {
		res.Handle = s.handles.Put(c)
	}
	return res, nil
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("adaptive: backward: %w", err)
	}
	c := v.(*chunk)
	B, S, H := c.B, c.S, c.H
	var dy, dh []float32
	for _, name := range outGrads.Names() {
		var t *tensor.Tensor
		switch name {
		case stage.PortY:
			if t, err = outGrads.Need(name, B, S, H); t != nil {
				dy = t.Data
			}
		case stage.PortH:
			if t, err = outGrads.Need(name, B, H); t != nil {
				dh = t.Data
			}
		default:
			return nil, fmt.Errorf("adaptive: backward: gradient for unknown output %q (outputs: y, h)", name)
		}
		if err != nil {
			return nil, fmt.Errorf("adaptive: backward: output gradient: %w", err)
		}
	}
	de, dh0, g, err := c.backward(ctx, dy, dh)
	if err != nil {
		return nil, err
	}
	pg := tensor.Map{}
	for _, p := range g.paramTable() {
		pg[p.name] = tensor.From(*p.s, shapeOf(p.kind, H)...)
	}
	return &stage.BackwardResult{
		InputGrads: tensor.Map{stage.PortE: tensor.From(de, B, S, H), stage.PortH: tensor.From(dh0, B, H)},
		ParamGrads: pg,
	}, nil
}

// Release implements stage.Stage.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	s.handles.Drop(handle)
	return nil
}

// Live is the number of handles not yet consumed (tests use it to find leaks).
func (s *Stage) Live() int { return s.handles.Len() }

// field is the dynamics of one token for all B rows in time s ∈ [0,1] scaled
// by each row's Δ: dh/ds = Δ_b·σ(γ)·f(h; e_t). An odeint.Func; with g set, VJP
// accumulates the parameter gradients, the gate's in dgate and dL/d(e_t·W_recᵀ)
// in dmc.
type field struct {
	B, H  int
	n     *neuron
	w     *work
	sg    float32   // σ(γ)
	mc    []float32 // [B,H] e_t·W_recᵀ
	dt    []float32 // [B]
	dln   []float32 // scratch
	g     *neuron
	dmc   []float32
	dgate float64
}

var _ odeint.Func = (*field)(nil)

func newField(c *chunk) *field {
	B, H := c.B, c.H
	return &field{B: B, H: H, n: c.n, w: newWork(B, H), sg: num.Sigmoid(c.n.gate[0]),
		mc: make([]float32, B*H), dt: make([]float32, B), dln: make([]float32, B*H)}
}

// at points the field at token t.
func (f *field) at(c *chunk, t int) {
	H, S := c.H, c.S
	for b := 0; b < c.B; b++ {
		copy(f.mc[b*H:(b+1)*H], c.mcAll[(b*S+t)*H:])
		f.dt[b] = c.dt[b*S+t]
	}
}

// Eval implements odeint.Func.
func (f *field) Eval(_ float64, h, dh []float32) {
	f.n.eval(f.w, h, f.mc)
	H := f.H
	for b := 0; b < f.B; b++ {
		k := f.dt[b] * f.sg
		for i, v := range f.w.y[b*H : (b+1)*H] {
			dh[b*H+i] = k * v
		}
	}
}

// VJP implements odeint.Func.
func (f *field) VJP(_ float64, h, g, gh []float32) {
	f.n.eval(f.w, h, f.mc)
	H := f.H
	var gg float64
	for b := 0; b < f.B; b++ {
		d := f.dt[b]
		for i := b * H; i < (b+1)*H; i++ {
			f.dln[i] = d * f.sg * g[i]
			gg += float64(d * g[i] * f.w.y[i])
		}
	}
	f.dgate += gg * float64(f.sg*(1-f.sg))
	f.n.vjp(f.w, f.g, h, f.dln, gh, f.dmc, f.mc)
}

// chunk is one forward pass: what backward reads.
type chunk struct {
	B, S, H int
	o       options
	n       *neuron
	e       []float32 // [B,S,H] input, referenced
	dt      []float32 // [B,S]
	mcAll   []float32 // [B,S,H] e·W_recᵀ
	hs      []float32 // [B,S+1,H]
	sols    []*odeint.Solution
}

// ctxEvery is how many tokens pass between checks for cancellation.
const ctxEvery = 64

// grid is token t's integration grid in scaled time (see the scan's).
func (c *chunk) grid(t int) []float64 {
	if c.o.ode.Method == "bosh3" || c.o.ode.Method == "dopri5" {
		return []float64{0, 1}
	}
	n := c.o.unfolds
	if c.o.maxStep > 0 {
		var m float32
		for b := 0; b < c.B; b++ {
			m = max(m, c.dt[b*c.S+t])
		}
		n = max(n, int(math.Ceil(float64(m)/c.o.maxStep)))
	}
	ts := make([]float64, n+1)
	for i := range ts {
		ts[i] = float64(i) / float64(n)
	}
	return ts
}

func (c *chunk) forward(ctx context.Context, h0 []float32, tape bool) (nfe, accepted, rejected int, err error) {
	B, S, H := c.B, c.S, c.H
	c.hs = make([]float32, B*(S+1)*H)
	for b := 0; b < B; b++ {
		copy(c.hs[b*(S+1)*H:][:H], h0[b*H:(b+1)*H])
	}
	c.mcAll = make([]float32, B*S*H)
	num.LinearForward(c.mcAll, c.e, c.n.wRec, nil, B*S, H, H)
	if tape {
		c.sols = make([]*odeint.Solution, S)
	}
	fl := newField(c)
	o := c.o.ode
	o.Tape = tape
	y := make([]float32, B*H)
	for t := 0; t < S; t++ {
		if t%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return 0, 0, 0, fmt.Errorf("adaptive: at token %d of %d: %w", t, S, err)
			}
		}
		for b := 0; b < B; b++ {
			copy(y[b*H:(b+1)*H], c.hs[(b*(S+1)+t)*H:])
		}
		fl.at(c, t)
		sol, err := odeint.Solve(fl, y, c.grid(t), o)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("adaptive: %s at token %d: %w", o.Method, t, err)
		}
		last := sol.Ys[len(sol.Ys)-1]
		for b := 0; b < B; b++ {
			copy(c.hs[(b*(S+1)+t+1)*H:][:H], last[b*H:(b+1)*H])
		}
		nfe, accepted, rejected = nfe+sol.Stats.NFE, accepted+sol.Stats.Accepted, rejected+sol.Stats.Rejected
		if tape {
			c.sols[t] = sol
		} else {
			sol.Recycle()
		}
	}
	return nfe, accepted, rejected, nil
}

func (c *chunk) backward(ctx context.Context, dy, dhT []float32) (de, dh0 []float32, g *neuron, err error) {
	B, S, H := c.B, c.S, c.H
	carry := make([]float32, B*H)
	if dhT != nil {
		copy(carry, dhT)
	}
	fl := newField(c)
	fl.g = zeroNeuron(H)
	fl.dmc = make([]float32, B*H)
	dmcAll := make([]float32, B*S*H)
	for t := S - 1; t >= 0; t-- {
		if t%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, fmt.Errorf("adaptive: backward at token %d of %d: %w", t, S, err)
			}
		}
		if dy != nil {
			for b := 0; b < B; b++ {
				for i, v := range dy[(b*S+t)*H:][:H] {
					carry[b*H+i] += v
				}
			}
		}
		fl.at(c, t)
		clear(fl.dmc)
		gys := make([][]float32, len(c.grid(t)))
		gys[len(gys)-1] = carry
		g0, err := c.sols[t].Backward(fl, gys)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("adaptive: backward at token %d: %w", t, err)
		}
		c.sols[t].Release()
		for b := 0; b < B; b++ {
			copy(dmcAll[(b*S+t)*H:][:H], fl.dmc[b*H:(b+1)*H])
		}
		carry = g0
	}
	g = fl.g
	g.gate[0] = float32(fl.dgate)
	de = make([]float32, B*S*H)
	// mc = e·W_recᵀ: de = dmc·W_rec, dW_rec += dmcᵀ·e
	num.LinearBackward(de, false, g.wRec, nil, dmcAll, c.e, c.n.wRec, B*S, H, H)
	return de, carry, g, nil
}
