package coupling

import "liquidlab/framework/num"

// Float32 expm1 and tanh for the coupling's elementwise loops. math.Exp and
// math.Tanh in float64 cost more than the layer's matrix products at D=512,
// F=128; these are Cephes' expm1f/tanhf (degree-5 minimax polynomials), within
// about 2 ulp of the float64 functions, with e^x from num.ExpFast (the project's
// one expf, Cody–Waite range reduction with the same polynomial). expm1 keeps
// full relative accuracy near 0, which the exact log-determinant needs.

const (
	tanhLo = 0.625
	tanhHi = 9.02 // tanh is ±1 in float32 beyond this
)

// expPoly returns e^r − 1 for |r| ≤ ln2/2.
func expPoly(r float32) float32 {
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	return p*r*r + r
}

// expm1 returns (e^x, e^x − 1), the second accurate near 0.
func expm1(x float32) (e, em1 float32) {
	if x > -0.34657359 && x < 0.34657359 {
		em1 = expPoly(x)
		return em1 + 1, em1
	}
	e = num.ExpFast(x)
	return e, e - 1
}

// tanh32 is tanh(x) in float32.
func tanh32(x float32) float32 {
	a := x
	if a < 0 {
		a = -a
	}
	if a >= tanhLo {
		var t float32 = 1
		if a < tanhHi {
			t = 1 - 2/(num.ExpFast(a+a)+1)
		}
		if x < 0 {
			return -t
		}
		return t
	}
	if x != x {
		return x
	}
	s := x * x
	p := float32(-5.70498872745e-3)
	p = p*s + 2.06390887954e-2
	p = p*s - 5.37397155531e-2
	p = p*s + 1.33314422036e-1
	p = p*s - 3.33332819422e-1
	return p*s*x + x
}
