//go:build !cgo || noopenblas

package train

import "math"

func adamwKernel(w, g, m, v []float32, b1, b2, decay, step, invSqrtBC2, eps float32) {
	for i := range w {
		gi := g[i]
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		denom := float32(math.Sqrt(float64(v[i])))*invSqrtBC2 + eps
		w[i] = w[i]*decay - step*m[i]/denom
	}
}

// adamwPath is the cgo build's vector-path switch; the Go loop has one path.
var adamwPath = 2
