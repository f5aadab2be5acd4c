package ltc

import (
	"context"
	"fmt"

	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Identity of the stage.
const (
	Name    = "ltc"
	Version = "1.0.0"
)

// TSpan is the seed's integration grid, torch.linspace(0, 1, 5).
var TSpan = []float64{0, 0.25, 0.5, 0.75, 1}

// Stage is the liquid time cell stage. Use New.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage.
func New() *Stage { return &Stage{} }

type options struct {
	H          int
	method     string
	rtol, atol float64
}

func parseOptions(cfg stage.Config) (options, error) {
	o := options{method: "dopri5", rtol: odeint.DefaultTol, atol: odeint.DefaultTol}
	h, err := cfg.Dim("hidden_size")
	if err != nil {
		return o, fmt.Errorf("ltc: %w", err)
	}
	if h <= 0 {
		return o, fmt.Errorf("ltc: hidden_size must be positive, got %d", h)
	}
	o.H = h
	so, err := odeint.ParseOptions(cfg.Options)
	if err != nil {
		return o, fmt.Errorf("ltc: %w", err)
	}
	o.method, o.rtol, o.atol = so.Method, so.RTol, so.ATol
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
	base := map[string]stage.Init{
		"neuron.base_params.bias": "zeros", "neuron.base_params.tau": "ones", "neuron.base_params.decay": "ones",
		"neuron.base_params.layer_norm.weight": "ones", "neuron.base_params.layer_norm.bias": "zeros",
	}
	for _, t := range NewAdaptiveLiquidNeuron(H).tensors(H) {
		p := stage.ParamSpec{Name: t.name, Shape: []int{H}, Init: base[t.name]}
		switch {
		case t.name == "neuron.base_params.W_rec":
			p.Shape, p.Init = []int{H, H}, "normal:0.1"
		case t.size == H*H:
			p.Shape, p.Init, p.FanIn = []int{H, H}, "linear_weight", H
		case p.Init == "":
			p.Init, p.FanIn = "linear_bias", H
		}
		params = append(params, p)
	}
	params = append(params,
		stage.ParamSpec{Name: "warping_layer.0.weight", Shape: []int{H, H}, Init: "linear_weight", FanIn: H, NoGrad: true},
		stage.ParamSpec{Name: "warping_layer.0.bias", Shape: []int{H}, Init: "linear_bias", FanIn: H, NoGrad: true},
		stage.ParamSpec{Name: "warping_layer.3.weight", Shape: []int{1, H}, Init: "linear_weight", FanIn: H, NoGrad: true},
		stage.ParamSpec{Name: "warping_layer.3.bias", Shape: []int{1}, Init: "linear_bias", FanIn: H, NoGrad: true},
		stage.ParamSpec{Name: "stability_gate", Shape: []int{1}, Init: "zeros"},
	)
	return &stage.Description{
		Kind:    stage.KindLiquid,
		Name:    Name,
		Version: Version,
		Params:  params,
		Options: odeint.OptionSpecs("ODE solver for the cell over t_span = linspace(0, 1, 5)"),
		Inputs:  []string{"c", "h"},
		Outputs: []string{"h"},
		// Memory: the seed's cell runs once per sequence, after the last chunk, on [B,H]: its dopri5 tape (about 20 accepted steps of 6 vectors).
		Memory: &stage.MemoryHint{Row: int64(20 * 6 * o.H)},
	}, nil
}

// readNeuron copies the neuron's parameters and the stability gate out of m.
func readNeuron(m tensor.Map, H int) (*AdaptiveLiquidNeuron, []float32, error) {
	n := NewAdaptiveLiquidNeuron(H)
	for _, t := range n.tensors(H) {
		shape := []int{H}
		if t.size == H*H {
			shape = []int{H, H}
		}
		v, err := m.Need(t.name, shape...)
		if err != nil {
			return nil, nil, fmt.Errorf("ltc: parameter: %w", err)
		}
		copy(*t.s, v.Data)
	}
	g, err := m.Need("stability_gate", 1)
	if err != nil {
		return nil, nil, fmt.Errorf("ltc: parameter: %w", err)
	}
	return n, []float32{g.Data[0]}, nil
}

type saved struct {
	B, H int
	cell *ImprovedLiquidTimeCell
	sol  *odeint.Solution
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("ltc: nil forward request")
	}
	o, err := parseOptions(cfg)
	if err != nil {
		return nil, err
	}
	H := o.H
	c, err := req.Inputs.Need("c", -1, H)
	if err != nil {
		return nil, fmt.Errorf("ltc: input: %w", err)
	}
	B := c.Shape[0]
	if B == 0 {
		return nil, fmt.Errorf("ltc: input c has shape %v: empty batch", c.Shape)
	}
	h, err := req.Inputs.Need("h", B, H)
	if err != nil {
		return nil, fmt.Errorf("ltc: input: %w", err)
	}
	neuron, gate, err := readNeuron(req.Params, H)
	if err != nil {
		return nil, err
	}
	cell, err := NewImprovedLiquidTimeCell(neuron, gate, c.Data, B, req.NeedGrad)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ltc: %w", err)
	}
	sol, err := odeint.Solve(cell, h.Data, TSpan, odeint.Options{Method: o.method, RTol: o.rtol, ATol: o.atol, Tape: req.NeedGrad, Stop: ctx.Err})
	if err != nil {
		return nil, fmt.Errorf("ltc: integrating the liquid cell (method %s): %w", o.method, err)
	}
	res := &stage.ForwardResult{
		Outputs: tensor.Map{"h": tensor.From(append([]float32(nil), sol.Ys[len(sol.Ys)-1]...), B, H)},
		Stats: map[string]float64{
			"nfe": float64(sol.Stats.NFE), "accepted": float64(sol.Stats.Accepted), "rejected": float64(sol.Stats.Rejected),
		},
	}
	if req.NeedGrad {
		res.Handle = s.handles.Put(&saved{B: B, H: H, cell: cell, sol: sol})
	} else {
		sol.Release()
	}
	return res, nil
}

