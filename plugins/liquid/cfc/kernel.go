package cfc

import (
	"context"
	"fmt"

	"liquidlab/framework/num"
	"liquidlab/framework/tensor"
)

// LeCun's tanh, ncps's default backbone activation: 1.7159·tanh(0.666·x).
const (
	lecunA = 1.7159
	lecunB = 0.666
)

// weights is the stage's parameters, copied and repacked at Forward. Layer 0
// reads [e, h]: it is the first backbone layer, or the four heads stacked when
// there is no backbone. Its e columns are applied to the whole chunk at once,
// its h columns token by token.
type weights struct {
	o        options
	O0       int       // layer 0's outputs: U, or 4H without backbone
	W0e, W0h []float32 // [O0,H]: layer 0's columns for e and for h
	W0hT     []float32 // [H,O0]: sgemm runs faster on it untransposed (see the scan)
	b0       []float32 // [O0]
	Wl, bl   [][]float32
	Wq, bq   []float32 // heads stacked (ff1, ff2, time_a, time_b): [4H,U], [4H], when L > 0
}

func readWeights(m tensor.Map, o options) (*weights, error) {
	get := func(name string, shape ...int) ([]float32, error) {
		t, err := m.Need(name, shape...)
		if err != nil {
			return nil, fmt.Errorf("cfc: parameter: %w", err)
		}
		return t.Data, nil
	}
	H, U, L := o.H, o.U, o.L
	w := &weights{o: o, Wl: make([][]float32, L), bl: make([][]float32, L)}
	in := o.headIn()
	var wq, bq []float32 // the heads stacked
	for _, h := range heads {
		wt, err := get(h+".weight", H, in)
		if err != nil {
			return nil, err
		}
		bt, err := get(h+".bias", H)
		if err != nil {
			return nil, err
		}
		wq, bq = append(wq, wt...), append(bq, bt...)
	}
	var w0 []float32 // layer 0 [O0, 2H]
	if L == 0 {
		w.O0, w0, w.b0 = 4*H, wq, bq
	} else {
		w.O0 = U
		w.Wq, w.bq = wq, bq
		in := 2 * H
		for l := 0; l < L; l++ {
			wt, err := get(backboneName(l, "weight"), U, in)
			if err != nil {
				return nil, err
			}
			bt, err := get(backboneName(l, "bias"), U)
			if err != nil {
				return nil, err
			}
			w.Wl[l], w.bl[l] = append([]float32(nil), wt...), append([]float32(nil), bt...)
			in = U
		}
		w0, w.b0 = w.Wl[0], w.bl[0]
	}
	O0 := w.O0
	w.W0e, w.W0h, w.W0hT = make([]float32, O0*H), make([]float32, O0*H), make([]float32, H*O0)
	for r := 0; r < O0; r++ {
		copy(w.W0e[r*H:(r+1)*H], w0[r*2*H:])
		copy(w.W0h[r*H:(r+1)*H], w0[r*2*H+H:])
		for j := 0; j < H; j++ {
			w.W0hT[j*O0+r] = w0[r*2*H+H+j]
		}
	}
	w.b0 = append([]float32(nil), w.b0...)
	return w, nil
}

// chunk is one forward pass over B sequences of S tokens: the values the
// backward pass reads. Per-token arrays are time-major ([S,B,·]) so each
// token's rows are contiguous for its sgemm.
type chunk struct {
	B, S int
	w    *weights
	dt   []float32   // [B,S] Δ_t
	eT   []float32   // [S,B,H] the input, transposed
	hs   []float32   // [S+1,B,H]: the initial state, then h_0 … h_{S−1}
	acts [][]float32 // L entries [S,B,U]: backbone outputs (acts[0] is layer 0's)
	// q [S,B,4H] holds per row ff1, ff2, t_interp (and t_b, unused) after
	// forward; backward overwrites it with dL/d(head pre-activations). Without
	// backbone it is layer 0's output.
	q []float32
}

// ctxEvery is how many tokens pass between checks for cancellation.
const ctxEvery = 256

func lecun(x []float32) {
	for i, v := range x {
		x[i] = lecunB * v
	}
	num.TanhFastSlice(x, x)
	for i, v := range x {
		x[i] = lecunA * v
	}
}

