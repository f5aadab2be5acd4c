package ltc

import (
	"fmt"
	"math"
	"math/rand/v2"

	"liquidlab/framework/num"
)

// Linear is a PyTorch nn.Linear: y = x·Wᵀ + B, W stored [out, in].
type Linear struct {
	W, B []float32
}

// LiquidNeuron holds the seed's base parameters (class LiquidNeuron), each [H]
// except WRec [H,H].
type LiquidNeuron struct {
	WRec, Bias, Tau, Decay, LNWeight, LNBias []float32
}

// AdaptiveLiquidNeuron is the seed's AdaptiveLiquidNeuron:
//
//	a    = Lin_m(Lin_c3(relu(Lin_c0(h))))
//	f(h; c) = LN((−decay⊙h + (1+a)⊙(c·W_recᵀ) + bias) / (tau⊙σ(a)))
//
// The seed multiplies W_rec by (1+a) into a B×H×H tensor first; scaling the rows
// of c·W_recᵀ is the same value without it. Dropout is off (eval mode).
type AdaptiveLiquidNeuron struct {
	Base      LiquidNeuron
	Encoder0  Linear // context_encoder.0, H→H
	Encoder3  Linear // context_encoder.3, H→H
	Modulator Linear // param_modulator, H→H
}

// NewAdaptiveLiquidNeuron returns a neuron of width H with every value zero
// (the shape of a gradient buffer); InitSeed gives the seed's initial values.
func NewAdaptiveLiquidNeuron(H int) *AdaptiveLiquidNeuron {
	z := func(n int) []float32 { return make([]float32, n) }
	lin := func() Linear { return Linear{W: z(H * H), B: z(H)} }
	return &AdaptiveLiquidNeuron{
		Base:     LiquidNeuron{WRec: z(H * H), Bias: z(H), Tau: z(H), Decay: z(H), LNWeight: z(H), LNBias: z(H)},
		Encoder0: lin(), Encoder3: lin(), Modulator: lin(),
	}
}

// InitSeed sets the seed's initial values: W_rec ~ N(0, 0.1²), bias 0, tau and
// decay 1, LayerNorm weight 1 and bias 0, the linears as PyTorch's default
// (uniform ±1/√H).
func (n *AdaptiveLiquidNeuron) InitSeed(r *rand.Rand) {
	H := n.H()
	for i := range n.Base.WRec {
		n.Base.WRec[i] = float32(r.NormFloat64() * 0.1)
	}
	for i := 0; i < H; i++ {
		n.Base.Bias[i], n.Base.Tau[i], n.Base.Decay[i] = 0, 1, 1
		n.Base.LNWeight[i], n.Base.LNBias[i] = 1, 0
	}
	bound := 1 / math.Sqrt(float64(H))
	for _, l := range []Linear{n.Encoder0, n.Encoder3, n.Modulator} {
		for _, s := range [][]float32{l.W, l.B} {
			for i := range s {
				s[i] = float32((2*r.Float64() - 1) * bound)
			}
		}
	}
}

// H is the neuron's width.
func (n *AdaptiveLiquidNeuron) H() int { return len(n.Base.Bias) }

// tensors lists every parameter slice with its local name and its length at
// width H.
func (n *AdaptiveLiquidNeuron) tensors(H int) []struct {
	name string
	s    *[]float32
	size int
} {
	type ent = struct {
		name string
		s    *[]float32
		size int
	}
	return []ent{
		{"neuron.base_params.W_rec", &n.Base.WRec, H * H},
		{"neuron.base_params.bias", &n.Base.Bias, H},
		{"neuron.base_params.tau", &n.Base.Tau, H},
		{"neuron.base_params.decay", &n.Base.Decay, H},
		{"neuron.base_params.layer_norm.weight", &n.Base.LNWeight, H},
		{"neuron.base_params.layer_norm.bias", &n.Base.LNBias, H},
		{"neuron.context_encoder.0.weight", &n.Encoder0.W, H * H},
		{"neuron.context_encoder.0.bias", &n.Encoder0.B, H},
		{"neuron.context_encoder.3.weight", &n.Encoder3.W, H * H},
		{"neuron.context_encoder.3.bias", &n.Encoder3.B, H},
		{"neuron.param_modulator.weight", &n.Modulator.W, H * H},
		{"neuron.param_modulator.bias", &n.Modulator.B, H},
	}
}

// Validate checks that every parameter has the size width H asks for.
func (n *AdaptiveLiquidNeuron) Validate(H int) error {
	if H <= 0 {
		return fmt.Errorf("ltc: neuron width %d, want > 0", H)
	}
	for _, t := range n.tensors(H) {
		if len(*t.s) != t.size {
			return fmt.Errorf("ltc: neuron parameter %s has %d values, want %d for width %d", t.name, len(*t.s), t.size, H)
		}
	}
	return nil
}

