package odefunc

import (
	"context"
	"fmt"
	"math"

	"liquidlab/framework/num"
	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Names the stage declares.
const (
	Name    = "odefunc"
	Version = "1.0.0"

	ParamWeight   = "W_e.weight"
	ParamBias     = "W_e.bias"
	ParamBiasE    = "bias_e"
	ParamGate     = "transform_gate"
	ParamLNWeight = "layer_norm.weight"
	ParamLNBias   = "layer_norm.bias"

	InputZ     = "z"
	InputTSpan = "t_span"
	OutputE    = "e"
)

const (
	residualScale = 0.1 // e = y(t_last) + 0.1·e0
	dimLatent     = "latent_dim"
	dimHidden     = "hidden_size"
)

// Stage is the seed's embedding ODE (steps 3–4 of the seed model) as a stage.
// It carries no state between chunks; saved forward passes live in its Handles.
type Stage struct {
	stage.Handles
}

var (
	_ stage.Stage     = (*Stage)(nil)
	_ odeint.CombFunc = (*Func)(nil)
)

// New returns the stage.
func New() *Stage { return &Stage{} }

type config struct {
	l, h       int
	method     string
	rtol, atol float64
}

func dims(cfg stage.Config) (l, h int, err error) {
	if l, err = cfg.Dim(dimLatent); err != nil {
		return 0, 0, fmt.Errorf("odefunc: %w", err)
	}
	if h, err = cfg.Dim(dimHidden); err != nil {
		return 0, 0, fmt.Errorf("odefunc: %w", err)
	}
	if l <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("odefunc: %s and %s must be positive, got %d and %d", dimLatent, dimHidden, l, h)
	}
	return l, h, nil
}

func parseConfig(cfg stage.Config) (config, error) {
	l, h, err := dims(cfg)
	if err != nil {
		return config{}, err
	}
	so, err := odeint.ParseOptions(cfg.Options)
	if err != nil {
		return config{}, fmt.Errorf("odefunc: %w", err)
	}
	c := config{l: l, h: h, method: so.Method, rtol: so.RTol, atol: so.ATol}
	return c, nil
}

// Describe lists parameters (local names; the host prefixes "liquid_embedding."),
// options, inputs and outputs. transform_gate is always in the state_dict but is
// used, and receives a gradient, only when latent_dim == hidden_size.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("odefunc: describe: %w", err)
	}
	l, h, err := dims(cfg)
	if err != nil {
		return nil, err
	}
	return &stage.Description{
		Kind:    stage.KindODE,
		Name:    Name,
		Version: Version,
		Params: []stage.ParamSpec{
			{Name: ParamWeight, Shape: []int{h, l}, Init: "linear_weight", FanIn: l},
			{Name: ParamBias, Shape: []int{h}, Init: "linear_bias", FanIn: l},
			{Name: ParamBiasE, Shape: []int{h}, Init: "zeros"},
			{Name: ParamGate, Shape: []int{}, Init: "zeros", NoGrad: l != h},
			{Name: ParamLNWeight, Shape: []int{h}, Init: "ones", Aliases: []string{"ode_func.layer_norm.weight"}},
			{Name: ParamLNBias, Shape: []int{h}, Init: "zeros", Aliases: []string{"ode_func.layer_norm.bias"}},
		},
		Options: odeint.OptionSpecs("ODE solver of the embedding dynamics (the seed uses dopri5)"),
		Inputs:  []string{InputZ, InputTSpan},
		Outputs: []string{OutputE},
		Memory:  memoryHint(l, h, cfg.Options[odeint.OptionMethod]),
	}, nil
}

// saved is what Forward keeps for Backward.
type saved struct {
	bsz, seq   int
	n, l, h    int
	z          []float32 // the input (the host keeps it intact until Backward)
	w          []float32 // copy of W_e.weight
	gate       float32
	ulin       []float32 // z·W_eᵀ + b, kept only when L == H (for the gate); num's pool
	a          []float32 // LayerNorm input u + bias_e; num's pool
	mean, rstd []float32
	fn         *Func
	sol        *odeint.Solution
	nt         int
}

func (sv *saved) release() {
	if sv.sol != nil {
		sv.sol.Recycle()
		sv.sol = nil
	}
	if sv.a != nil {
		num.PutBuf(sv.a)
		sv.a = nil
	}
	if sv.ulin != nil {
		num.PutBuf(sv.ulin)
		sv.ulin = nil
	}
}

