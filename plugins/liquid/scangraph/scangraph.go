// Package scangraph is the causal liquid time-constant scan (plugins/liquid/scan,
// method "fused", dt_mode "timestamps") written as a gorgonia graph with
// framework/graphstage and unrolled over the chunk: a stage of kind "liquid",
// name "scan-graph", with scan's parameters, inputs, outputs and carried state
// (h, last_ts), and gradients from gorgonia's symbolic differentiation. Per
// token t, with Δ_t = dt_scale·(ts_t − ts_{t−1}) + dt_min:
//
//	f_t = σ(W_x·x_t + W_h·h_{t−1} + b),  τ = softplus(tau_raw) + 1e-3
//	h_t = (h_{t−1} + Δ_t·f_t⊙A) / (1 + Δ_t·(1/τ + f_t)),  y_t = h_t
//
// Differences from scan: other solver methods and dt_mode "constant" are
// refused; timestamps that make Δ negative are not an error (the graph cannot
// check data). As scan, the gradient of input "h" is dL/d of the chunk's
// initial state, on a chunk after the first the carried h
// (Description.StateGrads), so chaining the chunks' backward passes through
// it gives the unchunked gradients.
package scangraph

import (
	"context"
	"fmt"
	"strconv"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"

	gs "liquidlab/framework/graphstage"
	"liquidlab/framework/stage"
	"liquidlab/plugins/liquid/scan"
)

// Name is the stage's name.
const Name = "scan-graph"

// New returns the stage.
func New() *gs.Stage { return gs.New(gs.Spec{Describe: describe, Build: build}) }

func describe(cfg stage.Config) (*gs.Description, error) {
	d, err := scan.New().Describe(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if m := cfg.Options["method"]; m != "" && m != scan.MethodFused {
		return nil, fmt.Errorf("%s: option method = %q: only %q is written as a graph", Name, m, scan.MethodFused)
	}
	if m := cfg.Options["dt_mode"]; m != "" && m != scan.ModeTimestamps {
		return nil, fmt.Errorf("%s: option dt_mode = %q: only %q is written as a graph", Name, m, scan.ModeTimestamps)
	}
	d.Name = Name
	H := cfg.Dims["hidden_size"]
	return &gs.Description{Description: *d, NoGrad: []string{stage.PortTimestamps}, StateGrads: map[string]string{stage.PortH: "h"},
		PerToken: []string{stage.PortE},
		Shapes:   map[string][]int{stage.PortE: {gs.B, gs.S, H}, stage.PortTimestamps: {gs.B, gs.S}, stage.PortH: {gs.B, H}}}, nil
}

func option(cfg stage.Config, name, def string) float32 {
	v := cfg.Options[name]
	if v == "" {
		v = def
	}
	x, _ := strconv.ParseFloat(v, 32) // Describe has refused a bad value
	return float32(x)
}

func build(g *G.ExprGraph, cfg stage.Config, in, p, state gs.Nodes) (gs.Nodes, gs.Nodes, error) {
	ts := in[stage.PortTimestamps] // e comes token by token (Description.PerToken)
	Bn, S := ts.Shape()[0], ts.Shape()[1]
	H := in[gs.TokenKey(stage.PortE, 0)].Shape()[1]
	dtScale := G.NewConstant(option(cfg, "dt_scale", scan.DefaultDtScale))
	dtMin := G.NewConstant(option(cfg, "dt_min", scan.DefaultDtMin))
	one := G.NewConstant(float32(1))
	h, prev := in[stage.PortH], G.NewVector(g, T.Float32, G.WithShape(Bn), G.WithName("ts_before"),
		G.WithValue(T.New(T.WithShape(Bn), T.Of(T.Float32)))) // 0 before the first token
	if state != nil {
		h, prev = state["h"], state["last_ts"]
	}
	// Δ for every token at once: prevs = [last_ts, ts[:, :S−1]] through
	// constant 0/1 matrices (exact), since gorgonia slices of a [1,S] matrix
	// come out as scalars; token t's column is read the same way.
	shift := make([]float32, S*S) // (ts·shift)[:, j] = ts[:, j−1]
	for j := 1; j < S; j++ {
		shift[(j-1)*S+j] = 1
	}
	first := make([]float32, S) // last_ts ⊗ first puts last_ts in column 0
	first[0] = 1
	prevs := G.Must(G.Add(G.Must(G.Mul(ts, gs.Const(g, "shift", shift, S, S))),
		G.Must(G.Mul(G.Must(G.Reshape(prev, []int{Bn, 1})), gs.Const(g, "first", first, 1, S)))))
	dts := G.Must(G.Add(G.Must(G.Mul(dtScale, G.Must(G.Sub(ts, prevs)))), dtMin)) // [B,S]
	// column is m[:, t] as [B,1].
	column := func(m *G.Node, tag string, t int) *G.Node {
		oh := make([]float32, S)
		oh[t] = 1
		return G.Must(G.Mul(m, gs.Const(g, fmt.Sprintf("onehot.%s.%d", tag, t), oh, S, 1)))
	}
	invTau := G.Must(G.Inverse(G.Must(G.Add(G.Must(G.Softplus(p["tau_raw"])), G.NewConstant(float32(scan.TauMin))))))
	hs := make(G.Nodes, S)
	for t := 0; t < S; t++ {
		dt := column(dts, "dt", t) // [B,1]
		f := G.Must(G.Sigmoid(G.Must(G.Add(G.Must(gs.Linear(in[gs.TokenKey(stage.PortE, t)], p["input.weight"], p["input.bias"])), G.Must(gs.Linear(h, p["recurrent.weight"], nil))))))
		num := G.Must(G.Add(h, G.Must(G.BroadcastHadamardProd(G.Must(G.BroadcastHadamardProd(f, p["A"], nil, []byte{0})), dt, nil, []byte{1}))))
		den := G.Must(G.Add(one, G.Must(G.BroadcastHadamardProd(G.Must(G.BroadcastAdd(f, invTau, nil, []byte{0})), dt, nil, []byte{1}))))
		h = G.Must(G.HadamardDiv(num, den))
		hs[t] = G.Must(G.Reshape(h, []int{Bn, 1, H}))
	}
	cur := G.Must(G.Reshape(column(ts, "ts", S-1), []int{Bn}))
	y := hs[0]
	if S > 1 {
		// [B,1,H] pieces along axis 1: concatenating [B,H] pieces along
		// axis 1 gives wrong gradients in gorgonia v0.9.18 once S·H > 256.
		y = G.Must(G.Concat(1, hs...))
	}
	return gs.Nodes{"y": y, "h": h}, gs.Nodes{"h": h, "last_ts": cur}, nil
}
