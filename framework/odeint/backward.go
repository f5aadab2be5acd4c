package odeint

import (
	"fmt"

	"liquidlab/framework/num"
)

// Backward takes dL/dYs[i] for each output (nil entries = no gradient;
// len(gys)==len(ts)) and returns dL/dy0, calling f.VJP for every function
// evaluation on the differentiable path. Requires Options.Tape.
//
// It is reverse mode through the computation Solve performed, with the step
// sizes (and accept/reject decisions) held constant, as the reference computes
// them under no_grad. Stages are visited in reverse order, each with one
// f.VJP(t_i, Y_i, g_i, gy_i) call; parameter gradients accumulate in f. The tape
// is kept, so Backward may be called again (gradients then add up in f).
// The returned vector is the caller's, from num's buffer pool: it may give it
// back (num.PutBuf) when done.
func (s *Solution) Backward(f Func, gys [][]float32) ([]float32, error) {
	return s.BackwardStop(f, gys, nil)
}

// BackwardStop is Backward that calls stop, when set, before reversing each
// step and ends with its error (a cancelled context).
func (s *Solution) BackwardStop(f Func, gys [][]float32, stop func() error) ([]float32, error) {
	if s == nil || s.tape == nil {
		return nil, ErrNoTape
	}
	tp := s.tape
	if f == nil {
		return nil, fmt.Errorf("odeint: %s: Backward: nil Func", tp.tab.name)
	}
	if len(gys) != len(tp.ts) {
		return nil, fmt.Errorf("odeint: %s: Backward: got %d output gradients for %d times", tp.tab.name, len(gys), len(tp.ts))
	}
	for i, g := range gys {
		if g != nil && len(g) != tp.n {
			return nil, fmt.Errorf("odeint: %s: Backward: gradient %d has length %d, state has %d", tp.tab.name, i, len(g), tp.n)
		}
	}
	p := newPool(tp.n)
	var gy0 []float32
	var err error
	if tp.tab.adaptive() {
		gy0, err = backAdaptive(f, tp, gys, p, stop)
	} else {
		gy0, err = backFixed(f, tp, gys, p, stop)
	}
	if err != nil {
		return nil, err
	}
	if gys[0] != nil {
		p.axpyInto(gy0, true, 1, gys[0])
	}
	return gy0, nil
}

// backFixed reverses y ← y + dt·Σ b·k, one step per interval.
func backFixed(f Func, tp *tape, gys [][]float32, p *pool, stop func() error) ([]float32, error) {
	tb, n, s := tp.tab, tp.n, tp.tab.stages()
	gy := num.GetBuf(n) // returned
	clear(gy)
	sc := scratchBufs{n: n} // scratch, zeroed, from num's pool and back
	defer sc.release()
	scratch := sc.get
	last := -1
	for i := len(gys) - 1; i >= 1; i-- {
		if gys[i] != nil {
			last = i - 1
			break
		}
	}
	gY := make([][]float32, s)
	present := make([]bool, s)
	gk := scratch()
	terms := make([]term, 0, s+1)
	for st := last; st >= 0; st-- {
		if stop != nil {
			if err := stop(); err != nil {
				return nil, err
			}
		}
		if g := gys[st+1]; g != nil {
			p.axpyInto(gy, true, 1, g)
		}
		step := tp.steps[st]
		dt32 := float32(step.dt)
		for j := s - 1; j >= 0; j-- {
			terms = terms[:0]
			if tb.b32[j] != 0 {
				terms = append(terms, term{tb.b32[j], gy})
			}
			for i := j + 1; i < s; i++ {
				if present[i] && tb.a32[i][j] != 0 {
					terms = append(terms, term{tb.a32[i][j], gY[i]})
				}
			}
			present[j] = len(terms) > 0
			if !present[j] {
				continue
			}
			p.lincomb(gk, nil, dt32, terms)
			if gY[j] == nil {
				gY[j] = scratch()
			} else {
				clear(gY[j])
			}
			f.VJP(stageTime(step.t0, step.dt, tb.c[j]), step.ys[j], gk, gY[j])
		}
		terms = terms[:0]
		for j := 0; j < s; j++ {
			if present[j] {
				terms = append(terms, term{1, gY[j]})
			}
		}
		if len(terms) > 0 {
			p.lincomb(gy, gy, 1, terms)
		}
	}
	return gy, nil
}

