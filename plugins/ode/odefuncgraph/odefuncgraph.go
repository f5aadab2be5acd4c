// Package odefuncgraph is the seed's embedding ODE (plugins/ode/odefunc) written
// as a gorgonia graph with framework/graphstage, with a fixed-step solver
// (euler, midpoint, heun, rk4 — torchdiffeq's 3/8 rule) unrolled over t_span: a
// stage of kind "ode", name "odefunc-graph", with odefunc's parameters, inputs
// and outputs and gradients from gorgonia's symbolic differentiation. The
// adaptive methods (dopri5, bosh3) are refused: their step sizes depend on the
// data. GELU's erf is Abramowitz–Stegun 7.1.26 (absolute error ≤ 1.5e-7).
package odefuncgraph

import (
	"context"
	"fmt"
	"math"
	"slices"

	G "gorgonia.org/gorgonia"

	gs "liquidlab/framework/graphstage"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/ode/odefunc"
)

// Name is the stage's name.
const Name = "odefunc-graph"

// New returns the stage.
func New() *gs.Stage { return gs.New(gs.Spec{Describe: describe, Build: build, Check: check}) }

// check refuses integration times that are not finite and strictly increasing.
func check(_ stage.Config, in tensor.Map) error {
	ts := in[odefunc.InputTSpan].Data
	if len(ts) < 2 {
		return fmt.Errorf("%s: input %q has %d points, want ≥ 2", Name, odefunc.InputTSpan, len(ts))
	}
	for i, v := range ts {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || (i > 0 && !(v > ts[i-1])) {
			return fmt.Errorf("%s: input %q = %v must be finite and strictly increasing", Name, odefunc.InputTSpan, ts)
		}
	}
	return nil
}

// tableaus of the fixed-step methods: a (lower triangle) and b.
var tableaus = map[string]struct {
	a [][]float64
	b []float64
}{
	"euler":    {[][]float64{{}}, []float64{1}},
	"midpoint": {[][]float64{{}, {0.5}}, []float64{0, 1}},
	"heun":     {[][]float64{{}, {1}}, []float64{0.5, 0.5}},
	"rk4":      {[][]float64{{}, {1.0 / 3}, {-1.0 / 3, 1}, {1, -1, 1}}, []float64{1.0 / 8, 3.0 / 8, 3.0 / 8, 1.0 / 8}},
}

// defaultMethod is odefunc-graph's default method: odefunc's (dopri5) does
// not unroll into a graph.
const defaultMethod = "rk4"

func method(cfg stage.Config) string {
	if m := cfg.Options["method"]; m != "" {
		return m
	}
	return defaultMethod
}

