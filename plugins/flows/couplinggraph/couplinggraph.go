// Package couplinggraph is the seed's coupling flow stack (plugins/flows/coupling)
// written as a gorgonia graph with framework/graphstage: a stage of kind "flows",
// name "coupling-graph", with the same dimensions, options, parameters (names,
// shapes, aliases), inputs and outputs as "coupling", and gradients from
// gorgonia's symbolic differentiation instead of a hand-written backward pass.
// Its tests check it against the fused stage (outputs 1e-4 relative, gradients
// 1e-3) and so serve as an autodiff oracle for the fused backward. The
// function is the one in coupling's package comment.
package couplinggraph

import (
	"context"
	"fmt"
	"strconv"

	G "gorgonia.org/gorgonia"

	gs "liquidlab/framework/graphstage"
	"liquidlab/framework/stage"
	"liquidlab/plugins/flows/coupling"
)

// Name is the stage's name.
const Name = "coupling-graph"

// New returns the stage.
func New() *gs.Stage { return gs.New(gs.Spec{Describe: describe, Build: build}) }

func describe(cfg stage.Config) (*gs.Description, error) {
	d, err := coupling.New().Describe(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	d.Name = Name
	D := cfg.Dims["embedding_dim"]
	return &gs.Description{Description: *d, Shapes: map[string][]int{stage.PortX: {gs.B, gs.S, D}}}, nil
}

func boolOpt(cfg stage.Config, name string, def bool) bool {
	if v, err := strconv.ParseBool(cfg.Options[name]); err == nil {
		return v
	}
	return def // Describe has refused a value that is not a bool
}

// selector is the constant [n,k] matrix whose product keeps the first k of n
// columns (exactly: one product by 1 and sums of zeros per element).
func selector(g *G.ExprGraph, n, k int) *G.Node {
	m := make([]float32, n*k)
	for j := 0; j < k; j++ {
		m[j*k+j] = 1
	}
	return gs.Const(g, fmt.Sprintf("selector%dx%d", n, k), m, n, k)
}

// scalar returns the one value of a [1] parameter as a scalar node.
func scalar(n *G.Node) *G.Node { return G.Must(G.Sum(n)) }

// relu is (x + |x|)/2: gorgonia v0.9.18's Rectify panics in its gradient on
// these shapes.
func relu(x *G.Node) *G.Node {
	return G.Must(G.Mul(G.Must(G.Add(x, G.Must(G.Abs(x)))), G.NewConstant(float32(0.5))))
}

// net is Lin(H→F), ReLU, Lin(F→H) on x1.
func net(x1 *G.Node, p gs.Nodes, prefix string) *G.Node {
	h := relu(G.Must(gs.Linear(x1, p[prefix+".0.weight"], p[prefix+".0.bias"])))
	return G.Must(gs.Linear(h, p[prefix+".2.weight"], p[prefix+".2.bias"]))
}

func build(g *G.ExprGraph, cfg stage.Config, in, p, _ gs.Nodes) (gs.Nodes, gs.Nodes, error) {
	D, L, K := cfg.Dims["embedding_dim"], cfg.Dims["latent_dim"], cfg.Dims["num_flows"]
	H := D / 2
	share, exact := boolOpt(cfg, coupling.OptSharePar, true), boolOpt(cfg, coupling.OptExactLogdet, false)
	x := in[stage.PortX]
	Bn, S := x.Shape()[0], x.Shape()[1]
	N := Bn * S
	one := G.NewConstant(float32(1))
	res := G.NewConstant(float32(coupling.Residual))
	X := G.Must(gs.Tokens(x))
	gp := p["proj_gate"]
	proj := G.Must(gs.Linear(X, p["initial_proj.weight"], p["initial_proj.bias"]))
	x0 := G.Must(G.Add(G.Must(G.Mul(gp, proj)), G.Must(G.Mul(G.Must(G.Sub(one, gp)), X))))
	// The two halves are kept apart: gorgonia.org/tensor v0.9.24 cannot
	// materialise a column range of a matrix, while a [N,2,H] slice works.
	halves := func(v *G.Node) (*G.Node, *G.Node) {
		r := G.Must(G.Reshape(v, []int{N, 2, H}))
		return G.Must(G.Slice(r, nil, G.S(0))), G.Must(G.Slice(r, nil, G.S(1)))
	}
	x0a, x0b := halves(x0)
	a, b := x0a, x0b
	var ldj *G.Node
	for i := 0; i < K; i++ {
		src := i
		if share {
			src = 0
		}
		s := G.Must(G.Mul(G.Must(G.Tanh(net(a, p, fmt.Sprintf("flows.%d.scale_net", src)))), scalar(p[fmt.Sprintf("flows.%d.scale_adapter", i)])))
		t := G.Must(G.Mul(net(a, p, fmt.Sprintf("flows.%d.translate_net", src)), scalar(p[fmt.Sprintf("flows.%d.translate_adapter", i)])))
		gi := p[fmt.Sprintf("flows.%d.gate", i)]
		es := G.Must(G.Exp(s))
		// y2 = g·(x2⊙eˢ + t) + (1−g)·x2
		b = G.Must(G.Add(G.Must(G.Mul(gi, G.Must(G.Add(G.Must(G.HadamardProd(b, es)), t)))), G.Must(G.Mul(G.Must(G.Sub(one, gi)), b))))
		var l *G.Node
		if exact { // Σ log|1 + g·(eˢ − 1)|
			det := G.Must(G.Add(one, G.Must(G.Mul(gi, G.Must(G.Sub(es, one))))))
			l = G.Must(G.Sum(G.Must(G.Log(G.Must(G.Abs(det)))), 1))
		} else { // g·Σ s
			l = G.Must(G.Mul(gi, G.Must(G.Sum(s, 1))))
		}
		if ldj == nil {
			ldj = l
		} else {
			ldj = G.Must(G.Add(ldj, l))
		}
		if i%2 == 1 {
			a = G.Must(G.Add(a, G.Must(G.Mul(res, x0a))))
			b = G.Must(G.Add(b, G.Must(G.Mul(res, x0b))))
		}
	}
	if ldj == nil { // no layers: a zero log-determinant
		ldj = G.Must(G.Mul(G.Must(G.Sum(X, 1)), G.NewConstant(float32(0))))
	}
	// z = the first L columns of [a, b] (+ Residual·x0[:, :L] when L = H)
	var z *G.Node
	switch {
	case L == H:
		z = G.Must(G.Add(a, G.Must(G.Mul(res, x0a))))
	case L < H:
		z = G.Must(G.Mul(a, selector(g, H, L)))
	case L == D:
		z = G.Must(G.Concat(1, a, b))
	default:
		z = G.Must(G.Concat(1, a, G.Must(G.Mul(b, selector(g, H, L-H)))))
	}
	return gs.Nodes{
		stage.PortZ:   G.Must(G.Reshape(z, []int{Bn, S, L})),
		stage.PortLDJ: G.Must(G.Reshape(ldj, []int{Bn, S})),
	}, nil, nil
}
