package odeint

import (
	"errors"
	"fmt"
	"liquidlab/framework/num"
	"math"
	"strings"
)

// Func is the right-hand side of dy/dt = f(t, y) on a flat float32 state.
type Func interface {
	// Eval writes f(t, y) into dy; len(dy) == len(y). It must not retain y or dy.
	Eval(t float64, y, dy []float32)
	// VJP adds gᵀ·∂f/∂y evaluated at (t, y) into gy and accumulates gᵀ·∂f/∂θ into
	// the function's own parameter-gradient buffers (the Func owns those).
	VJP(t float64, y, g, gy []float32)
}

// CombFunc is a Func that can also evaluate f at a linear combination it forms
// itself. The solvers use it for the stage inputs they do not keep (no tape;
// every stage of an adaptive step but the last), which then never go through
// memory. EvalComb must set dy = f(t, x) with x = base + scale·s and s formed
// exactly as the solver's own combination: s = cs[0]·vs[0], then
// s = s + cs[k]·vs[k] left to right (s = 0 without terms), every operation
// rounded to float32, no fused multiply-adds; then the solution has the same
// bits as with Eval. dy does not overlap base or vs.
type CombFunc interface {
	Func
	EvalComb(t float64, base []float32, scale float32, cs []float32, vs [][]float32, dy []float32)
}

// evalStage sets dy = f(t, base + scale·Σ terms), through EvalComb when f has it,
// else by forming the argument in x (which it then holds).
func evalStage(f Func, p *pool, t float64, x, base []float32, scale float32, terms []term, dy []float32, cs *[]float32, vs *[][]float32) {
	if cf, ok := f.(CombFunc); ok {
		*cs, *vs = (*cs)[:0], (*vs)[:0]
		for _, tm := range terms {
			*cs, *vs = append(*cs, tm.c), append(*vs, tm.v)
		}
		cf.EvalComb(t, base, scale, *cs, *vs, dy)
		return
	}
	p.lincomb(x, base, scale, terms)
	f.Eval(t, x, dy)
}

// Options selects the method and its tolerances.
type Options struct {
	Method     string  // "euler", "midpoint", "heun", "rk4", "bosh3", "dopri5"
	RTol, ATol float64 // adaptive methods; zero means 1e-3 (the seed's values)
	Tape       bool    // record what Backward needs
	// LastOnly: the caller reads only the solution at the last time. Ys[0]
	// is then nil (no copy of y0), and so are the intermediate times of an
	// adaptive method (no dense output there; a fixed-step method's are its
	// states and stay). The last one has the same bits either way, and
	// Backward still accepts gradients for every time.
	LastOnly bool
	MaxSteps int // adaptive: error after this many attempted steps (0 = 10000)
	// Stop, when set, is called before every step; an error ends the solve
	// with it (a cancelled context: func() error { return ctx.Err() }).
	Stop func() error
}

// Stats counts the work of one Solve.
type Stats struct{ NFE, Accepted, Rejected int }

// Solution is the result of Solve.
type Solution struct {
	Ys    [][]float32 // solution at each requested time (Ys[0] is a copy of y0); see Options.LastOnly
	Stats Stats
	tape  *tape
}

// DefaultTol is the rtol and atol used when Options leaves them zero.
const DefaultTol = 1e-3

// DefaultMaxSteps is the MaxSteps used when Options leaves it zero.
const DefaultMaxSteps = 10000

// Methods lists the accepted Options.Method names.
func Methods() []string {
	out := make([]string, len(methods))
	for i, tb := range methods {
		out[i] = tb.name
	}
	return out
}

// Adaptive reports whether method adapts its step size to rtol and atol; the
// fixed-step methods (euler, midpoint, heun, rk4) take one step per interval
// and ignore both.
func Adaptive(method string) bool {
	tb := lookup(method)
	return tb != nil && tb.adaptive()
}

// tapeStep is one step on the differentiable path: its start time, size and the
// input of every stage (for adaptive methods ys[0] is the previous step's last
// stage input, or y0).
type tapeStep struct {
	t0, dt float64
	ys     [][]float32
}

// outRef says which accepted step an adaptive output was interpolated from.
type outRef struct {
	step int
	x    float64
}

type tape struct {
	tab   *tableau
	n     int
	ts    []float64
	y0    []float32
	steps []tapeStep
	outs  []outRef // adaptive: outs[i] for Ys[i+1]
	// owned lists the vectors the tape took from num's buffer pool (y0 and
	// the stage inputs; a step's ys[0] is one of them or the previous step's
	// last stage), handed back once by free.
	owned [][]float32
}

