package scan

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"liquidlab/framework/num"
	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
)

// MethodFused is the default of option method: the fused semi-implicit Euler
// step of Hasani et al.'s eq. 3, one per token (the scan as it always was).
const MethodFused = "fused"

// Option names of the ODE mode.
const (
	OptMethod  = odeint.OptionMethod
	OptUnfolds = "ode_unfolds"
	OptMaxStep = "max_step"
)

// Defaults of options ode_unfolds and max_step.
const (
	DefaultUnfolds = "1"
	DefaultMaxStep = "0.5"
)

// solverOptions parses method, ode_unfolds, rtol and atol. method "" or "fused"
// means the fused step; any other value is an odeint method.
func solverOptions(cfg stage.Config) (method string, unfolds int, maxStep float64, so odeint.Options, err error) {
	v := cfg.Options[OptUnfolds]
	if v == "" {
		v = DefaultUnfolds
	}
	if unfolds, err = strconv.Atoi(v); err != nil || unfolds < 1 {
		return "", 0, 0, so, fmt.Errorf("scan: option %s = %q, want an integer ≥ 1", OptUnfolds, v)
	}
	v = cfg.Options[OptMaxStep]
	if v == "" {
		v = DefaultMaxStep
	}
	if maxStep, err = strconv.ParseFloat(v, 64); err != nil || !(maxStep >= 0) || math.IsInf(maxStep, 0) {
		return "", 0, 0, so, fmt.Errorf("scan: option %s = %q, want a finite number ≥ 0", OptMaxStep, v)
	}
	method = cfg.Options[OptMethod]
	if method == "" || method == MethodFused {
		return MethodFused, unfolds, maxStep, so, nil
	}
	if so, err = odeint.ParseOptions(cfg.Options); err != nil {
		return "", 0, 0, so, fmt.Errorf("scan: %w (or %q, the default)", err, MethodFused)
	}
	return so.Method, unfolds, maxStep, so, nil
}

// solverOptionSpecs are odeint's option specs with the fused step as default,
// and ode_unfolds.
func solverOptionSpecs() []stage.OptionSpec {
	specs := odeint.OptionSpecs("how a token's Δ_t is integrated: fused (default) is the semi-implicit Euler step " +
		"h ← (h + Δ·f⊙A)/(1 + Δ·(1/τ + f)) with f at h_{t−1}; an odeint method integrates " +
		"dh/dt = −h/τ + f(h)⊙(A − h), f(h) = σ(W_x·x_t + W_h·h + b), over [0, Δ_t] from h_{t−1}")
	specs[0].Default = MethodFused
	specs[0].Choices = append([]string{MethodFused}, specs[0].Choices...)
	return append(specs,
		stage.OptionSpec{Name: OptUnfolds, Type: "int", Default: DefaultUnfolds,
			Help: "fixed-step methods: equal steps per token's Δ_t (ncps's ode_unfolds); adaptive methods choose their own"},
		stage.OptionSpec{Name: OptMaxStep, Type: "float", Default: DefaultMaxStep,
			Help: "fixed-step methods: more steps for a token whose largest Δ_t over the batch exceeds ode_unfolds·max_step, " +
				"so explicit methods stay stable at event boundaries; 0 = exactly ode_unfolds"})
}

// field is the LTC vector field of one token for all B rows, in time s ∈ [0,1]
// scaled by each row's Δ (rows advance different physical times on one grid):
//
//	dh/ds = Δ_b·(f⊙A − h⊙(1/τ + f)),   f = σ(ux + W_h·h),   ux = W_x·x_t + b
//
// It is an odeint.Func; the chunk points it at a token before each Solve and
// Backward. With grads, VJP accumulates dW_h, dA, d(1/τ) and dL/dux.
type field struct {
	B, H   int
	w      *weights
	ux     []float32 // token t's row 0 of W_x·x + b; rows have stride lux
	lux    int
	dt     []float32 // Δ of the B rows (stride ldt)
	ldt    int
	u, s   []float32 // scratch [B,H]
	dux    []float32 // dL/dux of the token, same layout as ux (backward)
	dWh    []float32
	dA, dk []float64
}