// lecunBack turns dy into dL/dx in place, given a = lecun(x).
func lecunBack(dy, a []float32) {
	a = a[:len(dy)]
	for i, g := range dy {
		t := a[i] / lecunA
		dy[i] = g * lecunA * lecunB * (1 - t*t)
	}
}

func (c *chunk) forward(ctx context.Context, e, h0 []float32) error {
	B, S, w := c.B, c.S, c.w
	H, U, L, O0 := w.o.H, w.o.U, w.o.L, w.O0
	N := S * B
	c.eT = make([]float32, N*H)
	for b := 0; b < B; b++ {
		for t := 0; t < S; t++ {
			copy(c.eT[(t*B+b)*H:][:H], e[(b*S+t)*H:])
		}
	}
	c.hs = make([]float32, (S+1)*B*H)
	copy(c.hs, h0[:B*H])
	p0 := make([]float32, N*O0)
	num.LinearForward(p0, c.eT, w.W0e, w.b0, N, H, O0)
	if L > 0 {
		c.acts = make([][]float32, L)
		c.acts[0] = p0
		for l := 1; l < L; l++ {
			c.acts[l] = make([]float32, N*U)
		}
		c.q = make([]float32, N*4*H)
	} else {
		c.q = p0
	}
	for t := 0; t < S; t++ {
		if t%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("cfc: at token %d of %d: %w", t, S, err)
			}
		}
		num.Gemm(false, false, B, O0, H, 1, c.hs[t*B*H:], H, w.W0hT, O0, 1, p0[t*B*O0:], O0)
		qt := c.q[t*B*4*H:][:B*4*H]
		if L > 0 {
			lecun(p0[t*B*O0:][:B*O0])
			for l := 1; l < L; l++ {
				a := c.acts[l][t*B*U:][:B*U]
				for b := 0; b < B; b++ {
					copy(a[b*U:], w.bl[l])
				}
				num.Gemm(false, true, B, U, U, 1, c.acts[l-1][t*B*U:], U, w.Wl[l], U, 1, a, U)
				lecun(a)
			}
			for b := 0; b < B; b++ {
				copy(qt[b*4*H:], w.bq)
			}
			num.Gemm(false, true, B, 4*H, U, 1, c.acts[L-1][t*B*U:], U, w.Wq, U, 1, qt, 4*H)
		}
		for b := 0; b < B; b++ {
			cellForward(qt[b*4*H:][:4*H], c.hs[((t+1)*B+b)*H:][:H], c.dt[b*S+t])
		}
	}
	return nil
}

// cellForward turns one row of head pre-activations q = [p1, p2, t_a, t_b] into
// [ff1, ff2, t_interp, t_b] and writes h = ff1·(1−t_interp) + t_interp·ff2 into
// hn, with t_interp = σ(−t_a·Δ + t_b) = (1 + tanh((−t_a·Δ + t_b)/2))/2.
func cellForward(q, hn []float32, d float32) {
	H := len(hn)
	num.TanhFastSlice(q[:2*H], q[:2*H])
	ta, tb := q[2*H:3*H], q[3*H:4*H]
	for i, v := range ta {
		ta[i] = 0.5 * (tb[i] - v*d)
	}
	num.TanhFastSlice(ta, ta)
	f1, f2 := q[:H], q[H:2*H]
	for i, v := range ta {
		ti := 0.5 + 0.5*v
		ta[i] = ti
		hn[i] = f1[i]*(1-ti) + ti*f2[i]
	}
}

// cellBackward turns q = [ff1, ff2, t_interp, ·] into dL/d[p1, p2, t_a, t_b],
// given g = dL/dh.
func cellBackward(q, g []float32, d float32) {
	H := len(g)
	f1, f2, ti := q[:H], q[H:2*H], q[2*H:3*H]
	da, db := q[2*H:3*H], q[3*H:4*H]
	for i, gi := range g {
		a, b, s := f1[i], f2[i], ti[i]
		dq := gi * (b - a) * s * (1 - s)
		f1[i] = gi * (1 - s) * (1 - a*a)
		f2[i] = gi * s * (1 - b*b)
		da[i] = -d * dq
		db[i] = dq
	}
}

