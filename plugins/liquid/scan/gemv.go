package scan

// useGoGemv selects the Go loops below instead of num.Gemm for the per-token
// matrix–vector products when B == 1. See doc.go for the measurement.
const useGoGemv = false

// gemvAdd sets y[i] += Σ_j w[i,j]·x[j] for w [len(y), n].
func gemvAdd(y, w, x []float32, n int) {
	x = x[:n]
	i := 0
	for ; i+4 <= len(y); i += 4 {
		r0, r1, r2, r3 := w[i*n:][:n], w[(i+1)*n:][:n], w[(i+2)*n:][:n], w[(i+3)*n:][:n]
		var s0, s1, s2, s3 float32
		for j, v := range x {
			s0 += r0[j] * v
			s1 += r1[j] * v
			s2 += r2[j] * v
			s3 += r3[j] * v
		}
		y[i] += s0
		y[i+1] += s1
		y[i+2] += s2
		y[i+3] += s3
	}
	for ; i < len(y); i++ {
		r := w[i*n:][:n]
		var s float32
		for j, v := range x {
			s += r[j] * v
		}
		y[i] += s
	}
}

// gemvTAdd sets y[j] += Σ_i x[i]·w[i,j] for w [len(x), n], y [n].
func gemvTAdd(y, w, x []float32, n int) {
	y = y[:n]
	for i, a := range x {
		if a == 0 {
			continue
		}
		r := w[i*n:][:n]
		for j, v := range r {
			y[j] += a * v
		}
	}
}