var _ odeint.Func = (*field)(nil)

// sigmoidAt sets f.s = σ(ux + h·W_hᵀ).
func (f *field) sigmoidAt(h []float32) {
	B, H := f.B, f.H
	for b := 0; b < B; b++ {
		copy(f.u[b*H:(b+1)*H], f.ux[b*f.lux:])
	}
	num.Gemm(false, false, B, H, H, 1, h, H, f.w.WhT, H, 1, f.u, H)
	for i, v := range f.u {
		f.s[i] = 0.5 * v
	}
	num.TanhFastSlice(f.s, f.s)
	for i, v := range f.s {
		f.s[i] = 0.5 + 0.5*v
	}
}

// Eval implements odeint.Func.
func (f *field) Eval(_ float64, h, dh []float32) {
	f.sigmoidAt(h)
	H := f.H
	for b := 0; b < f.B; b++ {
		d := f.dt[b*f.ldt]
		s, hb, out := f.s[b*H:(b+1)*H], h[b*H:(b+1)*H], dh[b*H:(b+1)*H]
		for i, v := range s {
			out[i] = d * (v*f.w.A[i] - hb[i]*(f.w.invTau[i]+v))
		}
	}
}

// VJP implements odeint.Func.
func (f *field) VJP(_ float64, h, g, gh []float32) {
	f.sigmoidAt(h)
	B, H := f.B, f.H
	du := f.u // u is not needed any more
	for b := 0; b < B; b++ {
		d := f.dt[b*f.ldt]
		s, hb, gb, ghb, dub := f.s[b*H:(b+1)*H], h[b*H:(b+1)*H], g[b*H:(b+1)*H], gh[b*H:(b+1)*H], du[b*H:(b+1)*H]
		for i, v := range s {
			gd := d * gb[i]
			a, k := f.w.A[i], f.w.invTau[i]
			ghb[i] -= gd * (k + v)
			dub[i] = gd * (a - hb[i]) * v * (1 - v)
			if f.dA != nil {
				f.dA[i] += float64(gd * v)
				f.dk[i] -= float64(gd * hb[i])
			}
		}
	}
	num.Gemm(false, false, B, H, H, 1, du, H, f.w.Wh, H, 1, gh, H)
	if f.dWh != nil {
		num.Gemm(true, false, H, H, B, 1, du, H, h, H, 1, f.dWh, H)
		for b := 0; b < B; b++ {
			row := f.dux[b*f.lux:][:H]
			for i, v := range du[b*H : (b+1)*H] {
				row[i] += v
			}
		}
	}
}

// at points the field at token t of the chunk.
func (f *field) at(c *chunk, t int) {
	f.ux, f.lux = c.f[t*c.H:], c.S*c.H
	f.dt, f.ldt = c.dt[t:], c.S
}

func newField(c *chunk) *field {
	return &field{B: c.B, H: c.H, w: c.w, u: make([]float32, c.B*c.H), s: make([]float32, c.B*c.H)}
}

// grid is token t's integration grid in scaled time: [0,1] for the adaptive
// methods; for the fixed ones ode_unfolds equal steps, more if the token's
// largest Δ over the batch needs them to keep each step ≤ max_step.
func (c *chunk) grid(t int) []float64 {
	if c.ode.Method == "bosh3" || c.ode.Method == "dopri5" {
		return []float64{0, 1}
	}
	n := c.unfolds
	if c.maxStep > 0 {
		var m float32
		for b := 0; b < c.B; b++ {
			m = max(m, c.dt[b*c.S+t])
		}
		n = max(n, int(math.Ceil(float64(m)/c.maxStep)))
	}
	ts := make([]float64, n+1)
	for i := range ts {
		ts[i] = float64(i) / float64(n)
	}
	return ts
}

