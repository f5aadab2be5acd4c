package odeint

import (
	"fmt"

	"liquidlab/framework/num"
)

// stageTime is t0 + c·dt, with the end of the step written t0 + dt as the
// reference does.
func stageTime(t0, dt, c float64) float64 {
	switch c {
	case 0:
		return t0
	case 1:
		return t0 + dt
	}
	return t0 + c*dt
}

// rowTerms appends the nonzero terms c[l]·v[l] (l < len(c)) to dst[:0].
func rowTerms(dst []term, c []float32, v [][]float32) []term {
	dst = dst[:0]
	for l, x := range c {
		if x != 0 {
			dst = append(dst, term{x, v[l]})
		}
	}
	return dst
}

// solveFixed takes one step of tb per interval of ts: y ← y + dt·Σ b·k.
func solveFixed(f Func, y0 []float32, ts []float64, tb *tableau, o Options, p *pool) (*Solution, error) {
	n, s := len(y0), tb.stages()
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
	var scratch []float32
	if s > 1 && tp == nil {
		scratch = num.GetBuf(n)
		defer num.PutBuf(scratch)
	}
	terms := make([]term, 0, s)
	var cs []float32 // EvalComb's arguments
	var vs [][]float32
	for i := 0; i+1 < len(ts); i++ {
		if o.Stop != nil {
			if err := o.Stop(); err != nil {
				return nil, err
			}
		}
		t0, dt := ts[i], ts[i+1]-ts[i]
		dt32 := float32(dt)
		var st [][]float32
		if tp != nil {
			st = make([][]float32, s)
			st[0] = y
		}
		for j := 0; j < s; j++ {
			yj := y
			if j > 0 {
				if tp != nil {
					st[j] = tp.get(n) // written by lincomb before it is read
					yj = st[j]
				} else {
					yj = scratch
				}
				terms = rowTerms(terms, tb.a32[j], k)
				if tp == nil {
					evalStage(f, p, stageTime(t0, dt, tb.c[j]), yj, y, dt32, terms, k[j], &cs, &vs)
					continue
				}
				p.lincomb(yj, y, dt32, terms)
			}
			f.Eval(stageTime(t0, dt, tb.c[j]), yj, k[j])
		}
		sol.Stats.NFE += s
		out := num.GetBuf(n)
		terms = rowTerms(terms, tb.b32, k)
		if !p.lincomb(out, y, dt32, terms) {
			return nil, fmt.Errorf("odeint: %s: NaN or Inf in the state at step %d (t=%g → %g); try a smaller step or check f", tb.name, i+1, t0, ts[i+1])
		}
		sol.Ys[i+1] = out
		sol.Stats.Accepted++
		if tp != nil {
			tp.steps = append(tp.steps, tapeStep{t0: t0, dt: dt, ys: st})
			y = append(tp.get(n)[:0], out...)
		} else {
			y = out
		}
	}
	sol.tape = tp
	return sol, nil
}