func describe(cfg stage.Config) (*gs.Description, error) {
	d, err := odefunc.New().Describe(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if _, ok := tableaus[method(cfg)]; !ok {
		return nil, fmt.Errorf("%s: option method = %q: only the fixed-step euler, midpoint, heun and rk4 unroll into a graph", Name, method(cfg))
	}
	d.Name = Name
	d.Options = slices.Clone(d.Options)
	for i, o := range d.Options {
		if o.Name == "method" {
			o.Default, o.Choices = defaultMethod, []string{"euler", "midpoint", "heun", "rk4"}
			o.Help = "fixed-step solver unrolled in the graph: euler, midpoint, heun or rk4 (the adaptive methods' step sizes depend on the data)"
			d.Options[i] = o
		}
	}
	return &gs.Description{Description: *d, NoGrad: []string{odefunc.InputTSpan},
		Shapes: map[string][]int{odefunc.InputZ: {gs.B, gs.S, cfg.Dims["latent_dim"]}, odefunc.InputTSpan: {gs.Any}}}, nil
}

func c32(v float64) *G.Node { return G.NewConstant(float32(v)) }

func must(n *G.Node, err error) *G.Node { return G.Must(n, err) }

// rowBcast applies op to x [N,H] and a per-row v [N], spread along H by an
// outer product with ones [1,H] (a matrix product, where gorgonia's
// broadcasting repeats values one row at a time: a fifth of the forward pass).
func rowBcast(op func(a, b *G.Node) (*G.Node, error), x, v, ones *G.Node) *G.Node {
	return must(op(x, must(G.Mul(must(G.Reshape(v, []int{v.Shape()[0], 1})), ones))))
}

// layerNorm normalises the rows of x [N,H] (eps 1e-5) with weight γ and bias β [H].
func layerNorm(x, gamma, beta, ones *G.Node) *G.Node {
	c := rowBcast(G.Sub, x, must(G.Mean(x, 1)), ones)
	rstd := must(G.Inverse(must(G.Sqrt(must(G.Add(must(G.Mean(must(G.Square(c)), 1)), c32(1e-5)))))))
	y := rowBcast(G.HadamardProd, c, rstd, ones)
	return must(G.BroadcastAdd(must(G.BroadcastHadamardProd(y, gamma, nil, []byte{0})), beta, nil, []byte{0}))
}

// gelu is x·Φ(x) = x/2 + |x|/2·erf(|x|/√2), erf by Abramowitz–Stegun 7.1.26 on u ≥ 0.
func gelu(x *G.Node) *G.Node {
	ax := must(G.Abs(x))
	u := must(G.Mul(ax, c32(1/math.Sqrt2)))
	t := must(G.Inverse(must(G.Add(c32(1), must(G.Mul(u, c32(0.3275911)))))))
	poly := must(G.Add(must(G.Mul(t, c32(1.061405429))), c32(-1.453152027)))
	for _, a := range []float64{1.421413741, -0.284496736, 0.254829592} {
		poly = must(G.Add(must(G.HadamardProd(t, poly)), c32(a)))
	}
	poly = must(G.HadamardProd(poly, t))
	erf := must(G.Sub(c32(1), must(G.HadamardProd(poly, must(G.Exp(must(G.Neg(must(G.Square(u))))))))))
	return must(G.Add(must(G.Mul(x, c32(0.5))), must(G.Mul(must(G.HadamardProd(ax, erf)), c32(0.5)))))
}

// f is the seed's ODEFunc on the rows of y [N,H]:
// LN(−0.001·‖y‖·y + 0.8·tanh(y) + 0.2·gelu(y)).
func f(y, gamma, beta, ones *G.Node) *G.Node {
	norm := must(G.Sqrt(must(G.Sum(must(G.Square(y)), 1))))
	x := must(G.Mul(rowBcast(G.HadamardProd, y, norm, ones), c32(-0.001)))
	x = must(G.Add(x, must(G.Mul(must(G.Tanh(y)), c32(0.8)))))
	x = must(G.Add(x, must(G.Mul(gelu(y), c32(0.2)))))
	return layerNorm(x, gamma, beta, ones)
}

func build(g *G.ExprGraph, cfg stage.Config, in, p, _ gs.Nodes) (gs.Nodes, gs.Nodes, error) {
	z, tspan := in[odefunc.InputZ], in[odefunc.InputTSpan]
	Bn, S, L := z.Shape()[0], z.Shape()[1], z.Shape()[2]
	H, T := cfg.Dims["hidden_size"], tspan.Shape()[0]
	if T < 2 {
		return nil, nil, fmt.Errorf("%s: input t_span has %d points, want ≥ 2", Name, T)
	}
	gamma, beta := p[odefunc.ParamLNWeight], p[odefunc.ParamLNBias]
	Z := must(gs.Tokens(z))
	u := must(gs.Linear(Z, p[odefunc.ParamWeight], p[odefunc.ParamBias]))
	if L == H {
		gt := p[odefunc.ParamGate]
		u = must(G.Add(must(G.Mul(gt, u)), must(G.Mul(must(G.Sub(c32(1), gt)), Z))))
	}
	ones := make([]float32, H)
	for i := range ones {
		ones[i] = 1
	}
	onesH := gs.Const(g, "ones", ones, 1, H)
	e0 := layerNorm(must(G.BroadcastAdd(u, p[odefunc.ParamBiasE], nil, []byte{0})), gamma, beta, onesH)
	// t_span's points as scalars, through products with one-hot constants
	ts := make([]*G.Node, T)
	for i := range ts {
		oh := make([]float32, T)
		oh[i] = 1
		ts[i] = must(G.Sum(must(G.HadamardProd(tspan, gs.Const(g, fmt.Sprintf("t%d", i), oh, T)))))
	}
	tab := tableaus[method(cfg)]
	y := e0
	for i := 0; i+1 < T; i++ {
		dt := must(G.Sub(ts[i+1], ts[i]))
		ks := make([]*G.Node, len(tab.b))
		for s := range ks {
			ys := y
			for j, a := range tab.a[s] {
				if a != 0 {
					ys = must(G.Add(ys, must(G.Mul(must(G.Mul(ks[j], dt)), c32(a)))))
				}
			}
			ks[s] = f(ys, gamma, beta, onesH)
		}
		for s, b := range tab.b {
			if b != 0 {
				y = must(G.Add(y, must(G.Mul(must(G.Mul(ks[s], dt)), c32(b)))))
			}
		}
	}
	e := must(G.Add(y, must(G.Mul(e0, c32(0.1)))))
	return gs.Nodes{odefunc.OutputE: must(G.Reshape(e, []int{Bn, S, H}))}, nil, nil
}