// Forward writes f(h; c) for a batch of B rows into out [B,H]. h and c are [B,H].
// Lengths must agree with the neuron's width (Validate); it panics otherwise.
func (n *AdaptiveLiquidNeuron) Forward(h, c []float32, B int, out []float32) {
	H := n.H()
	mc := make([]float32, B*H)
	num.LinearForward(mc, c, n.Base.WRec, nil, B, H, H)
	w := newNeuronWork(B, H)
	n.eval(w, h, mc)
	copy(out[:B*H], w.y)
}

// neuronWork holds one evaluation's intermediates, for the VJP.
type neuronWork struct {
	B, H       int
	r, z2, a   []float32 // relu(Lin_c0(h)), Lin_c3(r), Lin_m(z2)
	u, y       []float32 // LN input and output
	mean, rstd []float32
	// VJP scratch
	du, da, dz2, dr []float32
	dln, dmc        []float32 // the cell's dL/d(LN output), and dL/dmc when not kept
}

func newNeuronWork(B, H int) *neuronWork {
	z := func(n int) []float32 { return make([]float32, n) }
	return &neuronWork{B: B, H: H, r: z(B * H), z2: z(B * H), a: z(B * H), u: z(B * H), y: z(B * H),
		mean: z(B), rstd: z(B), du: z(B * H), da: z(B * H), dz2: z(B * H), dr: z(B * H),
		dln: z(B * H), dmc: z(B * H)}
}

// eval fills w with the evaluation at h, given mc = c·W_recᵀ; w.y = f(h; c).
func (n *AdaptiveLiquidNeuron) eval(w *neuronWork, h, mc []float32) {
	B, H := w.B, w.H
	bp := &n.Base
	num.LinearForward(w.r, h, n.Encoder0.W, n.Encoder0.B, B, H, H)
	num.ReLUInPlace(w.r)
	num.LinearForward(w.z2, w.r, n.Encoder3.W, n.Encoder3.B, B, H, H)
	num.LinearForward(w.a, w.z2, n.Modulator.W, n.Modulator.B, B, H, H)
	for b := 0; b < B; b++ {
		for i := 0; i < H; i++ {
			k := b*H + i
			a := w.a[k]
			pre := -bp.Decay[i]*h[k] + (1+a)*mc[k] + bp.Bias[i]
			w.u[k] = pre / (bp.Tau[i] * num.Sigmoid(a))
		}
	}
	num.LayerNormForward(w.y, w.u, bp.LNWeight, bp.LNBias, B, H, num.LNEps, w.mean, w.rstd)
}

// vjp back-propagates dy (= dL/df) through the evaluation in w (made at h):
// adds to dh and dmc, and to grad's parameters when grad is non-nil (W_rec's
// gradient goes through dmc; the caller folds it).
func (n *AdaptiveLiquidNeuron) vjp(w *neuronWork, grad *AdaptiveLiquidNeuron, h, dy, dh, dmc, mc []float32) {
	B, H := w.B, w.H
	bp := &n.Base
	var gb *LiquidNeuron
	var dlnw, dlnb []float32
	if grad != nil {
		gb = &grad.Base
		dlnw, dlnb = gb.LNWeight, gb.LNBias
	}
	num.LayerNormBackward(w.du, false, dlnw, dlnb, dy, w.u, bp.LNWeight, w.mean, w.rstd, B, H)
	for b := 0; b < B; b++ {
		for i := 0; i < H; i++ {
			k := b*H + i
			a := w.a[k]
			sa := num.Sigmoid(a)
			den := bp.Tau[i] * sa
			du, u := w.du[k], w.u[k]
			dpre := du / den
			dden := -du * u / den
			w.da[k] = dden*bp.Tau[i]*sa*(1-sa) + dpre*mc[k]
			dh[k] -= bp.Decay[i] * dpre
			dmc[k] += dpre * (1 + a)
			if gb != nil {
				gb.Tau[i] += dden * sa
				gb.Decay[i] -= dpre * h[k]
				gb.Bias[i] += dpre
			}
		}
	}
	var g0, g3, gm Linear
	if grad != nil {
		g0, g3, gm = grad.Encoder0, grad.Encoder3, grad.Modulator
	}
	num.LinearBackward(w.dz2, false, gm.W, gm.B, w.da, w.z2, n.Modulator.W, B, H, H)
	num.LinearBackward(w.dr, false, g3.W, g3.B, w.dz2, w.r, n.Encoder3.W, B, H, H)
	num.ReLUBackward(w.dr, w.r)
	num.LinearBackward(dh, true, g0.W, g0.B, w.dr, h, n.Encoder0.W, B, H, H)
}
