package scan

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
	"liquidlab/framework/stage/timestep"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "scan"
	Version = "1.0.0"
)

// TauMin is added to softplus(tau_raw) so τ stays positive.
const TauMin = 1e-3

// Step modes (option dt_mode).
const (
	ModeTimestamps = "timestamps"
	ModeConstant   = "constant"
)

// Option defaults.
const (
	DefaultDtScale = "64"
	DefaultDtMin   = "0.05"
	DefaultDtConst = "1"
)

// Stage is the causal liquid time-constant scan. Use New.
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
	method                  string // MethodFused or an odeint method
	unfolds                 int
	maxStep                 float64
	ode                     odeint.Options
}

func parseOptions(cfg stage.Config) (options, error) {
	o := options{mode: ModeTimestamps}
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("scan: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("scan: hidden_size must be positive, got %d", h)
	}
	o.H = h
	if v := cfg.Options["dt_mode"]; v != "" {
		if v != ModeTimestamps && v != ModeConstant {
			return o, fmt.Errorf("scan: option dt_mode = %q, want %q or %q", v, ModeTimestamps, ModeConstant)
		}
		o.mode = v
	}
	for _, f := range []struct {
		name, def string
		positive  bool
		dst       *float32
	}{
		{"dt_scale", DefaultDtScale, false, &o.dtScale},
		{"dt_min", DefaultDtMin, false, &o.dtMin},
		{"dt_const", DefaultDtConst, true, &o.dtConst},
	} {
		v := cfg.Options[f.name]
		if v == "" {
			v = f.def
		}
		x, err := strconv.ParseFloat(v, 32)
		ok := err == nil && x >= 0 && !math.IsInf(x, 0) && (!f.positive || x > 0)
		if !ok {
			want := "a finite number ≥ 0"
			if f.positive {
				want = "a finite number > 0"
			}
			return o, fmt.Errorf("scan: option %s = %q, want %s", f.name, v, want)
		}
		*f.dst = float32(x)
	}
	if o.method, o.unfolds, o.maxStep, o.ode, err = solverOptions(cfg); err != nil {
		return o, err
	}
	return o, nil
}

