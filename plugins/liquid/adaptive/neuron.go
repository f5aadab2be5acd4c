package adaptive

import (
	"fmt"
	"math"

	"liquidlab/framework/num"
	"liquidlab/framework/tensor"
)

// neuron is the seed's AdaptiveLiquidNeuron with its stability gate, the same
// parameters under the same local names as the ltc stage (without the seed's
// warping_layer, whose output the seed discards):
//
//	a       = Lin_m(Lin_c3(relu(Lin_c0(h))))
//	f(h; x) = LN((−decay⊙h + (1+a)⊙(x·W_recᵀ) + bias) / (tau⊙σ(a)))
//	dh/dt   = σ(γ)·f(h; x)
type neuron struct {
	wRec, bias, tau, decay, lnW, lnB []float32
	w0, b0, w3, b3, wm, bm           []float32
	gate                             []float32 // [1]
}

// paramTable lists every parameter with its local name and whether it is a
// matrix [H,H] (else a vector [H], or [1] for the gate).
func (n *neuron) paramTable() []struct {
	name string
	s    *[]float32
	kind int // 0 vector [H], 1 matrix [H,H], 2 scalar [1]
} {
	type ent = struct {
		name string
		s    *[]float32
		kind int
	}
	return []ent{
		{"neuron.base_params.W_rec", &n.wRec, 1},
		{"neuron.base_params.bias", &n.bias, 0},
		{"neuron.base_params.tau", &n.tau, 0},
		{"neuron.base_params.decay", &n.decay, 0},
		{"neuron.base_params.layer_norm.weight", &n.lnW, 0},
		{"neuron.base_params.layer_norm.bias", &n.lnB, 0},
		{"neuron.context_encoder.0.weight", &n.w0, 1},
		{"neuron.context_encoder.0.bias", &n.b0, 0},
		{"neuron.context_encoder.3.weight", &n.w3, 1},
		{"neuron.context_encoder.3.bias", &n.b3, 0},
		{"neuron.param_modulator.weight", &n.wm, 1},
		{"neuron.param_modulator.bias", &n.bm, 0},
		{"stability_gate", &n.gate, 2},
	}
}

func shapeOf(kind, H int) []int {
	switch kind {
	case 1:
		return []int{H, H}
	case 2:
		return []int{1}
	}
	return []int{H}
}

// readNeuron copies the parameters out of m.
func readNeuron(m tensor.Map, H int) (*neuron, error) {
	n := &neuron{}
	for _, p := range n.paramTable() {
		t, err := m.Need(p.name, shapeOf(p.kind, H)...)
		if err != nil {
			return nil, fmt.Errorf("adaptive: parameter: %w", err)
		}
		*p.s = append([]float32(nil), t.Data...)
	}
	return n, nil
}

// zeroNeuron is a gradient buffer of the neuron's shape.
func zeroNeuron(H int) *neuron {
	n := &neuron{}
	for _, p := range n.paramTable() {
		*p.s = make([]float32, tensor.Numel(shapeOf(p.kind, H)))
	}
	return n
}

// work holds one evaluation's intermediates for B rows, for the VJP.
type work struct {
	B, H       int
	r, z2, a   []float32 // relu(Lin_c0(h)), Lin_c3(r), Lin_m(z2)
	u, y       []float32 // LN input (u/scale) and output
	scale      []float64 // [B] the divisor of each row of u (1 unless it would overflow)
	u64        []float64 // [H] scratch
	mean, rstd []float32
	du, da     []float32 // VJP scratch
	dz2, dr    []float32
}

func newWork(B, H int) *work {
	z := func(n int) []float32 { return make([]float32, n) }
	return &work{B: B, H: H, r: z(B * H), z2: z(B * H), a: z(B * H), u: z(B * H), y: z(B * H),
		scale: make([]float64, B), u64: make([]float64, H),
		mean: z(B), rstd: z(B), du: z(B * H), da: z(B * H), dz2: z(B * H), dr: z(B * H)}
}