// Forward computes e = y(t_last) + 0.1·e0 with e0 = LN(u + bias_e).
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("odefunc: forward: %w", err)
	}
	if req == nil {
		return nil, fmt.Errorf("odefunc: forward: nil request")
	}
	c, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	l, h := c.l, c.h
	z, err := req.Inputs.Need(InputZ, -1, -1, l)
	if err != nil {
		return nil, fmt.Errorf("odefunc: input: %w", err)
	}
	bsz, seq := z.Shape[0], z.Shape[1]
	n := bsz * seq
	if n == 0 {
		return nil, fmt.Errorf("odefunc: input %q has shape %v: no tokens", InputZ, z.Shape)
	}
	tsT, err := req.Inputs.Need(InputTSpan, -1)
	if err != nil {
		return nil, fmt.Errorf("odefunc: input: %w", err)
	}
	ts := make([]float64, tsT.Len())
	for i, v := range tsT.Data {
		ts[i] = float64(v)
	}
	if len(ts) < 2 {
		return nil, fmt.Errorf("odefunc: input %q needs at least 2 times, got %d", InputTSpan, len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if !(ts[i] > ts[i-1]) || math.IsInf(ts[i], 0) || math.IsInf(ts[0], 0) {
			return nil, fmt.Errorf("odefunc: input %q must be finite and strictly increasing, got %v", InputTSpan, tsT.Data)
		}
	}
	p := func(name string, shape ...int) ([]float32, error) {
		t, err := req.Params.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("odefunc: parameter: %w", err)
		}
		return t.Data, nil
	}
	w, err := p(ParamWeight, h, l)
	if err != nil {
		return nil, err
	}
	b, err := p(ParamBias, h)
	if err != nil {
		return nil, err
	}
	be, err := p(ParamBiasE, h)
	if err != nil {
		return nil, err
	}
	lg, err := p(ParamLNWeight, h)
	if err != nil {
		return nil, err
	}
	lb, err := p(ParamLNBias, h)
	if err != nil {
		return nil, err
	}
	var gate float32
	if l == h {
		gt, err := req.Params.Need(ParamGate)
		if err != nil {
			return nil, fmt.Errorf("odefunc: parameter: %w", err)
		}
		if gt.Len() != 1 {
			return nil, fmt.Errorf("odefunc: parameter %q has shape %v, want a scalar", ParamGate, gt.Shape)
		}
		gate = gt.Data[0]
	}
	fn, err := NewFunc(n, h, lg, lb)
	if err != nil {
		return nil, err
	}

	// u = z·W_eᵀ + b; with L == H, u = g·u + (1−g)·z; a = u + bias_e; e0 = LN(a).
	// a, ulin and e0 come from num's buffer pool, also when training (the
	// handle gives a and ulin back): fresh 4 MB allocations on every call
	// cost a page fault per 4 KiB while the Go heap grows (a training step
	// at 4096 tokens faulted ~3,100 times in this Forward and ~4,100 in
	// Backward in the host; see the README's session 9).
	a := num.GetBuf(n * h)
	num.LinearForward(a, z.Data, w, b, n, l, h)
	var ulin []float32
	if l == h {
		if req.NeedGrad {
			ulin = append(num.GetBuf(n * h)[:0], a...)
		}
		for i, v := range a {
			a[i] = gate*v + (1-gate)*z.Data[i]
		}
	}
	num.ParallelRows(n, 2*h, func(lo, hi int) { addBias(a[lo*h:hi*h], be, hi-lo, h) })
	e0 := num.GetBuf(n * h)
	mean, rstd := make([]float32, n), make([]float32, n)
	num.LayerNormForward(e0, a, lg, lb, n, h, num.LNEps, mean, rstd)

	sol, err := odeint.Solve(fn, e0, ts, odeint.Options{Method: c.method, RTol: c.rtol, ATol: c.atol, Tape: req.NeedGrad, LastOnly: true, Stop: ctx.Err})
	if err != nil {
		num.PutBuf(a, e0)
		if ulin != nil {
			num.PutBuf(ulin)
		}
		return nil, fmt.Errorf("odefunc: integrating %d tokens with %s: %w", n, c.method, err)
	}
	yT := sol.Ys[len(sol.Ys)-1]
	e := tensor.From(stage.OutputBuf(ctx, n*h), bsz, seq, h)
	num.ParallelRows(n, 2*h, func(lo, hi int) {
		residual(e.Data[lo*h:hi*h], yT[lo*h:hi*h], e0[lo*h:hi*h], residualScale)
	})
	res := &stage.ForwardResult{
		Outputs: tensor.Map{OutputE: e},
		Stats: map[string]float64{
			"nfe":      float64(sol.Stats.NFE),
			"accepted": float64(sol.Stats.Accepted),
			"rejected": float64(sol.Stats.Rejected),
		},
	}
	num.PutBuf(e0) // the tape keeps its own copy of y0
	if !req.NeedGrad {
		sol.Recycle()
		num.PutBuf(a)
		return res, nil
	}
	res.Handle = s.Put(&saved{
		bsz: bsz, seq: seq, n: n, l: l, h: h, z: z.Data, w: append([]float32(nil), w...), gate: gate,
		ulin: ulin, a: a, mean: mean, rstd: rstd, fn: fn, sol: sol, nt: len(ts),
	})
	return res, nil
}