// StdRecurrent is the standard deviation of recurrent.weight's initialisation,
// 1/√H, as the decimal string of its Init.
func StdRecurrent(H int) string {
	return strconv.FormatFloat(1/math.Sqrt(float64(H)), 'g', -1, 64)
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	return &stage.Description{
		Kind:    stage.KindLiquid,
		Name:    Name,
		Version: Version,
		Params: []stage.ParamSpec{
			{Name: "input.weight", Shape: []int{H, H}, Init: "linear_weight", FanIn: H},
			{Name: "input.bias", Shape: []int{H}, Init: "linear_bias", FanIn: H},
			{Name: "recurrent.weight", Shape: []int{H, H}, Init: stage.Init("normal:" + StdRecurrent(H))},
			{Name: "tau_raw", Shape: []int{H}, Init: "zeros"},
			{Name: "A", Shape: []int{H}, Init: "ones"},
		},
		State: []stage.StateSpec{{Name: "h", Shape: []int{-1, H}}, {Name: "last_ts", Shape: []int{-1}}},
		Options: append([]stage.OptionSpec{
			{Name: "dt_mode", Type: "string", Default: ModeTimestamps, Choices: []string{ModeTimestamps, ModeConstant},
				Help: "step of token t: timestamps: dt_scale·(ts_t − ts_{t−1}) + dt_min; constant: dt_const"},
			{Name: "dt_scale", Type: "float", Default: DefaultDtScale, Help: "time units per unit of timestamp (dt_mode timestamps)"},
			{Name: "dt_min", Type: "float", Default: DefaultDtMin, Help: "time every token advances at least (dt_mode timestamps)"},
			{Name: "dt_const", Type: "float", Default: DefaultDtConst, Help: "step of every token (dt_mode constant)"},
		}, solverOptionSpecs()...),
		Inputs:  []string{"e", "timestamps", "h"},
		Outputs: []string{"y", "h"},
		// Memory: per token: u, f, h and the step terms for the backward; while running the outputs and gradients.
		Memory: &stage.MemoryHint{Saved: int64(8 * H), Work: int64(8 * H)},
	}, nil
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("scan: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	ck, err := timestep.Read(timestep.Spec{Name: "scan", Constant: o.mode == ModeConstant, DtConst: o.dtConst, DtScale: o.dtScale, DtMin: o.dtMin}, req, H)
	if err != nil {
		return nil, err
	}
	e, ts, B, S, h0, lastTS, dt := ck.E, ck.TS, ck.B, ck.S, ck.H0, ck.LastTS, ck.Dt
	w, err := readWeights(req.Params, H)
	if err != nil {
		return nil, err
	}
	c := &chunk{B: B, S: S, H: H, w: w, e: e.Data, dt: dt}
	var stats map[string]float64
	if o.method == MethodFused {
		if err := c.forward(ctx, h0); err != nil {
			return nil, err
		}
	} else {
		c.ode, c.unfolds, c.maxStep = o.ode, o.unfolds, o.maxStep
		nfe, acc, rej, err := c.forwardODE(ctx, h0, req.NeedGrad)
		if err != nil {
			return nil, err
		}
		stats = map[string]float64{"nfe": float64(nfe), "accepted": float64(acc), "rejected": float64(rej)}
	}

	y := stage.OutputBuf(ctx, B*S*H)
	hT := make([]float32, B*H)
	newTS := append([]float32(nil), lastTS...)
	for b := 0; b < B; b++ {
		copy(y[b*S*H:(b+1)*S*H], c.hs[(b*(S+1)+1)*H:(b+1)*(S+1)*H])
		copy(hT[b*H:(b+1)*H], c.hs[(b*(S+1)+S)*H:][:H])
		if ts != nil && S > 0 {
			newTS[b] = ts.Data[b*S+S-1]
		}
	}
	res := &stage.ForwardResult{
		Outputs: tensor.Map{"y": tensor.From(y, B, S, H), "h": tensor.From(hT, B, H)},
		State:   tensor.Map{"h": tensor.From(append([]float32(nil), hT...), B, H), "last_ts": tensor.From(newTS, B)},
		Stats:   stats,
	}
	if req.NeedGrad {
		res.Handle = s.handles.Put(c)
	}
	return res, nil
}

// readWeights checks the parameters' shapes and copies them.
func readWeights(m tensor.Map, H int) (*weights, error) {
	var d [5][]float32
	for i, p := range []struct {
		name  string
		shape []int
	}{
		{"input.weight", []int{H, H}}, {"input.bias", []int{H}}, {"recurrent.weight", []int{H, H}},
		{"A", []int{H}}, {"tau_raw", []int{H}},
	} {
		t, err := m.Need(p.name, p.shape...)
		if err != nil {
			return nil, fmt.Errorf("scan: parameter: %w", err)
		}
		d[i] = t.Data
	}
	return newWeights(H, d[0], d[1], d[2], d[3], d[4]), nil
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("scan: backward: %w", err)
	}
	c := v.(*chunk)
	B, S, H := c.B, c.S, c.H
	var dy, dh []float32
	for _, name := range outGrads.Names() {
		var t *tensor.Tensor
		switch name {
		case "y":
			t, err = outGrads.Need("y", B, S, H)
			if t != nil {
				dy = t.Data
			}
		case "h":
			t, err = outGrads.Need("h", B, H)
			if t != nil {
				dh = t.Data
			}
		default:
			return nil, fmt.Errorf("scan: backward: gradient for unknown output %q (outputs: y, h)", name)
		}
		if err != nil {
			return nil, fmt.Errorf("scan: backward: output gradient: %w", err)
		}
	}
	var g *grads
	if c.ode.Method != "" {
		g, err = c.backwardODE(ctx, dy, dh)
	} else {
		g, err = c.backward(ctx, dy, dh)
	}
	if err != nil {
		return nil, err
	}
	return &stage.BackwardResult{
		InputGrads: tensor.Map{"e": tensor.From(g.de, B, S, H), "h": tensor.From(g.dh0, B, H)},
		ParamGrads: tensor.Map{
			"input.weight":     tensor.From(g.dWx, H, H),
			"input.bias":       tensor.From(g.dbx, H),
			"recurrent.weight": tensor.From(g.dWh, H, H),
			"tau_raw":          tensor.From(g.dTauRaw, H),
			"A":                tensor.From(g.dA, H),
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
