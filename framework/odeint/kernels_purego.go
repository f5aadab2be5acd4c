//go:build !cgo || noopenblas

package odeint

func lincombRangeC(dst, base []float32, scale float32, terms []term, lo, hi int) (float32, bool) {
	return 0, false
}

func errorRatioRangeC(y, yn []float32, dt float32, terms []term, rtol, atol float64, lo, hi int) (float64, float32, bool) {
	return 0, 0, false
}

func interpRangeC(dst, y0, y1, f0, f1 []float32, mid []term, dt32, dt2, x1, x2, x3, x4 float32, lo, hi int) bool {
	return false
}

func initNormsRangeC(y0, f0 []float32, rtol, atol float64, lo, hi int) (float64, float64, float32, bool) {
	return 0, 0, 0, false
}

func diffNormRangeC(y0, f0, f1 []float32, rtol, atol float64, lo, hi int) (float64, bool) {
	return 0, false
}
