//go:build !cgo || noopenblas

package train

func adamwKernel(w, g, m, v []float32, b1, b2, decay, step, invSqrtBC2, eps float32) {
	adamwRule(w, g, m, v, b1, b2, decay, step, invSqrtBC2, eps)
}

// adamwPath is the cgo build's vector-path switch; the Go loop has one path.
var adamwPath = 2
