package causal

import (
	"math"
	"testing"
)

func TestGrowthExponent(t *testing.T) {
	ls := []int{1024, 2048, 4096, 8192}
	for _, want := range []float64{1, 2, 1.3} {
		ts := make([]float64, len(ls))
		for i, l := range ls {
			ts[i] = 3e-6 * math.Pow(float64(l), want)
		}
		got, err := GrowthExponent(ls, ts)
		if err != nil || math.Abs(got-want) > 1e-9 {
			t.Errorf("exponent %g: got %g, %v", want, got, err)
		}
	}
	for _, bad := range []struct {
		l []int
		s []float64
	}{{[]int{1024}, []float64{1}}, {[]int{1024, 1024}, []float64{1, 2}}, {[]int{1, 2}, []float64{1}}, {[]int{1, 2}, []float64{0, 1}}} {
		if _, err := GrowthExponent(bad.l, bad.s); err == nil {
			t.Errorf("%v %v accepted", bad.l, bad.s)
		}
	}
}
