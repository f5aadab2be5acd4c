// Package causalgraph is the causal attention of plugins/attention/causal,
// patterns "window" and "full", written as a gorgonia graph with
// framework/graphstage: a stage of kind "attention", name "causal-graph", with
// causal's parameters, options, outputs y and c, and carried state (k_cache,
// v_cache, n_cache, and pos for full), and gradients from gorgonia's symbolic
// differentiation. Per head h of d = H/heads columns, over the keys K = [cache;
// chunk] (T = cache rows + S):
//
//	scores = (q_h/√d)·K_hᵀ + bias,  bias = 0 where the pattern allows the key, −1e4 elsewhere
//	a_h = softmax(scores − rowmax)·V_h,  y = Σ_h a_h·(out.weightᵀ)[h] + out.bias
//
// Dense [S,T] scores per batch row and head: memory and time grow with S·T,
// where causal's blocked kernel keeps no S×S matrix; a window chunk of at
// least minBlocks whole windows runs blocked instead, each block of W queries
// against its own block and the previous one (block 0: the cache). The window
// mask on a chunk after the first depends on the carried n_cache, a value the
// graph cannot branch on, so it is computed in the graph by integer arithmetic
// (step(x) = relu(x+1) − relu(x) is 1 for integers x ≥ 0, else 0), and so is
// the next cache, the last min(W, n+S) keys and values as the product of a
// 0/1 selection matrix (exact) with [cache; chunk].
//
// Differences from causal: only patterns window and full, and qscale none; the
// other patterns' options are accepted and ignored, as causal does. Inputs:
// only "e" is declared (causal also accepts timestamps and h and ignores
// them; the graph ignores them too); no "rows" shortcut, no Stats. The
// carried state is a constant input (truncated backpropagation, as causal).
package causalgraph

import (
	"context"
	"fmt"
	"math"
	"strconv"

	G "gorgonia.org/gorgonia"

	gs "liquidlab/framework/graphstage"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/causal"
)

// Name is the stage's name.
const Name = "causal-graph"

// big is the score penalty of a masked key: exp(−1e4) is 0 in float32.
const big = 1e4

// minBlocks is the fewest whole windows per chunk that run blocked (at least
// 3). Measured at H=256, W=64 on a loaded machine, forward+backward: at 8
// windows (8×512 tokens) blocked took 1.3× the time of dense (the blocks'
// concatenations and their gradients cost more than the scores saved), at 32
// (1×2048) 0.4× and half the peak memory.
var minBlocks = 12

// New returns the stage.
func New() *gs.Stage { return gs.New(gs.Spec{Describe: describe, Build: build}) }

type options struct {
	pattern     string
	H, heads, W int
}

func parse(cfg stage.Config) options {
	o := options{pattern: cfg.Options["pattern"], H: cfg.Dims["hidden_size"], heads: 1, W: causal.DefaultWindow}
	if o.pattern == "" {
		o.pattern = causal.DefaultPattern
	}
	if v, err := strconv.Atoi(cfg.Options["heads"]); err == nil {
		o.heads = v
	}
	if v, err := strconv.Atoi(cfg.Options["window"]); err == nil {
		o.W = v
	}
	return o
}

func describe(cfg stage.Config) (*gs.Description, error) {
	d, err := causal.New().Describe(context.Background(), cfg) // checks every option
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	o := parse(cfg)
	if o.pattern != causal.Window && o.pattern != causal.Full {
		return nil, fmt.Errorf("%s: option pattern = %q: only %q and %q are written as a graph (use impl causal)", Name, o.pattern, causal.Window, causal.Full)
	}
	if q := cfg.Options["qscale"]; q != "" && q != causal.QScaleNone {
		return nil, fmt.Errorf("%s: option qscale = %q: only %q is written as a graph (use impl causal)", Name, q, causal.QScaleNone)
	}
	d.Name = Name
	d.Inputs = []string{stage.PortE}
	return &gs.Description{Description: *d, Shapes: map[string][]int{stage.PortE: {gs.B, gs.S, o.H}}}, nil
}

func relu(x *G.Node) *G.Node {
	return G.Must(G.Mul(G.Must(G.Add(x, G.Must(G.Abs(x)))), G.NewConstant(float32(0.5))))
}

// step is 1 for integer-valued x ≥ 0, else 0 (exact in float32).
func step(x *G.Node) *G.Node {
	return G.Must(G.Sub(relu(G.Must(G.Add(x, G.NewConstant(float32(1))))), relu(x)))
}

// table is the constant [r,c] matrix of f(i,j).
func table(g *G.ExprGraph, name string, r, c int, f func(i, j int) float32) *G.Node {
	m := make([]float32, r*c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			m[i*c+j] = f(i, j)
		}
	}
	return gs.Const(g, name, m, r, c)
}

