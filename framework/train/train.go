// Package train holds the host's optimiser and schedule: AdamW with PyTorch's
// semantics (decoupled weight decay applied before the Adam step), a linear
// warm-up followed by StepLR decay, and global gradient-norm clipping.
//
// The optimiser owns its moment buffers, allocated on the first step, one per
// parameter with a gradient; parameters are updated in place.
package train

import (
	"math"

	"liquidlab/framework/model"
	"liquidlab/framework/num"
)

// AdamW is torch.optim.AdamW.
type AdamW struct {
	LR, WeightDecay, Beta1, Beta2, Eps float64
	step                               int
	m, v                               map[*model.Param][]float32
}

// NewAdamW returns AdamW with PyTorch's default betas and eps.
func NewAdamW(lr, weightDecay float64) *AdamW {
	return &AdamW{LR: lr, WeightDecay: weightDecay, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Steps is the number of steps taken.
func (o *AdamW) Steps() int { return o.step }

// Step updates every parameter that has a gradient, with learning rate lr.
func (o *AdamW) Step(ps *model.Params, lr float64) {
	if o.m == nil {
		o.m, o.v = map[*model.Param][]float32{}, map[*model.Param][]float32{}
	}
	o.step++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.step))
	decay := float32(1 - lr*o.WeightDecay)
	stepSize := float32(lr / bc1)
	b1, b2 := float32(o.Beta1), float32(o.Beta2)
	invSqrtBC2 := float32(1 / math.Sqrt(bc2))
	eps := float32(o.Eps)
	for _, p := range ps.List {
		if p.Grad == nil {
			continue
		}
		m, ok := o.m[p]
		if !ok {
			m = make([]float32, p.Value.Len())
			o.m[p] = m
			o.v[p] = make([]float32, p.Value.Len())
		}
		v := o.v[p]
		w, g := p.Value.Data, p.Grad.Data
		num.ParallelRows(len(w), 12, func(lo, hi int) {
			adamwKernel(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], b1, b2, decay, stepSize, invSqrtBC2, eps)
		})
	}
}

// ClipGradNorm scales every gradient so that their global L2 norm is at most
// maxNorm (as torch.nn.utils.clip_grad_norm_) and returns the norm before.
func ClipGradNorm(ps *model.Params, maxNorm float64) float64 {
	var ss float64
	for _, p := range ps.List {
		if p.Grad != nil {
			ss = p.AddGradSumSquares(ss)
		}
	}
	norm := math.Sqrt(ss)
	if maxNorm > 0 && norm > maxNorm {
		c := float32(maxNorm / (norm + 1e-6))
		for _, p := range ps.List {
			if p.Grad != nil {
				p.ScaleGrad(c)
			}
		}
	}
	return norm
}

// Schedule is a linear warm-up to LR over Warmup steps, then StepLR: the rate is
// multiplied by Gamma every StepEvery steps (0 = never).
type Schedule struct {
	LR        float64
	Warmup    int
	StepEvery int
	Gamma     float64
}

// At returns the learning rate of step t (0-based).
func (s Schedule) At(t int) float64 {
	lr := s.LR
	if s.Warmup > 0 && t < s.Warmup {
		lr *= float64(t+1) / float64(s.Warmup)
	}
	if s.StepEvery > 0 {
		lr *= math.Pow(s.Gamma, float64(t/s.StepEvery))
	}
	return lr
}

// adamwRule is one AdamW step in Go: the pure-Go build's kernel, and the bits
// the cgo build's vector paths must give (TestAdamWKernelBits).
func adamwRule(w, g, m, v []float32, b1, b2, decay, step, invSqrtBC2, eps float32) {
	for i := range w {
		gi := g[i]
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		denom := float32(math.Sqrt(float64(v[i])))*invSqrtBC2 + eps
		w[i] = w[i]*decay - step*m[i]/denom
	}
}