// backward is backpropagation through time over the chunk, given dL/dy (dy,
// [B,S,H], batch-major) and dL/dh_{S−1} (dhT, [B,H]); either may be nil. It
// consumes c.q.
func (c *chunk) backward(ctx context.Context, dy, dhT []float32) (de, dh0 []float32, pg tensor.Map, err error) {
	B, S, w := c.B, c.S, c.w
	H, U, L, O0 := w.o.H, w.o.U, w.o.L, w.O0
	N := S * B
	carry := make([]float32, B*H) // dL/dh_t from later steps, then dL/dh_{t−1}
	if dhT != nil {
		copy(carry, dhT)
	}
	dps := make([][]float32, L) // dL/d(pre-activation) of each backbone layer
	for l := range dps {
		dps[l] = make([]float32, N*U)
	}
	dp0 := c.q
	if L > 0 {
		dp0 = dps[0]
	}
	for t := S - 1; t >= 0; t-- {
		if t%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, nil, nil, fmt.Errorf("cfc: backward at token %d of %d: %w", t, S, err)
			}
		}
		qt := c.q[t*B*4*H:][:B*4*H]
		for b := 0; b < B; b++ {
			g := carry[b*H:][:H]
			if dy != nil {
				for i, v := range dy[(b*S+t)*H:][:H] {
					g[i] += v
				}
			}
			cellBackward(qt[b*4*H:][:4*H], g, c.dt[b*S+t])
		}
		if L > 0 {
			num.Gemm(false, false, B, U, 4*H, 1, qt, 4*H, w.Wq, U, 0, dps[L-1][t*B*U:], U)
			for l := L - 1; l >= 0; l-- {
				dl := dps[l][t*B*U:][:B*U]
				lecunBack(dl, c.acts[l][t*B*U:])
				if l > 0 {
					num.Gemm(false, false, B, U, U, 1, dl, U, w.Wl[l], U, 0, dps[l-1][t*B*U:], U)
				}
			}
		}
		num.Gemm(false, false, B, H, O0, 1, dp0[t*B*O0:], O0, w.W0h, H, 0, carry, H)
	}

	// Parameter gradients: one product over all S·B rows per matrix.
	deT := make([]float32, N*H)
	dW0e, dW0h, db0 := make([]float32, O0*H), make([]float32, O0*H), make([]float32, O0)
	num.LinearBackward(deT, false, dW0e, db0, dp0, c.eT, w.W0e, N, H, O0)
	num.Gemm(true, false, O0, H, N, 1, dp0, O0, c.hs, H, 1, dW0h, H)
	dW0 := make([]float32, O0*2*H)
	for r := 0; r < O0; r++ {
		copy(dW0[r*2*H:], dW0e[r*H:(r+1)*H])
		copy(dW0[r*2*H+H:], dW0h[r*H:(r+1)*H])
	}
	pg = tensor.Map{}
	headW, headB, in := dW0, db0, 2*H
	if L > 0 {
		pg[backboneName(0, "weight")] = tensor.From(dW0, U, 2*H)
		pg[backboneName(0, "bias")] = tensor.From(db0, U)
		for l := 1; l < L; l++ {
			dW, db := make([]float32, U*U), make([]float32, U)
			num.LinearBackward(nil, false, dW, db, dps[l], c.acts[l-1], w.Wl[l], N, U, U)
			pg[backboneName(l, "weight")] = tensor.From(dW, U, U)
			pg[backboneName(l, "bias")] = tensor.From(db, U)
		}
		headW, headB, in = make([]float32, 4*H*U), make([]float32, 4*H), U
		num.LinearBackward(nil, false, headW, headB, c.q, c.acts[L-1], w.Wq, N, U, 4*H)
	}
	for k, h := range heads {
		pg[h+".weight"] = tensor.From(append([]float32(nil), headW[k*H*in:(k+1)*H*in]...), H, in)
		pg[h+".bias"] = tensor.From(append([]float32(nil), headB[k*H:(k+1)*H]...), H)
	}
	de = make([]float32, N*H)
	for b := 0; b < B; b++ {
		for t := 0; t < S; t++ {
			copy(de[(b*S+t)*H:][:H], deT[(t*B+b)*H:])
		}
	}
	return de, carry, pg, nil
}