// batched is the constant [b,r,c] tensor of f(i,j), the same for every batch
// row (an elementwise Add then needs no broadcast, which gorgonia
// materialises with a Repeat).
func batched(g *G.ExprGraph, name string, b, r, c int, f func(i, j int) float32) *G.Node {
	m := make([]float32, b*r*c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			m[i*c+j] = f(i, j)
		}
	}
	for k := 1; k < b; k++ {
		copy(m[k*r*c:(k+1)*r*c], m[:r*c])
	}
	return gs.Const(g, name, m, b, r, c)
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// perRow multiplies sel [R,T] with every batch row of x [B,T,H]: [B,R,H].
func perRow(sel, x *G.Node) *G.Node {
	Bn, H := x.Shape()[0], x.Shape()[2]
	R := sel.Shape()[0]
	parts := make(G.Nodes, Bn)
	for b := range parts {
		parts[b] = G.Must(G.Reshape(G.Must(G.Mul(sel, G.Must(G.Slice(x, G.S(b))))), []int{1, R, H}))
	}
	if Bn == 1 {
		return parts[0]
	}
	return G.Must(G.Concat(0, parts...))
}

func build(g *G.ExprGraph, cfg stage.Config, in, p, state gs.Nodes) (gs.Nodes, gs.Nodes, error) {
	o := parse(cfg)
	e := in[stage.PortE]
	Bn, S, H := e.Shape()[0], e.Shape()[1], e.Shape()[2]
	n, d := o.heads, H/o.heads
	N := Bn * S
	X := G.Must(gs.Tokens(e))
	Q := G.Must(G.Mul(G.Must(gs.Linear(X, p["query.weight"], p["query.bias"])), G.NewConstant(float32(1/math.Sqrt(float64(d))))))
	Kn := G.Must(G.Reshape(G.Must(gs.Linear(X, p["key.weight"], p["key.bias"])), []int{Bn, S, H}))
	Vn := G.Must(G.Reshape(G.Must(gs.Linear(X, p["value.weight"], p["value.bias"])), []int{Bn, S, H}))

	// keys and values [B,T,H]: the cache's rows, then the chunk's; bias [S,T]
	// is the mask; next is the state after the chunk.
	K, V := Kn, Vn
	R := 0 // cache rows
	var bias *G.Node
	next := gs.Nodes{}
	newMask := func(t, s int) bool { // chunk token t sees chunk token s
		return s <= t && (o.pattern == causal.Full || s > t-o.W)
	}
	// window over chunks of at least minBlocks windows, cut into whole
	// windows: block i's queries see only blocks i−1 (block 0: the cache) and
	// i, so the scores are [B,S/W,W,2W] instead of [B,S,W+S]
	blocked := o.pattern == causal.Window && S%o.W == 0 && S/o.W >= minBlocks
	var nc *G.Node // window, later chunk: n_cache as a scalar
	switch {
	case state == nil && o.pattern == causal.Full:
		bias = batched(g, "bias", Bn, S, S, func(t, s int) float32 { return -big * (1 - b2f(newMask(t, s))) })
		nS := gs.Const(g, "n", []float32{float32(S)}, 1)
		next = gs.Nodes{"k_cache": Kn, "v_cache": Vn, "n_cache": nS, "pos": nS}
	case state == nil: // window, first chunk: keep the last min(W,S) tokens
		if !blocked {
			bias = batched(g, "bias", Bn, S, S, func(t, s int) float32 { return -big * (1 - b2f(newMask(t, s))) })
		}
		m := min(o.W, S)
		sel := table(g, "sel", o.W, S, func(r, j int) float32 { return b2f(r < m && j == S-m+r) })
		next = gs.Nodes{"k_cache": perRow(sel, Kn), "v_cache": perRow(sel, Vn),
			"n_cache": gs.Const(g, "n", []float32{float32(m)}, 1)}
	case o.pattern == causal.Full: // the cache holds every earlier token, all visible
		R = state["k_cache"].Shape()[1]
		K = G.Must(G.Concat(1, state["k_cache"], Kn))
		V = G.Must(G.Concat(1, state["v_cache"], Vn))
		T := R + S
		bias = batched(g, "bias", Bn, S, T, func(t, j int) float32 { return -big * (1 - b2f(j < R || newMask(t, j-R))) })
		add := G.NewConstant(float32(S))
		next = gs.Nodes{"k_cache": K, "v_cache": V,
			"n_cache": G.Must(G.Add(state["n_cache"], add)), "pos": G.Must(G.Add(state["pos"], add))}
	default: // window, later chunk: cache rows 0…n−1 hold positions −n…−1
		W := o.W
		R = W
		T := W + S
		K = G.Must(G.Concat(1, state["k_cache"], Kn))
		V = G.Must(G.Concat(1, state["v_cache"], Vn))
		nc = G.Must(G.Sum(state["n_cache"])) // scalar n
		if !blocked {
			bias = G.Must(G.Concat(1, cacheBias(g, nc, S, W),
				table(g, "bias", S, S, func(t, s int) float32 { return -big * (1 - b2f(newMask(t, s))) })))
		}
		// the next cache: row r < n1 = min(W, n+S) holds position S−n1+r,
		// which is column j with pos_j = j−n (j < W, valid iff j < n) or j−W
		n1 := G.Must(G.Sub(G.NewConstant(float32(W)), relu(G.Must(G.Sub(G.NewConstant(float32(W-S)), nc)))))
		isCache := table(g, "iscache", W, T, func(_, j int) float32 { return b2f(j < W) })
		// x = pos_j − (S − n1 + r)
		x := G.Must(G.Sub(G.Must(G.Add(table(g, "selx", W, T, func(r, j int) float32 {
			if j < W {
				return float32(j - S - r)
			}
			return float32(j - W - S - r)
		}), n1)), G.Must(G.Mul(isCache, nc))))
		eq := G.Must(G.HadamardProd(step(x), step(G.Must(G.Neg(x)))))
		valid := step(G.Must(G.Sub(G.Must(G.Mul(isCache, nc)), table(g, "j+1c", W, T, func(_, j int) float32 {
			if j < W {
				return float32(j + 1)
			}
			return -1
		}))))
		rowOK := step(G.Must(G.Sub(n1, table(g, "r+1", W, T, func(r, _ int) float32 { return float32(r + 1) }))))
		sel := G.Must(G.HadamardProd(G.Must(G.HadamardProd(eq, valid)), rowOK))
		next = gs.Nodes{"k_cache": perRow(sel, K), "v_cache": perRow(sel, V),
			"n_cache": G.Must(G.Add(G.Must(G.Mul(state["n_cache"], G.NewConstant(float32(0)))), n1))}
	}
	if blocked {
		bias = blockBias(g, Bn, S/o.W, o.W, nc)
	}

	Wot := G.Must(G.Transpose(p["out.weight"])) // [H,H]: rows h·d… belong to head h
	var y *G.Node
	for h := 0; h < n; h++ {
		q, k, v, wo := Q, K, V, Wot
		// head picks head h's columns of x [B,r,H]: [B,r,d]
		head := func(x *G.Node) *G.Node { return x }
		if n > 1 {
			ph := table(g, fmt.Sprintf("head%d", h), H, d, func(i, j int) float32 { return b2f(i == h*d+j) })
			head = func(x *G.Node) *G.Node {
				r := x.Shape()[1]
				return G.Must(G.Reshape(G.Must(G.Mul(G.Must(G.Reshape(x, []int{Bn * r, H})), ph)), []int{Bn, r, d}))
			}
			q = G.Must(G.Mul(Q, ph))
			wo = G.Must(G.Slice(Wot, G.S(h*d, (h+1)*d)))
		}
		if blocked {
			a := attendBlocked(g, G.Must(G.Reshape(q, []int{Bn, S, d})), head, Kn, Vn, state, o.W, bias)
			y = addHead(y, G.Must(G.Mul(G.Must(G.Reshape(a, []int{N, d})), wo)))
			continue
		}
		if n > 1 {
			k, v = head(K), head(V)
		}
		q = G.Must(G.Reshape(q, []int{Bn, S, d}))
		sc := G.Must(G.BatchedMatMul(q, k, false, true)) // [B,S,T]
		if bias.Dims() == 3 {
			sc = G.Must(G.Add(sc, bias))
		} else {
			sc = G.Must(G.BroadcastAdd(sc, bias, nil, []byte{0}))
		}
		ex := G.Must(G.Exp(G.Must(G.BroadcastSub(sc, G.Must(G.Max(sc, 2)), nil, []byte{2}))))
		// normalised after the product by V: a [B,S,d] division, not [B,S,T]
		a := G.Must(G.BroadcastHadamardDiv(G.Must(G.BatchedMatMul(ex, v)), G.Must(G.Sum(ex, 2)), nil, []byte{2}))
		a = G.Must(G.Reshape(a, []int{N, d}))
		y = addHead(y, G.Must(G.Mul(a, wo)))
	}
	y = G.Must(G.Reshape(G.Must(G.BroadcastAdd(y, p["out.bias"], nil, []byte{0})), []int{Bn, S, H}))
	c := G.Must(G.Slice(y, nil, G.S(S-1)))
	return gs.Nodes{"y": y, "c": c}, next, nil
}

