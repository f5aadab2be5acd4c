// Package numtest checks analytic gradients against central finite differences
// (gonum diff/fd), for the tests of every package that writes a backward pass.
package numtest

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
)

// CheckGrad compares grad (the analytic dL/dx) with the central finite difference
// of loss around x. loss must read x afresh on every call; x is restored before
// CheckGrad returns. The comparison is |a−n| ≤ atol + rtol·max(|a|,|n|) per
// element; float32 forward passes want step ≈ 1e-3 and tolerances ≈ 1e-2.
func CheckGrad(t testing.TB, name string, x []float32, grad []float32, loss func() float64, step, atol, rtol float64) {
	t.Helper()
	orig := append([]float32(nil), x...)
	f := func(p []float64) float64 {
		for i := range p {
			x[i] = float32(p[i])
		}
		return loss()
	}
	p := make([]float64, len(x))
	for i, v := range orig {
		p[i] = float64(v)
	}
	num := fd.Gradient(nil, f, p, &fd.Settings{Formula: fd.Central, Step: step})
	copy(x, orig)
	bad := 0
	for i := range num {
		a, n := float64(grad[i]), num[i]
		if math.Abs(a-n) > atol+rtol*math.Max(math.Abs(a), math.Abs(n)) {
			if bad < 5 {
				t.Errorf("%s[%d]: analytic %.6g, numeric %.6g", name, i, a, n)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d gradient entries disagree", name, bad, len(num))
	}
}
