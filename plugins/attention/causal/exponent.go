package causal

import (
	"fmt"
	"math"
)

// GrowthExponent is the least-squares slope of log(seconds) against
// log(length): about 2 for a cost quadratic in the length, 1 for a linear one.
// It needs at least two distinct positive lengths and positive times.
func GrowthExponent(lengths []int, seconds []float64) (float64, error) {
	if len(lengths) != len(seconds) {
		return 0, fmt.Errorf("growth exponent: %d lengths but %d times", len(lengths), len(seconds))
	}
	var n, sx, sy, sxx, sxy float64
	for i, l := range lengths {
		if l <= 0 || !(seconds[i] > 0) || math.IsInf(seconds[i], 0) {
			return 0, fmt.Errorf("growth exponent: length %d with time %g: want both positive", l, seconds[i])
		}
		x, y := math.Log(float64(l)), math.Log(seconds[i])
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	den := n*sxx - sx*sx
	if n < 2 || den <= 1e-12 {
		return 0, fmt.Errorf("growth exponent: need at least two distinct lengths, got %v", lengths)
	}
	return (n*sxy - sx*sy) / den, nil
}
