package num

import "math"

// Exp32 is e^x in float32 to about 2 ulp (Cephes expf's polynomial), without
// the float64 round trip of math.Exp; it is the inner loop of every softmax over
// a 32000-word vocabulary.
func Exp32(x float32) float32 {
	if x < -87.33 {
		return 0
	}
	if x > 88.72 {
		return float32(math.Inf(1))
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	t := x * log2e
	if t < 0 {
		t -= 0.5
	} else {
		t += 0.5
	}
	k := float32(int32(t))
	r := x - k*ln2hi - k*ln2lo
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}
