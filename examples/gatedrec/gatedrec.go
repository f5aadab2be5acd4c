// Package gatedrec is a gated linear recurrence written with framework/graphstage:
// the forward pass as a gorgonia graph, no hand-written backward. It is a stage
// of kind "liquid" (name "gated-recurrence"), the component to copy when you
// write your own. Per token t of each sequence, with H = hidden_size:
//
//	g_t = σ(W_g·e_t + b_g)                      how much of the state to keep
//	h_t = g_t ⊙ h_{t−1} + (1 − g_t) ⊙ tanh(W_x·e_t + b_x)
//	y_t = h_t
//
// Inputs e [B,S,H], timestamps [B,S] (unused), h [B,H] (the initial state on
// the first chunk); outputs y [B,S,H] and h [B,H]; state h carried between
// chunks. The plugin subfolder serves it as a standalone plugin binary.
package gatedrec

import (
	G "gorgonia.org/gorgonia"

	gs "liquidlab/framework/graphstage"
	"liquidlab/framework/stage"
)

// New returns the stage.
func New() *gs.Stage { return gs.New(gs.Spec{Describe: describe, Build: build}) }

func describe(cfg stage.Config) (*gs.Description, error) {
	H, err := cfg.Dim("hidden_size")
	if err != nil {
		return nil, err
	}
	lin := func(name string) []stage.ParamSpec {
		return []stage.ParamSpec{
			{Name: name + ".weight", Shape: []int{H, H}, Init: "linear_weight", FanIn: H},
			{Name: name + ".bias", Shape: []int{H}, Init: "linear_bias", FanIn: H},
		}
	}
	return &gs.Description{
		Description: stage.Description{
			Kind: stage.KindLiquid, Name: "gated-recurrence", Version: "0.1.0",
			Params:  append(lin("gate"), lin("input")...),
			State:   []stage.StateSpec{{Name: stage.PortH, Shape: []int{-1, H}}},
			Inputs:  []string{stage.PortE, stage.PortTimestamps, stage.PortH},
			Outputs: []string{stage.PortY, stage.PortH},
		},
		Shapes: map[string][]int{stage.PortE: {gs.B, gs.S, H}, stage.PortTimestamps: {gs.B, gs.S}, stage.PortH: {gs.B, H}},
		NoGrad: []string{stage.PortTimestamps}, StateGrads: map[string]string{stage.PortH: stage.PortH},
		PerToken: []string{stage.PortE}, // Build gets e token by token: in[gs.TokenKey("e", t)] [B,H]
	}, nil
}

func build(g *G.ExprGraph, cfg stage.Config, in, p, state gs.Nodes) (out, next gs.Nodes, err error) {
	ts := in[stage.PortTimestamps].Shape() // [B,S]
	Bn, S, H := ts[0], ts[1], cfg.Dims["hidden_size"]
	h := in[stage.PortH] // the first chunk starts from input h, later ones from the state
	if state != nil {
		h = state[stage.PortH]
	}
	ys := make(G.Nodes, S)
	for t := 0; t < S; t++ {
		e := in[gs.TokenKey(stage.PortE, t)] // [B,H]
		gt := G.Must(G.Sigmoid(G.Must(gs.Linear(e, p["gate.weight"], p["gate.bias"]))))
		ct := G.Must(G.Tanh(G.Must(gs.Linear(e, p["input.weight"], p["input.bias"]))))
		// h = c + g⊙(h − c), the same as g⊙h + (1−g)⊙c with one product fewer
		h = G.Must(G.Add(ct, G.Must(G.HadamardProd(gt, G.Must(G.Sub(h, ct))))))
		ys[t] = G.Must(G.Reshape(h, []int{Bn, 1, H}))
	}
	y := ys[0]
	if S > 1 {
		y = G.Must(G.Concat(1, ys...)) // [B,S,H]
	}
	return gs.Nodes{stage.PortY: y, stage.PortH: h}, gs.Nodes{stage.PortH: h}, nil
}