// Backward returns the gradient for z and for every parameter that has one. It
// releases the handle, also when it fails.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("odefunc: backward: %w", err)
	}
	sv := v.(*saved)
	defer sv.release()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("odefunc: backward: %w", err)
	}
	n, l, h := sv.n, sv.l, sv.h
	de, err := outGrads.Need(OutputE, sv.bsz, sv.seq, h)
	if err != nil {
		return nil, fmt.Errorf("odefunc: backward: output gradient: %w", err)
	}

	gys := make([][]float32, sv.nt)
	gys[sv.nt-1] = de.Data
	sv.fn.ZeroGrad()
	g0, err := sv.sol.BackwardStop(sv.fn, gys, ctx.Err)
	if err != nil {
		return nil, fmt.Errorf("odefunc: backward through the ODE solve: %w", err)
	}
	dLNw, dLNb := tensor.New(h), tensor.New(h)
	sv.fn.AddGrads(dLNw.Data, dLNb.Data)

	// e0 feeds both the ODE (g0) and the residual 0.1·e0.
	de0 := num.GetBuf(n * h)
	for i := range de0 {
		de0[i] = g0[i] + residualScale*de.Data[i]
	}
	num.PutBuf(g0)
	da := num.GetBuf(n * h)
	defer num.PutBuf(de0, da)
	num.LayerNormBackward(da, false, dLNw.Data, dLNb.Data, de0, sv.a, sv.fn.gamma, sv.mean, sv.rstd, n, h)
	dBiasE := tensor.New(h)
	num.ColSumAdd(dBiasE.Data, da, n, h)

	dz := tensor.From(stage.OutputBuf(ctx, n*l), sv.bsz, sv.seq, l)
	dW, dB := tensor.From(stage.OutputBuf(ctx, h*l), h, l), tensor.New(h)
	res := &stage.BackwardResult{
		InputGrads: tensor.Map{InputZ: dz},
		ParamGrads: tensor.Map{
			ParamWeight: dW, ParamBias: dB, ParamBiasE: dBiasE,
			ParamLNWeight: dLNw, ParamLNBias: dLNb,
		},
	}
	if l == h {
		// u = g·ulin + (1−g)·z: ∂g = Σ da·(ulin − z), ∂ulin = g·da, ∂z = (1−g)·da + …
		var dg float64
		dul := num.GetBuf(n * h)
		defer num.PutBuf(dul)
		for i, d := range da {
			dg += float64(d) * float64(sv.ulin[i]-sv.z[i])
			dul[i] = sv.gate * d
			dz.Data[i] = (1 - sv.gate) * d
		}
		res.ParamGrads[ParamGate] = tensor.From([]float32{float32(dg)})
		num.LinearBackward(dz.Data, true, dW.Data, dB.Data, dul, sv.z, sv.w, n, l, h)
	} else {
		num.LinearBackward(dz.Data, false, dW.Data, dB.Data, da, sv.z, sv.w, n, l, h)
	}
	return res, nil
}

// addBiasGo adds be to each of the rows rows of a (the pure-Go build's loop;
// the C loop of eval_cgo.go does the same operations).
func addBiasGo(a, be []float32, rows, h int) {
	for i := 0; i < rows; i++ {
		row := a[i*h : (i+1)*h]
		for j := range row {
			row[j] += be[j]
		}
	}
}

// residualGo sets e = y + s·e0 (the float32 conversion keeps Go from fusing).
func residualGo(e, y, e0 []float32, s float32) {
	for i, v := range y[:len(e)] {
		e[i] = v + float32(s*e0[i])
	}
}

// Release drops a saved forward pass; an unknown handle is not an error.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	v, err := s.Take(handle)
	if err != nil {
		return nil
	}
	v.(*saved).release()
	return nil
}

// tapeVectors is an estimate of the solver's tape per interval of t_span in
// vectors of H (odeint's doc: as many per fixed step as the method has stages,
// 6 per accepted dopri5 step and 3 per bosh3 step); the adaptive methods are
// assumed to accept 3 steps per interval.
func tapeVectors(method string) int {
	switch method {
	case "euler":
		return 1
	case "midpoint", "heun":
		return 2
	case "rk4":
		return 4
	case "bosh3":
		return 3 * 3
	default: // dopri5, the default
		return 3 * 6
	}
}

// memoryHint is the stage's memory per token for the host's budget, with the
// host's t_span of 5 times (4 intervals): the saved pass (z, the linear
// output, the LayerNorm input and statistics, the tape) and, while it runs, the
// 5 solution vectors, the function's scratch (3 H) and the backward's buffers.
func memoryHint(l, h int, method string) *stage.MemoryHint {
	return &stage.MemoryHint{Saved: int64(l + 2*h + 2 + 4*tapeVectors(method)*h), Work: int64(5*h + 3*h + 4*h + l)}
}
