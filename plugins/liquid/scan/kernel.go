package scan

import (
	"context"
	"fmt"

	"liquidlab/framework/num"
	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
)

// weights is the stage's parameters, copied at Forward so a handle does not
// depend on the host's buffers, with 1/τ precomputed.
type weights struct {
	H                    int
	Wx, bx, Wh, A, tauRw []float32
	WhT                  []float32 // W_hᵀ: sgemm runs a few times faster on it untransposed
	invTau               []float32 // 1/τ, τ = softplus(tau_raw) + TauMin
}

// newWeights copies the parameters; every slice has been checked for size.
func newWeights(H int, wx, bx, wh, a, tauRaw []float32) *weights {
	w := &weights{
		H:  H,
		Wx: append([]float32(nil), wx...), bx: append([]float32(nil), bx...),
		Wh: append([]float32(nil), wh...), A: append([]float32(nil), a...),
		tauRw:  append([]float32(nil), tauRaw...),
		invTau: make([]float32, H),
		WhT:    make([]float32, H*H),
	}
	for i := range H {
		for j := range H {
			w.WhT[j*H+i] = wh[i*H+j]
		}
	}
	for i, r := range tauRaw {
		w.invTau[i] = 1 / (num.Softplus(r) + TauMin)
	}
	return w
}

// chunk is one forward pass over B sequences of S tokens: the forward values
// the backward pass reads.
type chunk struct {
	B, S, H int
	w       *weights
	e       []float32 // [B,S,H] input, referenced (the stage contract lets a handle keep it)
	dt      []float32 // [B,S] Δ_t
	f       []float32 // [B,S,H] σ(u_t); Backward overwrites it with dL/du_t
	hs      []float32 // [B,S+1,H]: the chunk's initial state, then h_0 … h_{S−1}

	// ODE mode (option method other than fused): f holds W_x·x + b instead,
	// and each token is one odeint solve, kept for backward.
	ode     odeint.Options // Method "" in the fused mode
	unfolds int
	maxStep float64
	sols    []*odeint.Solution
}

// ctxEvery is how many time steps pass between checks for cancellation.
const ctxEvery = 256

// forward runs the scan from the initial states h0 [B,H]. It allocates f and hs.
func (c *chunk) forward(ctx context.Context, h0 []float32) error {
	B, S, H := c.B, c.S, c.H
	w := c.w
	c.f = make([]float32, B*S*H)
	c.hs = make([]float32, B*(S+1)*H)
	for b := 0; b < B; b++ {
		copy(c.hs[b*(S+1)*H:][:H], h0[b*H:(b+1)*H])
	}
	// u_t = W_x·x_t + b for every token at once; the loop adds W_h·h_{t−1}.
	num.LinearForward(c.f, c.e, w.Wx, w.bx, B*S, H, H)
	for t := 0; t < S; t++ {
		if t%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("scan: at token %d of %d: %w", t, S, err)
			}
		}
		recurrentAdd(c.f[t*H:], S*H, c.hs[t*H:], (S+1)*H, w.Wh, w.WhT, B, H)
		for b := 0; b < B; b++ {
			u := c.f[(b*S+t)*H:][:H]
			hp := c.hs[(b*(S+1)+t)*H:][:H]
			hn := c.hs[(b*(S+1)+t+1)*H:][:H]
			d := c.dt[b*S+t]
			stepForward(u, hp, hn, w.A[:H], w.invTau[:H], d)
		}
	}
	return nil
}

// stepForward turns u into f = σ(u) in place and writes the fused semi-implicit
// Euler step h_t = (h_{t−1} + Δ·f⊙A) / (1 + Δ·(1/τ + f)) into hn.
//
// σ(u) = (1 + tanh(u/2))/2 through num.TanhFastSlice, whose arithmetic is
// inlined in its loop; 1/(1+ExpFast(−u)) pays a call per element.
func stepForward(u, hp, hn, a, invTau []float32, d float32) {
	hp, hn, a, invTau = hp[:len(u)], hn[:len(u)], a[:len(u)], invTau[:len(u)]
	for i, v := range u {
		u[i] = 0.5 * v
	}
	num.TanhFastSlice(u, u)
	for i, v := range u {
		s := 0.5 + 0.5*v
		u[i] = s
		hn[i] = (hp[i] + d*s*a[i]) / (1 + d*(invTau[i]+s))
	}
}

