package coupling

import (
	"context"
	"fmt"
	"slices"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Stage is the seed's flow dimensionality reducer as a stage.Stage. The zero
// value is not usable; call New. Safe for concurrent use.
type Stage struct {
	handles stage.Handles
}

var _ stage.Stage = (*Stage)(nil)

// New returns a Stage with no saved handles.
func New() *Stage { return &Stage{} }

// Describe validates cfg and lists the parameters, options, inputs and outputs.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	d, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &stage.Description{
		Kind:    Kind,
		Name:    Name,
		Version: Version,
		Params:  d.params(),
		Options: options(),
		Inputs:  []string{"x"},
		Outputs: []string{"z", "ldj"},
		// The tape (kernel.go): the projection and every layer's input [D],
		// the two nets' ReLU outputs [F] and their [D/2] outputs per layer;
		// while running: y, x0, the gradients [D] and one layer's nets.
		Memory: &stage.MemoryHint{Saved: int64(d.D + (d.K+1)*d.D + d.K*(2*d.F+d.D)), Work: int64(4*d.D + 2*d.F + d.L + 1)},
	}, nil
}

// saved is what a handle holds.
type saved struct {
	tp   *tape
	b, s int
}

// Forward maps x [B,S,D] to z [B,S,L] and ldj [B,S]. With req.NeedGrad it keeps
// a reference to x and its activations under the returned handle.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coupling: forward: %w", err)
	}
	if req == nil {
		return nil, fmt.Errorf("coupling: forward: nil request")
	}
	d, err := parseConfig(cfg)
	if err != nil {
		return nil, err
	}
	p, err := bind(d, req.Params)
	if err != nil {
		return nil, err
	}
	x, err := req.Inputs.Need("x", -1, -1, d.D)
	if err != nil {
		return nil, fmt.Errorf("coupling: input: %w", err)
	}
	b, sq := x.Shape[0], x.Shape[1]
	n := b * sq
	y, x0, ldj, tp := forward(d, p, x.Data, n, req.NeedGrad)
	res := &stage.ForwardResult{Outputs: tensor.Map{
		"z":   tensor.From(latent(d, y, x0, n, stage.OutputBuf(ctx, n*d.L)), b, sq, d.L),
		"ldj": tensor.From(ldj, b, sq),
	}}
	if req.NeedGrad {
		releaseY(d, y, x0)
		res.Handle = s.handles.Put(&saved{tp: tp, b: b, s: sq})
	} else {
		releaseForward(y, x0)
	}
	return res, nil
}

// Backward takes the gradients of z and ldj (either may be absent, meaning zero)
// and returns the gradient of x and of every declared parameter (shared nets
// under their flows.0 names, summed over layers). The handle is consumed, also
// when the gradients are rejected.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("coupling: backward: %w", err)
	}
	sv := v.(*saved)
	defer sv.tp.release()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("coupling: backward: %w", err)
	}
	d := sv.tp.d
	var dz, dldj []float32
	if t, ok := outGrads["z"]; ok && t != nil {
		t, err := outGrads.Need("z", sv.b, sv.s, d.L)
		if err != nil {
			return nil, fmt.Errorf("coupling: output gradient: %w", err)
		}
		dz = t.Data
	}
	if t, ok := outGrads["ldj"]; ok && t != nil {
		t, err := outGrads.Need("ldj", sv.b, sv.s)
		if err != nil {
			return nil, fmt.Errorf("coupling: output gradient: %w", err)
		}
		dldj = t.Data
	}
	pg, g := newGrads(ctx, d)
	demb := sv.tp.backward(dz, dldj, g, stage.OutputBuf(ctx, sv.b*sv.s*d.D))
	g.store(d, pg)
	return &stage.BackwardResult{
		InputGrads: tensor.Map{"x": tensor.From(demb, sv.b, sv.s, d.D)},
		ParamGrads: pg,
	}, nil
}

// Release drops a handle without a backward pass; an unknown handle is not an
// error.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	if v, err := s.handles.Take(handle); err == nil {
		v.(*saved).tp.release()
	}
	return nil
}

// newGrads allocates a zero gradient for every declared parameter, where
// the call returns its outputs (stage.OutputBuf).
func newGrads(ctx context.Context, d dims) (tensor.Map, *grads) {
	m := tensor.Map{}
	data := map[string][]float32{}
	for _, spec := range d.params() {
		n := 1
		for _, k := range spec.Shape {
			n *= k
		}
		t := &tensor.Tensor{Shape: slices.Clone(spec.Shape), Data: stage.OutputBuf(ctx, n)}
		if t.Shape == nil {
			t.Shape = []int{}
		}
		m[spec.Name] = t
		data[spec.Name] = t.Data
	}
	return m, &grads{
		set: assemble(d, data),
		das: make([]float64, d.K), dat: make([]float64, d.K), dgs: make([]float64, d.K),
	}
}

// store writes the scalar accumulators into their tensors.
func (g *grads) store(d dims, m tensor.Map) {
	m[nameProjG].Data[0] = float32(g.dgp)
	for i := 0; i < d.K; i++ {
		m[flowName(i, "scale_adapter")].Data[0] = float32(g.das[i])
		m[flowName(i, "translate_adapter")].Data[0] = float32(g.dat[i])
		m[flowName(i, "gate")].Data[0] = float32(g.dgs[i])
	}
}