// get takes a vector of n values from the pool for the tape (contents stale).
func (tp *tape) get(n int) []float32 {
	v := num.GetBuf(n)
	tp.owned = append(tp.owned, v)
	return v
}

// free hands the tape's vectors back to the pool; the tape is unusable after.
func (tp *tape) free() {
	num.PutBuf(tp.owned...)
	*tp = tape{}
}

// replay forces an adaptive solve to take recorded step sizes and accept/reject
// decisions; the tests use it to hold the step sequence fixed under perturbations.
type replay struct {
	dts    []float64 // size of every attempted step
	accept []bool
	rec    bool // record instead of replaying
}

// Solve integrates dy/dt = f(t, y) from y0 at ts[0] and returns the solution at
// every time of ts (strictly increasing, at least two). y0 is not modified.
func Solve(f Func, y0 []float32, ts []float64, opt Options) (*Solution, error) {
	return solve(f, y0, ts, opt, nil)
}

func solve(f Func, y0 []float32, ts []float64, opt Options, rp *replay) (*Solution, error) {
	tb, o, err := check(f, y0, ts, opt)
	if err != nil {
		return nil, err
	}
	p := newPool(len(y0))
	if !p.allFinite(y0) {
		return nil, fmt.Errorf("odeint: %s: y0 holds NaN or Inf", tb.name)
	}
	if tb.adaptive() {
		return solveAdaptive(f, y0, ts, tb, o, p, rp)
	}
	return solveFixed(f, y0, ts, tb, o, p)
}

func check(f Func, y0 []float32, ts []float64, opt Options) (*tableau, Options, error) {
	name := opt.Method
	if name == "" {
		name = "dopri5"
	}
	tb := lookup(name)
	if tb == nil {
		return nil, opt, fmt.Errorf("odeint: unknown method %q (valid: %s)", opt.Method, strings.Join(Methods(), ", "))
	}
	if f == nil {
		return nil, opt, fmt.Errorf("odeint: %s: nil Func", name)
	}
	if len(y0) == 0 {
		return nil, opt, fmt.Errorf("odeint: %s: empty state y0", name)
	}
	if len(ts) < 2 {
		return nil, opt, fmt.Errorf("odeint: %s: need at least 2 times, got %d", name, len(ts))
	}
	for i, t := range ts {
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, opt, fmt.Errorf("odeint: %s: ts[%d] = %g is not finite", name, i, t)
		}
		if i > 0 && !(t > ts[i-1]) {
			return nil, opt, fmt.Errorf("odeint: %s: times must be strictly increasing: ts[%d] = %g after ts[%d] = %g", name, i, t, i-1, ts[i-1])
		}
	}
	if opt.RTol < 0 || opt.ATol < 0 || math.IsNaN(opt.RTol) || math.IsNaN(opt.ATol) {
		return nil, opt, fmt.Errorf("odeint: %s: tolerances must be ≥ 0 (rtol %g, atol %g)", name, opt.RTol, opt.ATol)
	}
	if opt.MaxSteps < 0 {
		return nil, opt, fmt.Errorf("odeint: %s: MaxSteps must be ≥ 0, got %d", name, opt.MaxSteps)
	}
	if opt.RTol == 0 {
		opt.RTol = DefaultTol
	}
	if opt.ATol == 0 {
		opt.ATol = DefaultTol
	}
	if opt.MaxSteps == 0 {
		opt.MaxSteps = DefaultMaxSteps
	}
	opt.Method = name
	return tb, opt, nil
}

// Release hands the tape's vectors back to num's buffer pool; Backward fails
// afterwards. Ys stay valid.
func (s *Solution) Release() {
	if s != nil && s.tape != nil {
		s.tape.free()
		s.tape = nil
	}
}

// Recycle releases the tape and hands the output vectors Ys back to a buffer
// pool for later solves; the caller must not use Ys (or anything aliasing them)
// afterwards.
func (s *Solution) Recycle() {
	if s == nil {
		return
	}
	s.Release()
	num.PutBuf(s.Ys...)
	s.Ys = nil
}

// ErrNoTape is returned by Backward when the solve did not record a tape (or it was released).
var ErrNoTape = errors.New("odeint: Backward needs a tape: solve with Options.Tape and call Backward before Release")