// backAdaptive reverses the accepted steps of an FSAL method: stage inputs,
// the FSAL link (a step's k₀ is the previous step's last stage, or f0 = f(t0, y0))
// and the dense-output interpolants.
func backAdaptive(f Func, tp *tape, gys [][]float32, p *pool, stop func() error) ([]float32, error) {
	tb, n, s := tp.tab, tp.n, tp.tab.stages()
	sc := scratchBufs{n: n} // scratch, zeroed, from num's pool and back
	defer sc.release()
	scratch := sc.get
	gy := num.GetBuf(n) // adjoint of the state after the step being reversed (returned; the caller may give it back to num's pool)
	clear(gy)
	gks := scratch() // adjoint of that step's last stage derivative
	last := -1
	for i, o := range tp.outs {
		if gys[i+1] != nil {
			last = max(last, o.step)
		}
	}
	if last < 0 {
		return gy, nil
	}
	gY := make([][]float32, s)
	present := make([]bool, s)
	gk := scratch()
	var gmid, gf0, gy0x []float32
	terms := make([]term, 0, s+2)
	oi := len(tp.outs) - 1
	for st := last; st >= 0; st-- {
		if stop != nil {
			if err := stop(); err != nil {
				return nil, err
			}
		}
		step := tp.steps[st]
		dt32 := float32(step.dt)
		hasOut := false
		for ; oi >= 0 && tp.outs[oi].step >= st; oi-- {
			g := gys[oi+1]
			if g == nil || tp.outs[oi].step != st {
				continue
			}
			if gmid == nil {
				gmid, gf0, gy0x = scratch(), scratch(), scratch()
			}
			p.interpBack(g, tp.outs[oi].x, step.dt, !hasOut, gy0x, gy, gmid, gf0, gks)
			hasOut = true
		}
		for j := s - 1; j >= 1; j-- {
			terms = terms[:0]
			for i := j + 1; i < s; i++ {
				if present[i] && tb.a32[i][j] != 0 {
					terms = append(terms, term{tb.a32[i][j], gY[i]})
				}
			}
			if hasOut && tb.mid32[j] != 0 {
				terms = append(terms, term{tb.mid32[j], gmid})
			}
			if gY[j] == nil {
				gY[j] = scratch()
			}
			if j == s-1 {
				// Y_last is the new state: its adjoint starts from gy.
				p.lincomb(gk, gks, dt32, terms)
				copy(gY[j], gy)
			} else {
				present[j] = len(terms) > 0
				if !present[j] {
					continue
				}
				p.lincomb(gk, nil, dt32, terms)
				clear(gY[j])
			}
			present[j] = true
			f.VJP(stageTime(step.t0, step.dt, tb.c[j]), step.ys[j], gk, gY[j])
		}
		// Adjoint of k₀ (the previous step's last stage, or f0).
		terms = terms[:0]
		for i := 1; i < s; i++ {
			if present[i] && tb.a32[i][0] != 0 {
				terms = append(terms, term{tb.a32[i][0], gY[i]})
			}
		}
		if hasOut && tb.mid32[0] != 0 {
			terms = append(terms, term{tb.mid32[0], gmid})
		}
		var base []float32
		if hasOut {
			base = gf0
		}
		p.lincomb(gks, base, dt32, terms)
		// Adjoint of the step's input state.
		terms = terms[:0]
		for i := 1; i < s; i++ {
			if present[i] {
				terms = append(terms, term{1, gY[i]})
			}
		}
		base = nil
		if hasOut {
			terms = append(terms, term{1, gmid})
			base = gy0x
		}
		p.lincomb(gy, base, 1, terms)
	}
	f.VJP(tp.ts[0], tp.y0, gks, gy)
	return gy, nil
}

// scratchBufs hands out zeroed vectors of n values from num's buffer pool and
// takes them all back at once.
type scratchBufs struct {
	n    int
	bufs [][]float32
}

func (s *scratchBufs) get() []float32 {
	v := num.GetBuf(s.n)
	clear(v)
	s.bufs = append(s.bufs, v)
	return v
}

func (s *scratchBufs) release() {
	num.PutBuf(s.bufs...)
	s.bufs = nil
}