// forwardODE is forward for an odeint method: c.f holds W_x·x + b, and every
// token is one Solve from h_{t−1}. With tape it keeps each token's Solution.
func (c *chunk) forwardODE(ctx context.Context, h0 []float32, tape bool) (nfe, accepted, rejected int, err error) {
	B, S, H := c.B, c.S, c.H
	c.hs = make([]float32, B*(S+1)*H)
	for b := 0; b < B; b++ {
		copy(c.hs[b*(S+1)*H:][:H], h0[b*H:(b+1)*H])
	}
	c.f = make([]float32, B*S*H)
	num.LinearForward(c.f, c.e, c.w.Wx, c.w.bx, B*S, H, H)
	if tape {
		c.sols = make([]*odeint.Solution, S)
	}
	fl := newField(c)
	o := c.ode
	o.Tape = tape
	y := make([]float32, B*H)
	for t := 0; t < S; t++ {
		if t%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return 0, 0, 0, fmt.Errorf("scan: at token %d of %d: %w", t, S, err)
			}
		}
		for b := 0; b < B; b++ {
			copy(y[b*H:(b+1)*H], c.hs[(b*(S+1)+t)*H:])
		}
		fl.at(c, t)
		sol, err := odeint.Solve(fl, y, c.grid(t), o)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("scan: %s at token %d: %w", o.Method, t, err)
		}
		last := sol.Ys[len(sol.Ys)-1]
		for b := 0; b < B; b++ {
			copy(c.hs[(b*(S+1)+t+1)*H:][:H], last[b*H:(b+1)*H])
		}
		nfe, accepted, rejected = nfe+sol.Stats.NFE, accepted+sol.Stats.Accepted, rejected+sol.Stats.Rejected
		if tape {
			c.sols[t] = sol
		} else {
			sol.Recycle()
		}
	}
	return nfe, accepted, rejected, nil
}

// backwardODE is backward for an odeint method: per token, in reverse, the
// solver's own reverse pass through the steps it took.
func (c *chunk) backwardODE(ctx context.Context, dy, dhT []float32) (*grads, error) {
	B, S, H := c.B, c.S, c.H
	w := c.w
	carry := make([]float32, B*H) // dL/dh_t, then dL/dh_{t−1}
	if dhT != nil {
		copy(carry, dhT)
	}
	fl := newField(c)
	dux := make([]float32, B*S*H)
	fl.dux = dux
	fl.dWh = make([]float32, H*H)
	fl.dA, fl.dk = make([]float64, H), make([]float64, H)
	for t := S - 1; t >= 0; t-- {
		if t%ctxEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("scan: backward at token %d of %d: %w", t, S, err)
			}
		}
		if dy != nil {
			for b := 0; b < B; b++ {
				for i, v := range dy[(b*S+t)*H:][:H] {
					carry[b*H+i] += v
				}
			}
		}
		fl.at(c, t)
		fl.dux = dux[t*H:]
		gys := make([][]float32, len(c.grid(t)))
		gys[len(gys)-1] = carry
		g0, err := c.sols[t].Backward(fl, gys)
		if err != nil {
			return nil, fmt.Errorf("scan: backward at token %d: %w", t, err)
		}
		c.sols[t].Release()
		carry = g0
	}
	g := &grads{
		de: stage.OutputBuf(ctx, B*S*H), dh0: carry,
		dWx: make([]float32, H*H), dbx: make([]float32, H), dWh: fl.dWh,
		dA: make([]float32, H), dTauRaw: make([]float32, H),
	}
	num.LinearBackward(g.de, false, g.dWx, g.dbx, dux, c.e, w.Wx, B*S, H, H)
	for i := range H {
		g.dA[i] = float32(fl.dA[i])
		it := float64(w.invTau[i])
		g.dTauRaw[i] = float32(-fl.dk[i] * it * it * float64(num.Sigmoid(w.tauRw[i])))
	}
	return g, nil
}
