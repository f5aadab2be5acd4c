// Package timestep holds what the per-token liquid cells (scan, cfc, adaptive)
// share about time: the state a chunk starts from — the carried h and the
// timestamp before its first token, or the input h at the start of a
// sequence — and the elapsed time Δ of every token, from irregular timestamps
// (Δ = dt_scale·(t − t_prev) + dt_min) or a constant.
package timestep

import (
	"fmt"
	"math"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// StateLastTS is the name of the carried timestamp of a chunk's last token.
const StateLastTS = "last_ts"

// Spec says how Δ is made. Name prefixes errors (the stage's name).
type Spec struct {
	Name     string
	Constant bool    // every Δ is DtConst (timestamps unused)
	DtConst  float32 // with Constant
	DtScale  float32 // otherwise Δ = DtScale·(t − t_prev) + DtMin
	DtMin    float32
}

// InitialState returns the chunk's initial h [B,H] and the timestamp before
// its first token [B]: the carried state when there is one (both h and
// last_ts must then be present), else input "h" and zeros.
func InitialState(name string, req *stage.ForwardRequest, B, H int) (h0, lastTS []float32, err error) {
	_, hasH := req.State[stage.PortH]
	_, hasTS := req.State[StateLastTS]
	if hasH || hasTS {
		st, err := req.State.Need(stage.PortH, B, H)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: carried state: %w", name, err)
		}
		lt, err := req.State.Need(StateLastTS, B)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: carried state: %w", name, err)
		}
		return st.Data, lt.Data, nil
	}
	h, err := req.Inputs.Need(stage.PortH, B, H)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: input (the initial state, needed while no state is carried): %w", name, err)
	}
	return h.Data, make([]float32, B), nil
}

// Steps returns Δ [B,S] for the chunk's timestamps ts [B,S] (unused when
// s.Constant) after lastTS [B]. A negative or non-finite Δ (timestamps going
// back by more than dt_min/dt_scale, or NaN) would run a cell's dynamics
// backwards or make its step unstable, so it is an error naming the token.
func Steps(s Spec, ts *tensor.Tensor, lastTS []float32, B, S int) ([]float32, error) {
	dt := make([]float32, B*S)
	if s.Constant {
		for i := range dt {
			dt[i] = s.DtConst
		}
		return dt, nil
	}
	for b := 0; b < B; b++ {
		prev := lastTS[b]
		for t := 0; t < S; t++ {
			cur := ts.Data[b*S+t]
			d := s.DtScale*(cur-prev) + s.DtMin
			if !(d >= 0) || math.IsInf(float64(d), 0) {
				return nil, fmt.Errorf("%s: input %q[%d,%d] = %v after %v gives the step Δ = %v: "+
					"timestamps must be finite and must not decrease by more than dt_min/dt_scale", s.Name, stage.PortTimestamps, b, t, cur, prev, d)
			}
			dt[b*S+t] = d
			prev = cur
		}
	}
	return dt, nil
}

// Chunk is what a per-token liquid cell reads from a Forward request before
// its own parameters: e [B,S,H], the timestamps (nil when Δ is constant and
// none were given), the initial state and every token's Δ.
type Chunk struct {
	E      *tensor.Tensor
	TS     *tensor.Tensor
	B, S   int
	H0     []float32 // [B,H]
	LastTS []float32 // [B], the timestamp before the first token
	Dt     []float32 // [B,S]
}

// Read checks and reads a chunk's inputs and carried state (see Chunk).
func Read(s Spec, req *stage.ForwardRequest, H int) (*Chunk, error) {
	e, err := req.Inputs.Need(stage.PortE, -1, -1, H)
	if err != nil {
		return nil, fmt.Errorf("%s: input: %w", s.Name, err)
	}
	c := &Chunk{E: e, B: e.Shape[0], S: e.Shape[1]}
	if c.B == 0 {
		return nil, fmt.Errorf("%s: input %q has shape %v: empty batch", s.Name, stage.PortE, e.Shape)
	}
	if !s.Constant || req.Inputs[stage.PortTimestamps] != nil {
		if c.TS, err = req.Inputs.Need(stage.PortTimestamps, c.B, c.S); err != nil {
			return nil, fmt.Errorf("%s: input: %w", s.Name, err)
		}
	}
	if c.H0, c.LastTS, err = InitialState(s.Name, req, c.B, H); err != nil {
		return nil, err
	}
	if c.Dt, err = Steps(s, c.TS, c.LastTS, c.B, c.S); err != nil {
		return nil, err
	}
	return c, nil
}