// Backward implements stage.Stage.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("ltc: backward: %w", err)
	}
	sv := v.(*saved)
	defer sv.sol.Release()
	B, H := sv.B, sv.H
	gys := make([][]float32, len(TSpan))
	for _, name := range outGrads.Names() {
		if name != "h" {
			return nil, fmt.Errorf("ltc: backward: gradient for unknown output %q (outputs: h)", name)
		}
		t, err := outGrads.Need("h", B, H)
		if err != nil {
			return nil, fmt.Errorf("ltc: backward: output gradient: %w", err)
		}
		gys[len(gys)-1] = t.Data
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ltc: backward: %w", err)
	}
	dh0 := make([]float32, B*H)
	if gys[len(gys)-1] != nil {
		if dh0, err = sv.sol.BackwardStop(sv.cell, gys, ctx.Err); err != nil {
			return nil, fmt.Errorf("ltc: backward through the solver: %w", err)
		}
	}
	g := sv.cell.Grads()
	pg := tensor.Map{"stability_gate": tensor.From(g.StabilityGate, 1)}
	for _, t := range g.Neuron.tensors(H) {
		shape := []int{H}
		if t.size == H*H {
			shape = []int{H, H}
		}
		pg[t.name] = tensor.From(*t.s, shape...)
	}
	return &stage.BackwardResult{
		InputGrads: tensor.Map{"c": tensor.From(g.C, B, H), "h": tensor.From(dh0, B, H)},
		ParamGrads: pg,
	}, nil
}

// Release implements stage.Stage.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	if v, err := s.handles.Take(handle); err == nil {
		v.(*saved).sol.Release()
	}
	return nil
}

// Live is the number of handles not yet consumed (tests use it to find leaks).
func (s *Stage) Live() int { return s.handles.Len() }
