package num

import (
	"math"
)

// Sigmoid is the logistic function in float32.
func Sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// Tanh is tanh in float32.
func Tanh(x float32) float32 { return float32(math.Tanh(float64(x))) }

// GELU is the exact (erf) GELU, PyTorch's default.
func GELU(x float32) float32 {
	v := float64(x)
	return float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
}

// GELUGrad is d GELU(x)/dx.
func GELUGrad(x float32) float32 {
	v := float64(x)
	cdf := 0.5 * (1 + math.Erf(v/math.Sqrt2))
	pdf := math.Exp(-0.5*v*v) / math.Sqrt(2*math.Pi)
	return float32(cdf + v*pdf)
}

// Softplus is log(1+exp(x)) with PyTorch's threshold of 20.
func Softplus(x float32) float32 {
	if x > 20 {
		return x
	}
	return float32(math.Log1p(math.Exp(float64(x))))
}

// ReLUInPlace sets negative values (and NaNs, in the vectorised C loop of the
// cgo build, for slices of 32 or more) to 0. Activations have random signs, so a
// branch per element mispredicts half the time; the C loop is branch-free.
func ReLUInPlace(x []float32) { relu(x) }

// ReLUBackward zeroes dy where the forward output y was not positive, in place.
func ReLUBackward(dy, y []float32) { reluBack(dy[:len(y)], y) }

// reluGo is ReLUInPlace's Go loop.
func reluGo(x []float32) {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
}

// reluBackGo is ReLUBackward's Go loop.
func reluBackGo(dy, y []float32) {
	for i, v := range y {
		if v <= 0 {
			dy[i] = 0
		}
	}
}

// ParallelRows splits [0,n) across the available cores when the work
// (n × costPerRow, in rough flops) is large enough to pay for goroutines.
func ParallelRows(n, costPerRow int, fn func(lo, hi int)) {
	p := Workers()
	if p <= 1 || n < 2 || n*costPerRow < 1<<16 {
		fn(0, n)
		return
	}
	if p > n {
		p = n
	}
	step := (n + p - 1) / p
	Parallel((n+step-1)/step, func(i int) {
		lo := i * step
		fn(lo, min(lo+step, n))
	})
}