func addHead(y, yh *G.Node) *G.Node {
	if y == nil {
		return yh
	}
	return G.Must(G.Add(y, yh))
}

// cacheBias is the mask bias [rows,W] of the window cache's columns for chunk
// tokens 0…rows−1: cache row j holds position j−n and is seen by token t iff
// j < n and j−n > t−W; n is the scalar node nc.
func cacheBias(g *G.ExprGraph, nc *G.Node, rows, W int) *G.Node {
	seen := G.Must(G.HadamardProd(
		step(G.Must(G.Sub(nc, table(g, fmt.Sprintf("j+1.%d", rows), rows, W, func(_, j int) float32 { return float32(j + 1) })))),
		step(G.Must(G.Sub(table(g, fmt.Sprintf("j-t+W-1.%d", rows), rows, W, func(t, j int) float32 { return float32(j - t + W - 1) }), nc)))))
	return G.Must(G.Mul(G.Must(G.Sub(seen, G.NewConstant(float32(1)))), G.NewConstant(float32(big))))
}

// blockBias is the mask bias of the blocked window: [B,nb,W,2W] on a first
// chunk (block 0 sees no earlier block), else [nb,W,2W] with block 0's first
// W columns, the cache, from cacheBias. Column c < W of block i is position
// (i−1)·W + c, seen by row r iff c > r; column W + c' is iW + c', seen iff c' ≤ r.
func blockBias(g *G.ExprGraph, Bn, nb, W int, nc *G.Node) *G.Node {
	f := func(i, r, c int) float32 {
		if c < W {
			return -big * (1 - b2f(i > 0 && c > r))
		}
		return -big * (1 - b2f(c-W <= r))
	}
	one := make([]float32, nb*W*2*W)
	for i := 0; i < nb; i++ {
		for r := 0; r < W; r++ {
			for c := 0; c < 2*W; c++ {
				one[(i*W+r)*2*W+c] = f(i, r, c)
			}
		}
	}
	if nc == nil {
		all := make([]float32, 0, Bn*len(one))
		for b := 0; b < Bn; b++ {
			all = append(all, one...)
		}
		return gs.Const(g, "blockbias", all, Bn, nb, W, 2*W)
	}
	own := table(g, "blockbias.own", W, W, func(r, c int) float32 { return f(0, r, W+c) })
	first := G.Must(G.Reshape(G.Must(G.Concat(1, cacheBias(g, nc, W, W), own)), []int{1, W, 2 * W}))
	rest := gs.Const(g, "blockbias.rest", one[W*2*W:], nb-1, W, 2*W)
	return G.Must(G.Concat(0, first, rest))
}

