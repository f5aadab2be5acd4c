package cfc

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/timestep"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "cfc"
	Version = "1.0.0"
)

// Step modes (option dt_mode), as the scan's.
const (
	ModeTimestamps = "timestamps"
	ModeConstant   = "constant"
)

// Option names and defaults.
const (
	OptBackboneLayers = "backbone_layers"
	OptBackboneUnits  = "backbone_units"
	OptDtMode         = "dt_mode"
	OptDtScale        = "dt_scale"
	OptDtMin          = "dt_min"
	OptDtConst        = "dt_const"

	DefaultBackboneLayers = "1"
	DefaultBackboneUnits  = "0" // 0 means hidden_size
	DefaultDtScale        = "64"
	DefaultDtMin          = "1"
	DefaultDtConst        = "1"
)

// Stage is the closed-form continuous-time cell scanned over the sequence. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

type options struct {
	H, U, L                 int // hidden size, backbone units, backbone layers
	mode                    string
	dtScale, dtMin, dtConst float32
}

// in0 is the width of layer 0's input [e, h].
func (o options) in0() int { return 2 * o.H }

// headIn is the width of the heads' input: the backbone's output, or [e, h].
func (o options) headIn() int {
	if o.L > 0 {
		return o.U
	}
	return o.in0()
}

func parseOptions(cfg stage.Config) (options, error) {
	o := options{mode: ModeTimestamps}
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("cfc: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("cfc: hidden_size must be positive, got %d", h)
	}
	o.H = h
	for _, f := range []struct {
		name, def string
		dst       *int
	}{{OptBackboneLayers, DefaultBackboneLayers, &o.L}, {OptBackboneUnits, DefaultBackboneUnits, &o.U}} {
		v := cfg.Options[f.name]
		if v == "" {
			v = f.def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return o, fmt.Errorf("cfc: option %s = %q, want an integer ≥ 0", f.name, v)
		}
		*f.dst = n
	}
	if o.U == 0 {
		o.U = o.H
	}
	if v := cfg.Options[OptDtMode]; v != "" {
		if v != ModeTimestamps && v != ModeConstant {
			return o, fmt.Errorf("cfc: option %s = %q, want %q or %q", OptDtMode, v, ModeTimestamps, ModeConstant)
		}
		o.mode = v
	}
	for _, f := range []struct {
		name, def string
		positive  bool
		dst       *float32
	}{
		{OptDtScale, DefaultDtScale, false, &o.dtScale},
		{OptDtMin, DefaultDtMin, false, &o.dtMin},
		{OptDtConst, DefaultDtConst, true, &o.dtConst},
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
			return o, fmt.Errorf("cfc: option %s = %q, want %s", f.name, v, want)
		}
		*f.dst = float32(x)
	}
	return o, nil
}

// Head names, in the order their rows are stacked in the packed head matrix.
var heads = [4]string{"ff1", "ff2", "time_a", "time_b"}

// backboneName is the local name of backbone layer l's tensor: ncps's
// nn.Sequential puts Linear, activation, Linear, … so layer l is entry 2l.
func backboneName(l int, what string) string { return fmt.Sprintf("backbone.%d.%s", 2*l, what) }

// xavier is ncps's init_weights (xavier_uniform_ on every matrix) as an Init.
func xavier(out, in int) stage.Init {
	b := math.Sqrt(6 / float64(out+in))
	return stage.Init("uniform:" + strconv.FormatFloat(b, 'g', -1, 64))
}

