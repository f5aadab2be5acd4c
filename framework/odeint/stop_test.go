package odeint

import (
	"errors"
	"testing"
)

// Options.Stop ends a solve, fixed or adaptive, and BackwardStop ends a
// backward, with its error after the steps it allowed; nil Stop changes
// nothing.
func TestStop(t *testing.T) {
	errStop := errors.New("stopped")
	ts := []float64{0, 0.25, 0.5, 0.75, 1}
	y0 := []float32{1, 2, 3}
	for _, m := range []string{"euler", "rk4", "bosh3", "dopri5"} {
		calls := 0
		stop := func() error {
			calls++
			if calls > 1 {
				return errStop
			}
			return nil
		}
		if _, err := Solve(cosGrowth{}, y0, ts, Options{Method: m, Stop: stop}); !errors.Is(err, errStop) {
			t.Errorf("%s: err %v, want the Stop error", m, err)
		}
		if calls != 2 {
			t.Errorf("%s: Stop called %d times, want 2 (it ends the solve at once)", m, calls)
		}
		sol, err := Solve(cosGrowth{}, y0, ts, Options{Method: m, Tape: true})
		if err != nil {
			t.Fatal(err)
		}
		gys := make([][]float32, len(ts))
		gys[len(ts)-1] = []float32{1, 1, 1}
		want, err := sol.Backward(cosGrowth{}, gys)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sol.BackwardStop(cosGrowth{}, gys, func() error { return nil })
		if err != nil || len(got) != len(want) || got[0] != want[0] {
			t.Errorf("%s: BackwardStop without a stop: %v, %v; Backward: %v", m, got, err, want)
		}
		if _, err := sol.BackwardStop(cosGrowth{}, gys, func() error { return errStop }); !errors.Is(err, errStop) {
			t.Errorf("%s: BackwardStop: err %v, want the Stop error", m, err)
		}
	}
}
