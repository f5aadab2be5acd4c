package graphstage

import (
	"fmt"

	G "gorgonia.org/gorgonia"
)

// Linear is PyTorch's nn.Linear on the rows of x: x·Wᵀ + b for x [N,in],
// w [out,in] and b [out] (b may be nil).
func Linear(x, w, b *G.Node) (*G.Node, error) {
	y, err := G.Tensordot([]int{1}, []int{1}, x, w)
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
