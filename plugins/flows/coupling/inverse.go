package coupling

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// maxCond is the largest condition number of g·W + (1−g)·I that
// InvertProjection accepts: beyond it float32 inputs carry no digits.
const maxCond = 1e7

// rowsOf checks that t is a [..., D] tensor and returns the number of rows.
func rowsOf(t *tensor.Tensor, D int, name string) (int, error) {
	if t == nil {
		return 0, fmt.Errorf("coupling: tensor %q is missing", name)
	}
	if len(t.Shape) == 0 || t.Shape[len(t.Shape)-1] != D {
		return 0, fmt.Errorf("coupling: tensor %q has shape %v, want [..., %d]", name, t.Shape, D)
	}
	if len(t.Data) != tensor.Numel(t.Shape) {
		return 0, fmt.Errorf("coupling: tensor %q has %d values for shape %v", name, len(t.Data), t.Shape)
	}
	return len(t.Data) / D, nil
}

func prepare(cfg stage.Config, params tensor.Map) (dims, *paramSet, error) {
	d, err := parseConfig(cfg)
	if err != nil {
		return d, nil, err
	}
	p, err := bind(d, params)
	return d, p, err
}

// Transform runs the reducer on x [..., D] without truncating it: y [..., D] is
// the coupling stack's output x_K (so z = y[..., :L], plus Residual·x0[..., :L]
// when L = D/2) and ldj [...] is the same log-determinant Forward returns.
// x → y is a bijection when the initial projection is invertible; Inverse
// undoes it. Newly allocated results; x is not modified.
func Transform(cfg stage.Config, params tensor.Map, x *tensor.Tensor) (y, ldj *tensor.Tensor, err error) {
	d, p, err := prepare(cfg, params)
	if err != nil {
		return nil, nil, err
	}
	n, err := rowsOf(x, d.D, "x")
	if err != nil {
		return nil, nil, err
	}
	yd, x0, ld, _ := forward(d, p, x.Data, n, false)
	if d.K == 0 {
		yd = append([]float32(nil), x0...)
	}
	return tensor.From(yd, x.Shape...), tensor.From(ld, x.Shape[:len(x.Shape)-1]...), nil
}

// Inverse returns emb [..., D] such that Transform(emb) = y: it is
// InvertProjection(InvertCoupling(y)). Only y is needed.
func Inverse(cfg stage.Config, params tensor.Map, y *tensor.Tensor) (*tensor.Tensor, error) {
	x0, err := InvertCoupling(cfg, params, y)
	if err != nil {
		return nil, err
	}
	return InvertProjection(cfg, params, x0)
}

// InvertCoupling inverts the coupling stack: given its output y = x_K [..., D]
// (every D columns, not only the latent ones) it returns its input x0, the
// output of the initial projection.
//
// The odd-layer residual y += Residual·x0 needs no separate x0: the first half
// is never transformed, only rescaled, so x0[:H] = y[:H] / (1 + Residual·⌊K/2⌋),
// which gives every layer's first half and hence every s and t; the second half
// of x_K is then an affine function α⊙x0[H:] + β of x0's second half, solved
// elementwise in float64. It fails when some α is 0 or not finite (a gate
// outside [0,1] can make a layer singular).
func InvertCoupling(cfg stage.Config, params tensor.Map, y *tensor.Tensor) (*tensor.Tensor, error) {
	d, p, err := prepare(cfg, params)
	if err != nil {
		return nil, err
	}
	n, err := rowsOf(y, d.D, "y")
	if err != nil {
		return nil, err
	}
	D, H, F := d.D, d.H, d.F
	x0 := make([]float32, n*D)
	x01 := make([]float32, n*H) // x0's first half
	x1 := make([]float32, n*H)  // the current layer's first half
	c := float32(1 + Residual*float64(d.K/2))
	for r := 0; r < n; r++ {
		for j := 0; j < H; j++ {
			v := y.Data[r*D+j] / c
			x0[r*D+j], x01[r*H+j], x1[r*H+j] = v, v, v
		}
	}
	alpha, beta := make([]float64, n*H), make([]float64, n*H)
	for k := range alpha {
		alpha[k] = 1
	}
	hs, ht := make([]float32, n*F), make([]float32, n*F)
	th, ut := make([]float32, n*H), make([]float32, n*H)
	for i := 0; i < d.K && n > 0; i++ {
		f := &p.flows[i]
		netForward(f.nets[0], x1, H, hs, th, n, H, F)
		netForward(f.nets[1], x1, H, ht, ut, n, H, F)
		var res float64
		if i%2 == 1 {
			res = Residual
		}
		g := float64(f.g)
		parallel(n, 40*H, func(_, lo, hi int) {
			for k := lo * H; k < hi*H; k++ {
				_, em1 := expm1(tanh32(th[k]) * f.as)
				a := 1 + g*float64(em1)
				alpha[k] = a*alpha[k] + res
				beta[k] = a*beta[k] + g*float64(ut[k]*f.at)
			}
		})
		if i%2 == 1 {
			for k, v := range x01 {
				x1[k] += v * Residual
			}
		}
	}
	for r := 0; r < n; r++ {
		for j := 0; j < H; j++ {
			a := alpha[r*H+j]
			v := (float64(y.Data[r*D+H+j]) - beta[r*H+j]) / a
			if a == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("coupling: inverse: the coupling stack is not invertible at row %d, column %d (slope %g)", r, H+j, a)
			}
			x0[r*D+H+j] = float32(v)
		}
	}
	return tensor.From(x0, y.Shape...), nil
}

// InvertProjection inverts x0 = g·Lin(emb) + (1−g)·emb, i.e. solves
// (g·W + (1−g)·I)·emb = x0 − g·b per row with an LU factorisation in float64.
// It fails when that matrix is singular or its condition number exceeds 1e7.
func InvertProjection(cfg stage.Config, params tensor.Map, x0 *tensor.Tensor) (*tensor.Tensor, error) {
	d, p, err := prepare(cfg, params)
	if err != nil {
		return nil, err
	}
	n, err := rowsOf(x0, d.D, "x0")
	if err != nil {
		return nil, err
	}
	D := d.D
	out := tensor.New(x0.Shape...)
	if n == 0 {
		return out, nil
	}
	g := float64(p.gp)
	a := mat.NewDense(D, D, nil)
	for i := 0; i < D; i++ {
		for j := 0; j < D; j++ {
			v := g * float64(p.wp[i*D+j])
			if i == j {
				v += 1 - g
			}
			a.Set(i, j, v)
		}
	}
	var lu mat.LU
	lu.Factorize(a)
	if c := lu.Cond(); !(c <= maxCond) {
		return nil, fmt.Errorf("coupling: inverse: proj_gate·initial_proj.weight + (1−proj_gate)·I is singular or ill-conditioned (condition number %g > %g)", c, maxCond)
	}
	rhs := mat.NewDense(D, n, nil)
	for r := 0; r < n; r++ {
		for j := 0; j < D; j++ {
			rhs.Set(j, r, float64(x0.Data[r*D+j])-g*float64(p.bp[j]))
		}
	}
	var sol mat.Dense
	if err := lu.SolveTo(&sol, false, rhs); err != nil {
		return nil, fmt.Errorf("coupling: inverse of the initial projection: %w", err)
	}
	for r := 0; r < n; r++ {
		for j := 0; j < D; j++ {
			out.Data[r*D+j] = float32(sol.At(j, r))
		}
	}
	return out, nil
}
