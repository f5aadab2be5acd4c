//go:build !cgo || noopenblas

package num

import "math"

// LogSumExp returns log Σ exp(x_j) given mx = max_j x_j. When dst is non-nil it
// also writes the softmax exp(x_j − lse) times scale into it (rounded twice, as
// multiplying the softmax afterwards would).
func LogSumExp(x []float32, mx float32, dst []float32, scale float32) float64 {
	var s float64
	var a float32
	for j, v := range x {
		e := ExpFast(v - mx)
		if dst != nil {
			dst[j] = e
		}
		a += e
		if j&1023 == 1023 {
			s += float64(a)
			a = 0
		}
	}
	s += float64(a)
	if dst != nil {
		inv := float32(1 / s)
		for j := range x {
			dst[j] = (dst[j] * inv) * scale
		}
	}
	return float64(mx) + math.Log(s)
}

// MaxArg returns the largest value of x and the first index holding it
// (NaNs are skipped; a row of NaNs gives −Inf at 0). x must not be empty.
func MaxArg(x []float32) (float32, int) {
	m, arg := float32(math.Inf(-1)), -1
	for j, v := range x {
		if v > m || (arg < 0 && v == m) { // a row whose maximum is −Inf
			m, arg = v, j
		}
	}
	return m, max(arg, 0) // all NaN: −Inf at 0
}