// recurrentAdd adds h_{t−1}·W_hᵀ to the B rows of u (row stride ldu), reading
// h_{t−1} from the B rows of hp (row stride ldh); whT is W_hᵀ.
func recurrentAdd(u []float32, ldu int, hp []float32, ldh int, wh, whT []float32, B, H int) {
	if B == 1 && useGoGemv {
		gemvAdd(u[:H], wh, hp[:H], H)
		return
	}
	num.Gemm(false, false, B, H, H, 1, hp, ldh, whT, H, 1, u, ldu)
}

// grads is what backward returns.
type grads struct {
	de, dh0                    []float32
	dWx, dbx, dWh, dA, dTauRaw []float32
}

// backward is backpropagation through time over the chunk, given dL/dy (dy,
// [B,S,H]) and dL/dh_{S−1} (dhT, [B,H]); either may be nil. It consumes c.f.
func (c *chunk) backward(ctx context.Context, dy, dhT []float32) (*grads, error) {
	B, S, H := c.B, c.S, c.H
	w := c.w
	// carry is dL/dh_t from the steps after t (and from dhT); per step it is
	// added to dy_t, then replaced by dL/dh_{t−1}.
	carry := make([]float32, B*H)
	if dhT != nil {
		copy(carry, dhT)
	}
	dA, dk := make([]float64, H), make([]float64, H)
	for t := S - 1; t >= 0; t-- {
		if t%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("scan: backward at token %d of %d: %w", t, S, err)
			}
		}
		for b := 0; b < B; b++ {
			var dyt []float32
			if dy != nil {
				dyt = dy[(b*S+t)*H:][:H]
			}
			stepBackward(c.f[(b*S+t)*H:][:H], c.hs[(b*(S+1)+t+1)*H:][:H], carry[b*H:][:H], dyt,
				w.A[:H], w.invTau[:H], c.dt[b*S+t], dA, dk)
		}
		// dL/dh_{t−1} += dL/du_t · W_h
		recurrentBackAdd(carry, c.f[t*H:], S*H, w.Wh, B, H)
	}
	g := &grads{
		de: stage.OutputBuf(ctx, B*S*H), dh0: carry,
		dWx: make([]float32, H*H), dbx: make([]float32, H), dWh: make([]float32, H*H),
		dA: make([]float32, H), dTauRaw: make([]float32, H),
	}
	// dW_h = Σ_t du_tᵀ·h_{t−1}, one product per sequence (h_{t−1} rows have stride H
	// within a sequence of hs).
	for b := 0; b < B; b++ {
		num.Gemm(true, false, H, H, S, 1, c.f[b*S*H:], H, c.hs[b*(S+1)*H:], H, 1, g.dWh, H)
	}
	num.LinearBackward(g.de, false, g.dWx, g.dbx, c.f, c.e, w.Wx, B*S, H, H)
	for i := range H {
		g.dA[i] = float32(dA[i])
		// k = 1/τ, τ = softplus(r) + TauMin: dk/dr = −σ(r)/τ².
		it := float64(w.invTau[i])
		g.dTauRaw[i] = float32(-dk[i] * it * it * float64(num.Sigmoid(w.tauRw[i])))
	}
	return g, nil
}

// stepBackward is one step of BPTT for one sequence. On entry f holds σ(u_t),
// hn h_t, carry dL/dh_t from later steps (dy, if not nil, is added to it). On
// return f holds dL/du_t and carry the direct part of dL/dh_{t−1} (the W_h part
// is added by the caller); dA and dk (k = 1/τ) are accumulated.
func stepBackward(f, hn, carry, dy, a, invTau []float32, d float32, dA, dk []float64) {
	n := len(f)
	hn, carry, a, invTau, dA, dk = hn[:n], carry[:n], a[:n], invTau[:n], dA[:n], dk[:n]
	if dy != nil {
		dy = dy[:n]
		for i, v := range dy {
			carry[i] += v
		}
	}
	for i, s := range f {
		g := carry[i]
		inv := 1 / (1 + d*(invTau[i]+s))
		dnum := g * inv
		dden := -g * hn[i] * inv // −g·num/den²
		df := d * (dnum*a[i] + dden)
		dA[i] += float64(dnum * d * s)
		dk[i] += float64(dden * d)
		f[i] = df * s * (1 - s)
		carry[i] = dnum
	}
}

// recurrentBackAdd adds du·W_h to the B rows of dh, reading du's B rows with
// stride ldu.
func recurrentBackAdd(dh, du []float32, ldu int, wh []float32, B, H int) {
	if B == 1 && useGoGemv {
		gemvTAdd(dh[:H], wh, du[:H], H)
		return
	}
	num.Gemm(false, false, B, H, H, 1, du, ldu, wh, H, 1, dh, H)
}
