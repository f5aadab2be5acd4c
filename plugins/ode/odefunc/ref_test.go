package odefunc

import "math"

// Plain float64 references of the seed's formulas, written from SEED_MODEL.md
// independently of the kernels under test.

func refLN(x, g, b []float64) []float64 {
	h := float64(len(x))
	var mu, v float64
	for _, e := range x {
		mu += e
	}
	mu /= h
	for _, e := range x {
		v += (e - mu) * (e - mu)
	}
	r := 1 / math.Sqrt(v/h+1e-5)
	out := make([]float64, len(x))
	for j, e := range x {
		out[j] = (e-mu)*r*g[j] + b[j]
	}
	return out
}

// refF is ODEFunc on one token vector.
func refF(y, g, b []float64) []float64 {
	var ss float64
	for _, v := range y {
		ss += v * v
	}
	mag := math.Sqrt(ss)
	x := make([]float64, len(y))
	for j, v := range y {
		decay := -0.1 * (1 + 0.01*mag) * v
		gelu := 0.5 * v * (1 + math.Erf(v/math.Sqrt2))
		x[j] = decay + 0.8*math.Tanh(v) + 0.2*gelu + 0.1*v
	}
	return refLN(x, g, b)
}

// refFAll applies refF to every row of y [n, h].
func refFAll(y []float64, h int, g, b []float64) []float64 {
	out := make([]float64, len(y))
	for i := 0; i < len(y); i += h {
		copy(out[i:i+h], refF(y[i:i+h], g, b))
	}
	return out
}

// refSolve integrates with euler or the rk4 3/8 rule over ts; subdiv steps per interval.
func refSolve(method string, y0 []float64, h int, ts []float64, subdiv int, g, b []float64) []float64 {
	f := func(y []float64) []float64 { return refFAll(y, h, g, b) }
	axpy := func(y []float64, terms ...any) []float64 {
		out := append([]float64(nil), y...)
		for k := 0; k < len(terms); k += 2 {
			c, v := terms[k].(float64), terms[k+1].([]float64)
			for i := range out {
				out[i] += c * v[i]
			}
		}
		return out
	}
	y := append([]float64(nil), y0...)
	for i := 0; i+1 < len(ts); i++ {
		dt := (ts[i+1] - ts[i]) / float64(subdiv)
		for s := 0; s < subdiv; s++ {
			switch method {
			case "euler":
				y = axpy(y, dt, f(y))
			case "rk4":
				k1 := f(y)
				k2 := f(axpy(y, dt/3, k1))
				k3 := f(axpy(y, dt, k2, -dt/3, k1))
				k4 := f(axpy(y, dt, k1, -dt, k2, dt, k3))
				y = axpy(y, dt/8, k1, 3*dt/8, k2, 3*dt/8, k3, dt/8, k4)
			default:
				panic(method)
			}
		}
	}
	return y
}

// refStage is the whole stage forward in float64: z [n, l] → e [n, h].
func refStage(method string, subdiv int, z []float64, n, l, h int, w, bw, be []float64, gate float64, g, b []float64, ts []float64) []float64 {
	e0 := make([]float64, n*h)
	for i := 0; i < n; i++ {
		u := make([]float64, h)
		for o := 0; o < h; o++ {
			s := bw[o]
			for k := 0; k < l; k++ {
				s += z[i*l+k] * w[o*l+k]
			}
			if l == h {
				s = gate*s + (1-gate)*z[i*l+o]
			}
			u[o] = s + be[o]
		}
		copy(e0[i*h:(i+1)*h], refLN(u, g, b))
	}
	y := refSolve(method, e0, h, ts, subdiv, g, b)
	for i := range y {
		y[i] += 0.1 * e0[i]
	}
	return y
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}
