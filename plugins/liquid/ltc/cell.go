package ltc

import (
	"fmt"

	"liquidlab/framework/num"
	"liquidlab/framework/odeint"
)

// ImprovedLiquidTimeCell is the seed's ImprovedLiquidTimeCell right-hand side for
// a batch of B rows and a fixed context c:
//
//	dh/dt = σ(γ)·f(h; c)     (f: AdaptiveLiquidNeuron, γ = stability_gate)
//
// It is an odeint.Func on the flat state h [B·H]. The seed's warping_layer is
// computed and discarded there (the neuron ignores its time argument), so it is
// not evaluated here at all; its parameters exist only in the stage's
// description, without gradient. f does not depend on t.
//
// A cell is not safe for concurrent use: Eval and VJP share scratch buffers.
type ImprovedLiquidTimeCell struct {
	Neuron        *AdaptiveLiquidNeuron
	StabilityGate []float32 // [1]

	B, H  int
	c, mc []float32 // context [B,H] and c·W_recᵀ, fixed over the integration
	work  *neuronWork
	grads *CellGrads
	gmc   []float32 // dL/d(c·W_recᵀ) not yet folded into grads
}

// CellGrads are the gradients VJP accumulates.
type CellGrads struct {
	Neuron        *AdaptiveLiquidNeuron // same layout as the parameters
	StabilityGate []float32             // [1]
	C             []float32             // dL/dc [B,H]
}

var _ odeint.Func = (*ImprovedLiquidTimeCell)(nil)

// NewImprovedLiquidTimeCell returns the dynamics for context c [B,H]. The
// parameters are referenced, not copied; c is copied. With grad, VJP also
// accumulates parameter and context gradients (see Grads).
func NewImprovedLiquidTimeCell(neuron *AdaptiveLiquidNeuron, gate []float32, c []float32, B int, grad bool) (*ImprovedLiquidTimeCell, error) {
	if neuron == nil {
		return nil, fmt.Errorf("ltc: nil neuron")
	}
	H := neuron.H()
	if err := neuron.Validate(H); err != nil {
		return nil, err
	}
	if len(gate) != 1 {
		return nil, fmt.Errorf("ltc: stability_gate has %d values, want 1", len(gate))
	}
	if B <= 0 || len(c) != B*H {
		return nil, fmt.Errorf("ltc: context has %d values, want B·H = %d·%d", len(c), B, H)
	}
	cell := &ImprovedLiquidTimeCell{
		Neuron: neuron, StabilityGate: gate, B: B, H: H,
		c: append([]float32(nil), c...), mc: make([]float32, B*H), work: newNeuronWork(B, H),
	}
	num.LinearForward(cell.mc, cell.c, neuron.Base.WRec, nil, B, H, H)
	if grad {
		cell.grads = &CellGrads{Neuron: NewAdaptiveLiquidNeuron(H), StabilityGate: make([]float32, 1), C: make([]float32, B*H)}
		cell.gmc = make([]float32, B*H)
	}
	return cell, nil
}

// Eval implements odeint.Func.
func (c *ImprovedLiquidTimeCell) Eval(t float64, y, dy []float32) {
	c.Neuron.eval(c.work, y, c.mc)
	s := num.Sigmoid(c.StabilityGate[0])
	for i, v := range c.work.y {
		dy[i] = s * v
	}
}

// VJP implements odeint.Func: gy += gᵀ·∂f/∂h at h = y, and, when the cell was
// made with grad, the parameter and context gradients accumulate.
func (c *ImprovedLiquidTimeCell) VJP(t float64, y, g, gy []float32) {
	w := c.work
	c.Neuron.eval(w, y, c.mc)
	s := num.Sigmoid(c.StabilityGate[0])
	dln := w.dln
	var gg float64
	for i, v := range g {
		dln[i] = s * v
		gg += float64(v) * float64(w.y[i])
	}
	var gn *AdaptiveLiquidNeuron
	dmc := w.dmc // discarded when no gradient is wanted
	if c.grads != nil {
		c.grads.StabilityGate[0] += float32(gg) * s * (1 - s)
		gn = c.grads.Neuron
		dmc = c.gmc
	}
	c.Neuron.vjp(w, gn, y, dln, gy, dmc, c.mc)
}

// Grads folds the pending gradient of c·W_recᵀ into dL/dc and dL/dW_rec and
// returns the accumulated gradients (nil when the cell was made without grad).
// The result stays owned by the cell and keeps accumulating on later VJPs.
func (c *ImprovedLiquidTimeCell) Grads() *CellGrads {
	if c.grads == nil {
		return nil
	}
	B, H := c.B, c.H
	// mc = c·W_recᵀ: dc += gmc·W_rec, dW_rec += gmcᵀ·c
	num.LinearBackward(c.grads.C, true, c.grads.Neuron.Base.WRec, nil, c.gmc, c.c, c.Neuron.Base.WRec, B, H, H)
	clear(c.gmc)
	return c.grads
}
