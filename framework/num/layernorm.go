package num

import "math"

// LNEps is PyTorch's default LayerNorm epsilon.
const LNEps = 1e-5

// LayerNormForward normalises each row of x [n,d] over its d values:
// y = (x−μ)/√(σ²+eps)·g + b (biased variance, as PyTorch). g and b may be nil
// (no affine). mean and rstd [n], when non-nil, receive what the backward needs.
func LayerNormForward(y, x, g, b []float32, n, d int, eps float64, mean, rstd []float32) {
	ParallelRows(n, d*8, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			xr, yr := x[i*d:(i+1)*d], y[i*d:(i+1)*d]
			var s float64
			for _, v := range xr {
				s += float64(v)
			}
			mu := s / float64(d)
			var ss float64
			for _, v := range xr {
				c := float64(v) - mu
				ss += c * c
			}
			r := 1 / math.Sqrt(ss/float64(d)+eps)
			m32, r32 := float32(mu), float32(r)
			if mean != nil {
				mean[i], rstd[i] = m32, r32
			}
			switch {
			case g != nil && b != nil:
				for j, v := range xr {
					yr[j] = (v-m32)*r32*g[j] + b[j]
				}
			case g != nil:
				for j, v := range xr {
					yr[j] = (v - m32) * r32 * g[j]
				}
			default:
				for j, v := range xr {
					yr[j] = (v - m32) * r32
				}
			}
		}
	})
}

// LayerNormBackward is LayerNormForward's gradient. It sets dx (adds when addDX)
// and adds to dg and db (either may be nil). mean and rstd are the forward's.
func LayerNormBackward(dx []float32, addDX bool, dg, db, dy, x, g, mean, rstd []float32, n, d int) {
	var dgAcc, dbAcc []float64
	if dg != nil {
		dgAcc = make([]float64, d)
	}
	if db != nil {
		dbAcc = make([]float64, d)
	}
	xhat := make([]float32, d)
	gy := make([]float32, d)
	for i := 0; i < n; i++ {
		xr, dyr := x[i*d:(i+1)*d], dy[i*d:(i+1)*d]
		m, r := mean[i], rstd[i]
		var s1, s2 float64
		for j := range xr {
			xh := (xr[j] - m) * r
			xhat[j] = xh
			gj := dyr[j]
			if g != nil {
				gj *= g[j]
			}
			gy[j] = gj
			s1 += float64(gj)
			s2 += float64(gj) * float64(xh)
			if dgAcc != nil {
				dgAcc[j] += float64(dyr[j]) * float64(xh)
			}
			if dbAcc != nil {
				dbAcc[j] += float64(dyr[j])
			}
		}
		if dx == nil {
			continue
		}
		a1, a2 := float32(s1/float64(d)), float32(s2/float64(d))
		dxr := dx[i*d : (i+1)*d]
		for j := range dxr {
			v := r * (gy[j] - a1 - xhat[j]*a2)
			if addDX {
				dxr[j] += v
			} else {
				dxr[j] = v
			}
		}
	}
	for j := 0; j < d; j++ {
		if dg != nil {
			dg[j] += float32(dgAcc[j])
		}
		if db != nil {
			db[j] += float32(dbAcc[j])
		}
	}
}
