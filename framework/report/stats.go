package report

import (
	"math"
	"slices"
)

// ciConfidence is the level of the confidence interval of a median, as in
// benchstat.
const ciConfidence = 0.95

// exactLimit is the largest pooled sample size for which the Mann–Whitney
// p-value is computed from the exact permutation distribution; beyond it the
// normal approximation is within a few thousandths.
const exactLimit = 60

// finite returns xs without NaNs, sorted; the input is not modified.
func finite(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// median of a sorted, non-empty sample.
func median(s []float64) float64 {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// maxRelDev is the largest |x − m| / |m| over a sorted sample, in percent.
func maxRelDev(s []float64, m float64) float64 {
	if m == 0 {
		return math.NaN()
	}
	d := math.Max(m-s[0], s[len(s)-1]-m)
	return 100 * d / math.Abs(m)
}

// binomHalfCDF is P(X ≤ k) for X ~ Binomial(n, 1/2).
func binomHalfCDF(n, k int) float64 {
	if k < 0 {
		return 0
	}
	if k >= n {
		return 1
	}
	lgN, _ := math.Lgamma(float64(n + 1))
	var p float64
	for i := 0; i <= k; i++ {
		a, _ := math.Lgamma(float64(i + 1))
		b, _ := math.Lgamma(float64(n - i + 1))
		p += math.Exp(lgN - a - b - float64(n)*math.Ln2)
	}
	return p
}

// medianCI returns the distribution-free confidence interval of the median
// of a sorted sample: the order statistics (x₍ₖ₎, x₍ₙ₊₁₋ₖ₎) with the largest
// k whose coverage 1 − 2·P(Bin(n, ½) ≤ k−1) is at least conf. ok is false
// when even (min, max) covers less than conf (n < 6 at 95%).
func medianCI(s []float64, conf float64) (lo, hi float64, ok bool) {
	n := len(s)
	best := 0
	for k := 1; 2*k <= n+1; k++ {
		if 1-2*binomHalfCDF(n, k-1) >= conf {
			best = k
		} else {
			break
		}
	}
	if best == 0 {
		return math.Inf(-1), math.Inf(1), false
	}
	return s[best-1], s[n-best], true
}

// minSamplesForCI is the smallest n for which medianCI succeeds at conf.
func minSamplesForCI(conf float64) int {
	n := 1
	for ; n < 1000 && 1-2*binomHalfCDF(n, 0) < conf; n++ {
	}
	return n
}

// binom is the binomial coefficient C(n, k) as a float64.
func binom(n, k int) float64 {
	if k < 0 || k > n {
		return 0
	}
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return math.Round(math.Exp(a - b - c))
}

// minPValue is the smallest two-sided Mann–Whitney p-value samples of sizes
// n1 and n2 can reach (complete separation, no ties).
func minPValue(n1, n2 int) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	return math.Min(1, 2/binom(n1+n2, n1))
}

// minSamplesForTest is the smallest n such that two samples of n can reach
// p ≤ alpha.
func minSamplesForTest(alpha float64) int {
	n := 1
	for ; n < 1000 && minPValue(n, n) >= alpha; n++ {
	}
	return n
}

// midranks returns twice the midrank of every value of x followed by y (so
// ties stay integers), and the tie group sizes.
func midranks(x, y []float64) (r2 []int, ties []int) {
	type item struct {
		v float64
		i int
	}
	all := make([]item, 0, len(x)+len(y))
	for i, v := range x {
		all = append(all, item{v, i})
	}
	for i, v := range y {
		all = append(all, item{v, len(x) + i})
	}
	slices.SortStableFunc(all, func(a, b item) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	r2 = make([]int, len(all))
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		// ranks i+1 … j share the midrank (i+1+j)/2.
		for k := i; k < j; k++ {
			r2[all[k].i] = i + 1 + j
		}
		ties = append(ties, j-i)
		i = j
	}
	return r2, ties
}

// mannWhitneyP is the two-sided p-value of the Mann–Whitney U test (Wilcoxon
// rank-sum test) of samples x and y, with ties given midranks. It is exact
// (permutation distribution of the rank sum, ties included) when the pooled
// size is at most exactLimit, and the normal approximation with tie and
// continuity corrections otherwise. Empty samples give p = 1.
func mannWhitneyP(x, y []float64) float64 {
	if len(x) == 0 || len(y) == 0 {
		return 1
	}
	if len(x)+len(y) <= exactLimit {
		return mannWhitneyExact(x, y)
	}
	return mannWhitneyNormal(x, y)
}

func mannWhitneyExact(x, y []float64) float64 {
	r2, _ := midranks(x, y)
	n1 := len(x)
	w := 0
	for _, r := range r2[:n1] {
		w += r
	}
	maxSum := 0
	for _, r := range r2 {
		maxSum += r
	}
	// ways[k][s]: number of k-subsets of the ranks seen so far whose doubled
	// rank sum is s.
	ways := make([][]float64, n1+1)
	for k := range ways {
		ways[k] = make([]float64, maxSum+1)
	}
	ways[0][0] = 1
	for _, r := range r2 {
		for k := n1; k >= 1; k-- {
			prev, cur := ways[k-1], ways[k]
			for s := maxSum; s >= r; s-- {
				cur[s] += prev[s-r]
			}
		}
	}
	var lo, hi, total float64
	for s, c := range ways[n1] {
		total += c
		if s <= w {
			lo += c
		}
		if s >= w {
			hi += c
		}
	}
	return math.Min(1, 2*math.Min(lo, hi)/total)
}

func mannWhitneyNormal(x, y []float64) float64 {
	r2, ties := midranks(x, y)
	n1, n2 := float64(len(x)), float64(len(y))
	n := n1 + n2
	var w2 int
	for _, r := range r2[:len(x)] {
		w2 += r
	}
	u := float64(w2)/2 - n1*(n1+1)/2
	mu := n1 * n2 / 2
	var tieSum float64
	for _, t := range ties {
		tf := float64(t)
		tieSum += tf*tf*tf - tf
	}
	sigma := math.Sqrt(n1 * n2 / 12 * (n + 1 - tieSum/(n*(n-1))))
	if sigma == 0 {
		return 1
	}
	z := (math.Abs(u-mu) - 0.5) / sigma
	if z < 0 {
		z = 0
	}
	return math.Min(1, math.Erfc(z/math.Sqrt2))
}
