package realnvp

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
	Name    = "realnvp"
	Version = "1.0.0"
)

// Options and their defaults.
const (
	OptScaleClamp = "scale_clamp"
	OptZFrom      = "z_from"

	DefaultScaleClamp = "2"
	ZProjection       = "projection"
	ZFirst            = "first"
)

// Stage is the RealNVP flow stack. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

// dims is a parsed configuration.
type dims struct {
	D, H, L, F, K int // H = D/2
	clamp         float32
	zFrom         string
}

func parseConfig(cfg stage.Config) (dims, error) {
	var d dims
	for _, f := range []struct {
		name string
		lo   int
		dst  *int
	}{{"embedding_dim", 2, &d.D}, {"latent_dim", 1, &d.L}, {"hidden_dim", 1, &d.F}, {"num_flows", 0, &d.K}} {
		v, err := cfg.Dim(f.name)
		if err != nil {
			return d, fmt.Errorf("realnvp: %w", err)
		}
		if v < f.lo {
			return d, fmt.Errorf("realnvp: dimension %s = %d, want ≥ %d", f.name, v, f.lo)
		}
		*f.dst = v
	}
	if d.D%2 != 0 {
		return d, fmt.Errorf("realnvp: dimension embedding_dim = %d must be even (the couplings split it in halves)", d.D)
	}
	if d.L > d.D {
		return d, fmt.Errorf("realnvp: dimension latent_dim = %d exceeds embedding_dim = %d", d.L, d.D)
	}
	d.H = d.D / 2
	v := cfg.Options[OptScaleClamp]
	if v == "" {
		v = DefaultScaleClamp
	}
	c, err := strconv.ParseFloat(v, 32)
	if err != nil || !(c > 0) || math.IsInf(c, 0) {
		return d, fmt.Errorf("realnvp: option %s = %q, want a finite number > 0", OptScaleClamp, v)
	}
	d.clamp = float32(c)
	switch v := cfg.Options[OptZFrom]; v {
	case "", ZProjection:
		d.zFrom = ZProjection
	case ZFirst:
		d.zFrom = ZFirst
	default:
		return d, fmt.Errorf("realnvp: option %s = %q, want %q or %q", OptZFrom, v, ZProjection, ZFirst)
	}
	return d, nil
}

// transformsFirst says whether coupling i transforms the first half (else the
// second). The last coupling transforms the first half, so with z_from = first
// every coupling reaches z.
func (d dims) transformsFirst(i int) bool { return (d.K-1-i)%2 == 0 }

func layerName(i int, what string) string { return fmt.Sprintf("flows.%d.net.%s", i, what) }

func (d dims) params() []stage.ParamSpec {
	var ps []stage.ParamSpec
	for i := 0; i < d.K; i++ {
		ps = append(ps,
			stage.ParamSpec{Name: layerName(i, "0.weight"), Shape: []int{d.F, d.H}, Init: "linear_weight", FanIn: d.H},
			stage.ParamSpec{Name: layerName(i, "0.bias"), Shape: []int{d.F}, Init: "linear_bias", FanIn: d.H},
			// Zero output layers start every coupling at the identity (as Glow does),
			// so a deeper stack starts from the same function as a shallow one.
			stage.ParamSpec{Name: layerName(i, "2.weight"), Shape: []int{d.D, d.F}, Init: "zeros"},
			stage.ParamSpec{Name: layerName(i, "2.bias"), Shape: []int{d.D}, Init: "zeros"},
		)
	}
	if d.zFrom == ZProjection {
		ps = append(ps,
			stage.ParamSpec{Name: "out_proj.weight", Shape: []int{d.L, d.D}, Init: "linear_weight", FanIn: d.D},
			stage.ParamSpec{Name: "out_proj.bias", Shape: []int{d.L}, Init: "linear_bias", FanIn: d.D})
	}
	return ps
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	d, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	mem := &stage.MemoryHint{Saved: int64((d.K+1)*d.D + d.K*(2*d.F+d.D)), Work: int64(4*d.D + 2*d.F + d.L + 1)}
	return &stage.Description{
		Kind:    stage.KindFlows,
		Name:    Name,
		Version: Version,
		Params:  d.params(),
		Options: []stage.OptionSpec{
			{Name: OptScaleClamp, Type: "float", Default: DefaultScaleClamp,
				Help: "log-scales are C·tanh(raw/C): each coupling scales a coordinate by at most e^±C"},
			{Name: OptZFrom, Type: "string", Default: ZProjection, Choices: []string{ZProjection, ZFirst},
				Help: "z = a learned linear projection of the flow's output (projection) or its first latent_dim values (first)"},
		},
		Inputs:  []string{stage.PortX},
		Outputs: []string{stage.PortZ, stage.PortLDJ},
		Memory:  mem,
	}, nil
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("realnvp: nil forward request")
	}
	d, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	x, err := req.Inputs.Need(stage.PortX, -1, -1, d.D)
	if err != nil {
		return nil, fmt.Errorf("realnvp: input: %w", err)
	}
	B, S := x.Shape[0], x.Shape[1]
	p, err := bind(d, req.Params)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("realnvp: %w", err)
	}
	r := forward(d, p, x.Data, B*S)
	res := &stage.ForwardResult{Outputs: tensor.Map{
		stage.PortZ:   tensor.From(r.z, B, S, d.L),
		stage.PortLDJ: tensor.From(r.ldj, B, S),
	}}
	if req.NeedGrad {
		res.Handle = s.handles.Put(&saved{d: d, p: p, r: r, B: B, S: S})
	}
	return res, nil
}

type saved struct {
	d    dims
	p    *params
	r    *run
	B, S int
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("realnvp: backward: %w", err)
	}
	sv := v.(*saved)
	d, B, S := sv.d, sv.B, sv.S
	var dz, dldj []float32
	for _, name := range outGrads.Names() {
		var t *tensor.Tensor
		switch name {
		case stage.PortZ:
			if t, err = outGrads.Need(name, B, S, d.L); t != nil {
				dz = t.Data
			}
		case stage.PortLDJ:
			if t, err = outGrads.Need(name, B, S); t != nil {
				dldj = t.Data
			}
		default:
			return nil, fmt.Errorf("realnvp: backward: gradient for unknown output %q (outputs: z, ldj)", name)
		}
		if err != nil {
			return nil, fmt.Errorf("realnvp: backward: output gradient: %w", err)
		}
	}
	dx, pg := backward(d, sv.p, sv.r, B*S, dz, dldj)
	return &stage.BackwardResult{
		InputGrads: tensor.Map{stage.PortX: tensor.From(dx, B, S, d.D)},
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
