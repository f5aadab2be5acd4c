package graphstage

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"
)

// Linear is PyTorch's nn.Linear on the rows of x: x·Wᵀ + b for x [N,in],
// w [out,in] and b [out] (b may be nil).
func Linear(x, w, b *G.Node) (*G.Node, error) {
	wt, err := G.Transpose(w)
	if err != nil {
		return nil, fmt.Errorf("linear: %w", err)
	}
	y, err := G.Mul(x, wt)
	if err != nil {
		return nil, fmt.Errorf("linear: %w", err)
	}
	if b == nil {
		return y, nil
	}
	if y, err = G.BroadcastAdd(y, b, nil, []byte{0}); err != nil {
		return nil, fmt.Errorf("linear: bias: %w", err)
	}
	return y, nil
}

// Tokens reshapes x [B,S,D] to [B·S,D], one row per token.
func Tokens(x *G.Node) (*G.Node, error) {
	sh := x.Shape()
	if len(sh) != 3 {
		return nil, fmt.Errorf("tokens: %s has shape %v, want [B,S,D]", x.Name(), sh)
	}
	return G.Reshape(x, []int{sh[0] * sh[1], sh[2]})
}

// Const adds a constant float32 tensor of the given shape to g as a named,
// value-bound node that is never differentiated. Use it instead of
// gorgonia.NewConstant for tensors: gorgonia merges constant nodes whose
// printed values agree, and it prints long tensors abbreviated, so two
// different constants (one-hot columns, say) can silently become one. Names
// must be unique within the graph.
func Const(g *G.ExprGraph, name string, data []float32, shape ...int) *G.Node {
	v := T.New(T.WithShape(shape...), T.WithBacking(data))
	return G.NodeFromAny(g, v, G.WithName("const."+name))
}