// attendBlocked is one head of the blocked window attention: q [B,S,d]
// (scaled), head picks the head's columns of [B,r,H] keys and values; the
// result is [B,nb,W,d].
func attendBlocked(g *G.ExprGraph, q *G.Node, head func(*G.Node) *G.Node, Kn, Vn *G.Node, state gs.Nodes, W int, bias *G.Node) *G.Node {
	Bn, S, d := q.Shape()[0], q.Shape()[1], q.Shape()[2]
	nb := S / W
	// blocks returns [B,nb,2W,d]: block i−1's rows (block 0: the cache, or
	// zeros, masked, on a first chunk), then block i's
	blocks := func(xn *G.Node, cache string) *G.Node {
		x4 := G.Must(G.Reshape(head(xn), []int{Bn, nb, W, d}))
		var first *G.Node
		if state != nil {
			first = G.Must(G.Reshape(head(state[cache]), []int{Bn, 1, W, d}))
		} else {
			first = gs.Const(g, fmt.Sprintf("zeros.%s.%p", cache, head), make([]float32, Bn*W*d), Bn, 1, W, d)
		}
		prev := G.Must(G.Concat(1, first, G.Must(G.Slice(x4, nil, G.S(0, nb-1)))))
		return G.Must(G.Concat(2, prev, x4))
	}
	kb, vb := blocks(Kn, "k_cache"), blocks(Vn, "v_cache")
	sc := G.Must(G.BatchedMatMul(G.Must(G.Reshape(q, []int{Bn, nb, W, d})), kb, false, true)) // [B,nb,W,2W]
	if bias.Dims() == 4 {
		sc = G.Must(G.Add(sc, bias))
	} else {
		sc = G.Must(G.BroadcastAdd(sc, bias, nil, []byte{0}))
	}
	ex := G.Must(G.Exp(G.Must(G.BroadcastSub(sc, G.Must(G.Max(sc, 3)), nil, []byte{3}))))
	return G.Must(G.BroadcastHadamardDiv(G.Must(G.BatchedMatMul(ex, vb)), G.Must(G.Sum(ex, 3)), nil, []byte{3}))
}
