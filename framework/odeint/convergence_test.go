package odeint

import (
	"math"
	"testing"
)

// cosGrowth is dy/dt = cos(t)·y, solved by y(t) = y(0)·exp(sin t).
type cosGrowth struct{}

func (cosGrowth) Eval(t float64, y, dy []float32) {
	c := float32(math.Cos(t))
	for i := range y {
		dy[i] = c * y[i]
	}
}
func (cosGrowth) VJP(t float64, y, g, gy []float32) {
	c := float32(math.Cos(t))
	for i := range g {
		gy[i] += c * g[i]
	}
}

var cosY0 = []float32{1, -0.5, 0.25}

func cosErr(ys [][]float32, ts []float64) float64 {
	var e float64
	for i, t := range ts {
		for j, y0 := range cosY0 {
			e = math.Max(e, math.Abs(float64(ys[i][j])-float64(y0)*math.Exp(math.Sin(t))))
		}
	}
	return e
}

func grid(t0, t1 float64, n int) []float64 {
	ts := make([]float64, n+1)
	for i := range ts {
		ts[i] = t0 + (t1-t0)*float64(i)/float64(n)
	}
	return ts
}

// TestConvergenceOrder halves the step and checks that the global error shrinks
// by about 2^order. bosh3 and dopri5 run their tableaux at fixed steps through
// solveFixed. The step counts keep the errors well above float32 round-off.
func TestConvergenceOrder(t *testing.T) {
	cases := []struct {
		tb *tableau
		n  int // steps of the coarse grid on [0, 6]
	}{
		{tabEuler, 64}, {tabMidpoint, 32}, {tabHeun, 32}, {tabRK4, 8}, {tabBosh3, 16}, {tabDopri5, 4},
	}
	for _, c := range cases {
		var errs []float64
		for _, n := range []int{c.n, 2 * c.n, 4 * c.n} {
			ts := grid(0, 6, n)
			sol, err := solveFixed(cosGrowth{}, cosY0, ts, c.tb, Options{}, newPool(len(cosY0)))
			if err != nil {
				t.Fatal(err)
			}
			errs = append(errs, cosErr(sol.Ys, ts))
		}
		p1, p2 := math.Log2(errs[0]/errs[1]), math.Log2(errs[1]/errs[2])
		t.Logf("%s: errors %.3g %.3g %.3g, observed order %.2f %.2f", c.tb.name, errs[0], errs[1], errs[2], p1, p2)
		want := float64(c.tb.order)
		if math.Abs(p2-want) > 0.4 || math.Abs(p1-want) > 0.85 { // the coarse pair is pre-asymptotic
			t.Errorf("%s: observed order %.2f, %.2f; want %g", c.tb.name, p1, p2, want)
		}
	}
}

// TestAdaptiveTolerance: as rtol = atol go 1e-3 → 1e-6 the global error of
// dopri5 and bosh3 shrinks, and stays within a modest multiple of what the
// controller allows: about tol·(1+|y|) per accepted step.
func TestAdaptiveTolerance(t *testing.T) {
	ts := grid(0, 6, 12)
	for _, m := range []string{"bosh3", "dopri5"} {
		prev, first := math.Inf(1), 0.0
		prevNFE := 0
		for _, tol := range []float64{1e-3, 1e-4, 1e-5, 1e-6} {
			sol, err := Solve(cosGrowth{}, cosY0, ts, Options{Method: m, RTol: tol, ATol: tol})
			if err != nil {
				t.Fatal(err)
			}
			e := cosErr(sol.Ys, ts)
			t.Logf("%s tol %g: error %.3g, stats %+v", m, tol, e, sol.Stats)
			if bound := 2 * tol * (1 + math.E) * float64(sol.Stats.Accepted); e > bound {
				t.Errorf("%s tol %g: error %.3g above 2·tol·(1+max|y|)·steps = %.3g", m, tol, e, bound)
			}
			if e >= prev {
				t.Errorf("%s tol %g: error %.3g did not shrink (was %.3g)", m, tol, e, prev)
			}
			if sol.Stats.NFE <= prevNFE {
				t.Errorf("%s tol %g: NFE %d did not grow", m, tol, sol.Stats.NFE)
			}
			if tol == 1e-3 {
				first = e
			} else if tol == 1e-6 && e > first/50 {
				t.Errorf("%s: error %.3g at tol 1e-6 is not 50× below %.3g at 1e-3", m, e, first)
			}
			prev, prevNFE = e, sol.Stats.NFE
		}
	}
}