// uScaleAbove is the largest |u| a row keeps unscaled; see eval.
const uScaleAbove = 1e15

// eval fills w at h [B,H] given mc = x·W_recᵀ [B,H]; w.y = f(h; x).
//
// u is formed in float64 and a row whose largest |u| exceeds uScaleAbove is
// divided by that value before the LayerNorm (w.scale keeps the divisor, 1
// otherwise): LN is invariant to a positive scale of its input (up to its ε,
// negligible at such variances), and a very negative a makes tau⊙σ(a)
// underflow and u overflow float32 long before f itself is large.
func (n *neuron) eval(w *work, h, mc []float32) {
	B, H := w.B, w.H
	num.LinearForward(w.r, h, n.w0, n.b0, B, H, H)
	num.ReLUInPlace(w.r)
	num.LinearForward(w.z2, w.r, n.w3, n.b3, B, H, H)
	num.LinearForward(w.a, w.z2, n.wm, n.bm, B, H, H)
	for b := 0; b < B; b++ {
		row := w.u64[:H]
		var big float64
		for i := 0; i < H; i++ {
			k := b*H + i
			a := float64(w.a[k])
			pre := -float64(n.decay[i])*float64(h[k]) + (1+a)*float64(mc[k]) + float64(n.bias[i])
			row[i] = pre / (float64(n.tau[i]) * sigmoid64(a))
			big = max(big, math.Abs(row[i]))
		}
		c := 1.0
		if big > uScaleAbove {
			c = big
		}
		w.scale[b] = c
		for i, v := range row {
			w.u[b*H+i] = float32(v / c)
		}
	}
	num.LayerNormForward(w.y, w.u, n.lnW, n.lnB, B, H, num.LNEps, w.mean, w.rstd)
}

func sigmoid64(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// vjp back-propagates dy = dL/df through the evaluation in w (made at h): adds
// to dh and dmc, and to g's parameters when g is not nil (W_rec's gradient
// goes through dmc; the caller folds it; the gate is the caller's too).
func (n *neuron) vjp(w *work, g *neuron, h, dy, dh, dmc, mc []float32) {
	B, H := w.B, w.H
	var dlnw, dlnb []float32
	if g != nil {
		dlnw, dlnb = g.lnW, g.lnB
	}
	num.LayerNormBackward(w.du, false, dlnw, dlnb, dy, w.u, n.lnW, w.mean, w.rstd, B, H)
	// w.du is dL/d(u/c); with u = c·(u/c): dL/du = du/c, and u·dL/du = (u/c)·du.
	for b := 0; b < B; b++ {
		c := w.scale[b]
		for i := 0; i < H; i++ {
			k := b*H + i
			a := float64(w.a[k])
			sa := sigmoid64(a)
			tau := float64(n.tau[i])
			du, us := float64(w.du[k]), float64(w.u[k])
			dpre := du / (c * tau * sa)
			dden := -du * us / (tau * sa) // dL/d(tau·σ(a))
			w.da[k] = float32(-du*us*(1-sa) + dpre*float64(mc[k]))
			dh[k] -= float32(float64(n.decay[i]) * dpre)
			dmc[k] += float32(dpre * (1 + a))
			if g != nil {
				g.tau[i] += float32(dden * sa)
				g.decay[i] -= float32(dpre * float64(h[k]))
				g.bias[i] += float32(dpre)
			}
		}
	}
	var gw0, gb0, gw3, gb3, gwm, gbm []float32
	if g != nil {
		gw0, gb0, gw3, gb3, gwm, gbm = g.w0, g.b0, g.w3, g.b3, g.wm, g.bm
	}
	num.LinearBackward(w.dz2, false, gwm, gbm, w.da, w.z2, n.wm, B, H, H)
	num.LinearBackward(w.dr, false, gw3, gb3, w.dz2, w.r, n.w3, B, H, H)
	num.ReLUBackward(w.dr, w.r)
	num.LinearBackward(dh, true, gw0, gb0, w.dr, h, n.w0, B, H, H)
}
