//go:build !cgo || noopenblas

package num

import "math"

// The slice kernels' loops in Go for the pure-Go build (no cgo, or -tags
// noopenblas); fastmath_cgo.go has the same loops in C. Each writes the same
// arithmetic as its scalar function into the loop (see fastmath.go).

func tanhSlice(dst, x []float32) {
	for i, v := range x {
		v = clampAbs(v, tanhClampBits)
		x2 := v * v
		p := x2*th13 + th11
		p = x2*p + th9
		p = x2*p + th7
		p = x2*p + th5
		p = x2*p + th3
		p = x2*p + th1
		q := x2*tq6 + tq4
		q = x2*q + tq2
		q = x2*q + tq0
		dst[i] = v * p / q
	}
}

func erfSlice(dst, x []float32, scale float32) {
	for i, v := range x {
		v = clampAbs(v*scale, erfClampBits)
		x2 := v * v
		p := x2*ef13 + ef11
		p = x2*p + ef9
		p = x2*p + ef7
		p = x2*p + ef5
		p = x2*p + ef3
		p = x2*p + ef1
		q := x2*eq8 + eq6
		q = x2*q + eq4
		q = x2*q + eq2
		q = x2*q + eq0
		dst[i] = v * p / q
	}
}

func normPDFSlice(dst, x []float32) {
	for i, v := range x {
		v = clampAbs(v, pdfClampBits)
		v = -0.5 * v * v
		t := v*log2e + expMagic
		k := int32(math.Float32bits(t)) - int32(math.Float32bits(expMagic))
		kf := t - expMagic
		r := v - kf*ln2Hi
		r -= kf * ln2Lo
		p := r*ex5 + ex4
		p = p*r + ex3
		p = p*r + ex2
		p = p*r + ex1
		p = p*r + ex0
		y := p*r*r + r + 1
		dst[i] = invSqrt2P * math.Float32frombits(uint32(int32(math.Float32bits(y))+k<<23))
	}
}

func expSlice(dst, x []float32) {
	for i, v := range x {
		dst[i] = ExpFast(v)
	}
}

func relu(x []float32) { reluGo(x) }

func reluBack(dy, y []float32) { reluBackGo(dy, y) }

func colSumAddRange(dst, m []float32, n, d, lo, hi int) { colSumAddGo(dst, m, n, d, lo, hi) }
