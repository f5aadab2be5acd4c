package odeint

import (
	"fmt"
	"liquidlab/framework/num"
	"math"
)

// solveAdaptive is seed_torch.py's _dopri5 generalised to any FSAL tableau with
// an embedded error estimate and dense-output mid weights (dopri5, bosh3).
func solveAdaptive(f Func, y0 []float32, ts []float64, tb *tableau, o Options, p *pool, rp *replay) (*Solution, error) {
	n, s := len(y0), tb.stages()
	rtol, atol := o.RTol, o.ATol
	fn := float64(n)
	sol := &Solution{Ys: make([][]float32, len(ts))}
	if !o.LastOnly {
		sol.Ys[0] = append(num.GetBuf(len(y0))[:0], y0...)
	}
	var tp *tape
	y := y0
	if o.Tape {
		tp = &tape{tab: tb, n: n, ts: append([]float64(nil), ts...)}
		tp.y0 = append(tp.get(n)[:0], y0...)
		y = tp.y0
	}
	k := make([][]float32, s)
	for j := range k {
		k[j] = num.GetBuf(n)
	}
	defer num.PutBuf(k...)
	// Without a tape every stage input goes to ybuf[yb]: each is consumed by f
	// before the next is formed, and the last one is the new state.
	var ybuf [2][]float32
	if tp == nil {
		ybuf = [2][]float32{num.GetBuf(n), num.GetBuf(n)}
		defer num.PutBuf(ybuf[:]...)
	}
	yb := 0

	// Hairer's initial step (torchdiffeq's _select_initial_step, exponent 1/order).
	f.Eval(ts[0], y, k[0])
	sol.Stats.NFE++
	s0, s1, ok := p.initNorms(y, k[0], rtol, atol)
	if !ok {
		return nil, fmt.Errorf("odeint: %s: f(t0=%g, y0) holds NaN or Inf", tb.name, ts[0])
	}
	d0, d1 := math.Sqrt(s0/fn), math.Sqrt(s1/fn)
	h0 := 0.01 * d0 / d1
	if d0 < 1e-5 || d1 < 1e-5 {
		h0 = 1e-6
	}
	probe := k[2] // free until the first step; adaptive tableaux have ≥ 3 stages
	p.lincomb(probe, y, float32(h0), []term{{1, k[0]}})
	f.Eval(ts[0]+h0, probe, k[1])
	sol.Stats.NFE++
	d2 := math.Sqrt(p.diffNorm(y, k[0], k[1], rtol, atol)/fn) / h0
	if math.IsNaN(d2) || math.IsInf(d2, 0) {
		return nil, fmt.Errorf("odeint: %s: f(t0+h0=%g, y0+h0·f0) holds NaN or Inf while choosing the first step", tb.name, ts[0]+h0)
	}
	var h1 float64
	if d1 <= 1e-15 && d2 <= 1e-15 {
		h1 = math.Max(1e-6, h0*1e-3)
	} else {
		h1 = math.Pow(0.01/math.Max(d1, d2), 1/float64(tb.order))
	}
	dt := math.Min(100*h0, h1)

	expo := -1 / float64(tb.order)
	terms := make([]term, 0, s)
	var cs []float32 // EvalComb's arguments
	var vs [][]float32
	var st [][]float32 // tape mode: stage inputs of the current attempt
	tc1 := ts[0]
	oi, attempts := 1, 0
	for oi < len(ts) {
		if o.Stop != nil {
			if err := o.Stop(); err != nil {
				return nil, err
			}
		}
		if attempts >= o.MaxSteps {
			return nil, fmt.Errorf("odeint: %s: MaxSteps (%d) exceeded at t=%g before reaching t=%g (%d accepted, %d rejected); raise MaxSteps or loosen rtol/atol",
				tb.name, o.MaxSteps, tc1, ts[len(ts)-1], sol.Stats.Accepted, sol.Stats.Rejected)
		}
		if rp != nil && !rp.rec {
			if attempts >= len(rp.dts) {
				return nil, fmt.Errorf("odeint: %s: replay ran out of steps", tb.name)
			}
			dt = rp.dts[attempts]
		}
		attempts++
		t0 := tc1
		t1 := t0 + dt
		if !(t1 > t0) {
			return nil, fmt.Errorf("odeint: %s: step size underflow (dt=%g) at t=%g after %d accepted steps; the problem may be stiff or f discontinuous",
				tb.name, dt, t0, sol.Stats.Accepted)
		}
		dt32 := float32(dt)
		if tp != nil && st == nil {
			st = make([][]float32, s)
			for j := 1; j < s; j++ {
				st[j] = tp.get(n) // written by lincomb before it is read
			}
		}
		var ynew []float32
		for j := 1; j < s; j++ {
			yj := ybuf[yb]
			if tp != nil {
				yj = st[j]
			}
			terms = rowTerms(terms, tb.a32[j], k)
			if tp == nil && j < s-1 {
				// An intermediate stage input that nothing keeps.
				evalStage(f, p, stageTime(t0, dt, tb.c[j]), yj, y, dt32, terms, k[j], &cs, &vs)
				continue
			}
			p.lincomb(yj, y, dt32, terms)
			f.Eval(stageTime(t0, dt, tb.c[j]), yj, k[j])
			ynew = yj
		}
		sol.Stats.NFE += s - 1
		terms = rowTerms(terms, tb.err32, k)
		ratio, ok := p.errorRatio(y, ynew, dt32, terms, rtol, atol)
		if !ok {
			return nil, fmt.Errorf("odeint: %s: NaN or Inf in the state at step %d (t=%g → %g, dt=%g); check f or lower the tolerances",
				tb.name, attempts, t0, t1, dt)
		}
		accept := ratio <= 1
		if rp != nil {
			if rp.rec {
				rp.dts = append(rp.dts, dt)
				rp.accept = append(rp.accept, accept)
			} else {
				accept = rp.accept[attempts-1]
			}
		}
		if accept {
			sol.Stats.Accepted++
			if oi < len(ts) && ts[oi] <= t1 {
				mid := rowTerms(terms, tb.mid32, k)
				for ; oi < len(ts) && ts[oi] <= t1; oi++ {
					x := (ts[oi] - t0) / (t1 - t0)
					if !o.LastOnly || oi == len(ts)-1 {
						out := num.GetBuf(n)
						p.interp(out, y, ynew, k[0], k[s-1], mid, dt, x)
						sol.Ys[oi] = out
					}
					if tp != nil {
						tp.outs = append(tp.outs, outRef{step: len(tp.steps), x: x})
					}
				}
			}
			if tp != nil {
				st[0] = y
				tp.steps = append(tp.steps, tapeStep{t0: t0, dt: dt, ys: st})
				st = nil
			} else {
				yb ^= 1
			}
			y = ynew
			k[0], k[s-1] = k[s-1], k[0]
			tc1 = t1
		} else {
			sol.Stats.Rejected++
		}
		fac := 10.0
		if ratio != 0 {
			lo := 0.2
			if ratio < 1 {
				lo = 1
			}
			fac = math.Min(10, math.Max(0.9*math.Pow(ratio, expo), lo))
		}
		dt *= fac
	}
	sol.tape = tp
	return sol, nil
}