func (o options) params() []stage.ParamSpec {
	var ps []stage.ParamSpec
	in := o.in0()
	for l := 0; l < o.L; l++ {
		ps = append(ps,
			stage.ParamSpec{Name: backboneName(l, "weight"), Shape: []int{o.U, in}, Init: xavier(o.U, in)},
			stage.ParamSpec{Name: backboneName(l, "bias"), Shape: []int{o.U}, Init: "linear_bias", FanIn: in})
		in = o.U
	}
	for _, h := range heads {
		ps = append(ps,
			stage.ParamSpec{Name: h + ".weight", Shape: []int{o.H, in}, Init: xavier(o.H, in)},
			stage.ParamSpec{Name: h + ".bias", Shape: []int{o.H}, Init: "linear_bias", FanIn: in})
	}
	return ps
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
		Params:  o.params(),
		State:   []stage.StateSpec{{Name: stage.PortH, Shape: []int{-1, H}}, {Name: "last_ts", Shape: []int{-1}}},
		Options: []stage.OptionSpec{
			{Name: OptBackboneLayers, Type: "int", Default: DefaultBackboneLayers,
				Help: "dense lecun_tanh layers before the heads (ncps's backbone); 0 feeds [e, h] to the heads"},
			{Name: OptBackboneUnits, Type: "int", Default: DefaultBackboneUnits, Help: "width of the backbone layers; 0 means hidden_size"},
			{Name: OptDtMode, Type: "string", Default: ModeTimestamps, Choices: []string{ModeTimestamps, ModeConstant},
				Help: "elapsed time of token t: timestamps: dt_scale·(ts_t − ts_{t−1}) + dt_min; constant: dt_const"},
			{Name: OptDtScale, Type: "float", Default: DefaultDtScale, Help: "time units per unit of timestamp (dt_mode timestamps)"},
			{Name: OptDtMin, Type: "float", Default: DefaultDtMin, Help: "time every token advances at least (dt_mode timestamps)"},
			{Name: OptDtConst, Type: "float", Default: DefaultDtConst, Help: "elapsed time of every token (dt_mode constant)"},
		},
		Inputs:  []string{stage.PortE, stage.PortTimestamps, stage.PortH},
		Outputs: []string{stage.PortY, stage.PortH},
		// Memory: per token: the backbone and the heads' activations; while running the outputs and gradients.
		Memory: &stage.MemoryHint{Saved: int64(12 * H), Work: int64(8 * H)},
	}, nil
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("cfc: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	ck, err := timestep.Read(timestep.Spec{Name: "cfc", Constant: o.mode == ModeConstant, DtConst: o.dtConst, DtScale: o.dtScale, DtMin: o.dtMin}, req, H)
	if err != nil {
		return nil, err
	}
	e, ts, B, S, h0, lastTS, dt := ck.E, ck.TS, ck.B, ck.S, ck.H0, ck.LastTS, ck.Dt
	w, err := readWeights(req.Params, o)
	if err != nil {
		return nil, err
	}
	c := &chunk{B: B, S: S, w: w, dt: dt}
	if err := c.forward(ctx, e.Data, h0); err != nil {
		return nil, err
	}
	y := make([]float32, B*S*H)
	for t := 0; t < S; t++ {
		for b := 0; b < B; b++ {
			copy(y[(b*S+t)*H:][:H], c.hs[((t+1)*B+b)*H:][:H])
		}
	}
	hT := append([]float32(nil), c.hs[S*B*H:]...)
	newTS := append([]float32(nil), lastTS...)
	if ts != nil && S > 0 {
		for b := 0; b < B; b++ {
			newTS[b] = ts.Data[b*S+S-1]
		}
	}
	res := &stage.ForwardResult{
		Outputs: tensor.Map{stage.PortY: tensor.From(y, B, S, H), stage.PortH: tensor.From(hT, B, H)},
		State:   tensor.Map{stage.PortH: tensor.From(append([]float32(nil), hT...), B, H), "last_ts": tensor.From(newTS, B)},
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
		return nil, fmt.Errorf("cfc: backward: %w", err)
	}
	c := v.(*chunk)
	B, S, H := c.B, c.S, c.w.o.H
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
			return nil, fmt.Errorf("cfc: backward: gradient for unknown output %q (outputs: y, h)", name)
		}
		if err != nil {
			return nil, fmt.Errorf("cfc: backward: output gradient: %w", err)
		}
	}
	de, dh0, pg, err := c.backward(ctx, dy, dh)
	if err != nil {
		return nil, err
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
