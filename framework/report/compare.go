package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"liquidlab/framework/results"
)

// DefaultAlpha is the significance level Compare uses when given none.
const DefaultAlpha = 0.05

// CompareColumns are the columns of Compare.
var CompareColumns = []string{"metric", "cell", "A", "B", "vs A"}

type pair struct{ a, b *results.Record }

// footnotes numbers note texts in order of first use, benchstat style.
type footnotes struct{ texts []string }

var superscripts = []string{"¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"}

func (f *footnotes) mark(text string) string {
	i := slices.Index(f.texts, text)
	if i < 0 {
		i = len(f.texts)
		f.texts = append(f.texts, text)
	}
	if i < len(superscripts) {
		return superscripts[i]
	}
	return fmt.Sprintf("[%d]", i+1)
}

func (f *footnotes) notes() []string {
	out := make([]string, len(f.texts))
	for i, t := range f.texts {
		out[i] = f.mark(t) + " " + t
	}
	return out
}

// Compare sets run B beside run A in the manner of golang.org/x/perf's
// benchstat. Cells that are done are matched by their axes (by cell id when
// no cell has axes; two single cells are matched with each other). For each
// metric and matched cell the row reads
//
//	metric  cell            A             B             vs A
//	loss    lr=0.01  2.412 ± 1%   2.301 ± 2%   -4.60% (p=0.002 n=8)
//
// A and B are the median over the repeats (Metrics.Samples, else the single
// value) ± the 95% confidence interval of the median, as a percentage of it;
// with fewer than 6 repeats the interval is "∞" with a footnote. "vs A" is
// the change of the median when the two-sided Mann–Whitney U test gives
// p < alpha, "~" otherwise, followed by p and the sample sizes; a footnote
// says when the sample sizes cannot reach p < alpha at all. Each metric
// ends with a geomean row (the change of the geometric mean of the medians)
// when at least two cells have positive medians on both sides. metrics
// empty means every metric of the matched cells, sorted; alpha outside
// (0, 1) means DefaultAlpha. Unmatched and unfinished cells are listed in
// the notes.
func Compare(a, b []*results.Record, metrics []string, alpha float64) *Table {
	if !(alpha > 0 && alpha < 1) {
		alpha = DefaultAlpha
	}
	t := &Table{Columns: slices.Clone(CompareColumns), Rows: [][]string{}}
	a, skippedA := doneOnly(a)
	b, skippedB := doneOnly(b)
	t.Title = fmt.Sprintf("%s vs %s", runName(a, "A"), runName(b, "B"))
	pairs, onlyA, onlyB := match(a, b)

	var all []*results.Record
	for _, p := range pairs {
		all = append(all, p.a, p.b)
	}
	if len(metrics) == 0 {
		metrics = metricNames(all)
	}
	axes := variedAxes(all)
	label := func(r *results.Record) string {
		if len(axes) == 0 {
			return r.Cell.ID
		}
		parts := make([]string, len(axes))
		for i, k := range axes {
			parts[i] = k + "=" + axisValue(r, k)
		}
		return strings.Join(parts, " ")
	}

	x := &Export{Columns: []string{"metric", "cell",
		"A_median", "A_ci_low", "A_ci_high", "A_n", "A_samples",
		"B_median", "B_ci_low", "B_ci_high", "B_n", "B_samples",
		"change_pct", "p", "significant"}}
	t.Export = x
	side := func(s sample) []any {
		if !s.present {
			return []any{nil, nil, nil, nil, nil}
		}
		if len(s.xs) == 0 {
			return []any{math.NaN(), nil, nil, 0, []float64{}}
		}
		out := []any{median(s.xs), nil, nil, len(s.xs), slices.Clone(s.xs)}
		if lo, hi, ok := medianCI(s.xs, ciConfidence); ok {
			out[1], out[2] = lo, hi
		}
		return out
	}

	var fn footnotes
	ciNote := fmt.Sprintf("need >= %d samples for confidence interval at level %.2f",
		minSamplesForCI(ciConfidence), ciConfidence)
	powerNote := fmt.Sprintf("need >= %d samples to detect a difference at alpha level %g",
		minSamplesForTest(alpha), alpha)
	var geoNotes []string
	for _, m := range metrics {
		var logA, logB float64
		nGeo, nSkipped := 0, 0
		for _, p := range pairs {
			sa, sb := metricSample(p.a, m), metricSample(p.b, m)
			if !sa.present && !sb.present {
				continue
			}
			row := []string{m, label(p.a), ciCell(sa, &fn, ciNote), ciCell(sb, &fn, ciNote), missing}
			xrow := append(append([]any{m, label(p.a)}, side(sa)...), side(sb)...)
			xrow = append(xrow, nil, nil, nil)
			if len(sa.xs) > 0 && len(sb.xs) > 0 {
				row[4] = deltaCell(sa.xs, sb.xs, alpha, &fn, powerNote)
				ma, mb := median(sa.xs), median(sb.xs)
				pv := mannWhitneyP(sa.xs, sb.xs)
				if ma != 0 && !math.IsInf(ma, 0) && !math.IsNaN(ma) {
					xrow[12] = (mb/ma - 1) * 100
				}
				xrow[13], xrow[14] = pv, boolText(pv < alpha)
				if ma > 0 && mb > 0 && !math.IsInf(ma, 0) && !math.IsInf(mb, 0) {
					logA += math.Log(ma)
					logB += math.Log(mb)
					nGeo++
				} else {
					nSkipped++
				}
			}
			t.Rows = append(t.Rows, row)
			x.add(xrow...)
		}
		if nGeo >= 2 {
			ga, gb := math.Exp(logA/float64(nGeo)), math.Exp(logB/float64(nGeo))
			t.Rows = append(t.Rows, []string{m, "geomean", fmtNum(ga), fmtNum(gb), fmtChange(ga, gb)})
			x.add(m, "geomean", ga, nil, nil, nGeo, nil, gb, nil, nil, nGeo, nil, (gb/ga-1)*100, nil, nil)
			if nSkipped > 0 {
				geoNotes = append(geoNotes, fmt.Sprintf("geomean of %s leaves out %d cells without positive finite medians", m, nSkipped))
			}
		}
	}

	t.Notes = append(t.Notes, describeRun("A", a), describeRun("B", b))
	t.Notes = append(t.Notes, fmt.Sprintf(
		"A, B: median ± %.0f%% confidence interval of the median; vs A: change of the median if the Mann–Whitney U test gives p < %g, else ~",
		100*ciConfidence, alpha))
	t.Notes = append(t.Notes, fn.notes()...)
	t.Notes = append(t.Notes, geoNotes...)
	if len(onlyA) > 0 {
		t.Notes = append(t.Notes, "cells only in A: "+cellList(onlyA, label))
	}
	if len(onlyB) > 0 {
		t.Notes = append(t.Notes, "cells only in B: "+cellList(onlyB, label))
	}
	if len(skippedA) > 0 {
		t.Notes = append(t.Notes, "cells of A left out (not done): "+statusList(skippedA))
	}
	if len(skippedB) > 0 {
		t.Notes = append(t.Notes, "cells of B left out (not done): "+statusList(skippedB))
	}
	if len(pairs) == 0 {
		t.Notes = append(t.Notes, "no cells of A and B match: nothing to compare")
	}
	return t
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// ciCell formats "median ± CI%" of a sample.
func ciCell(s sample, fn *footnotes, ciNote string) string {
	switch {
	case !s.present:
		return missing
	case len(s.xs) == 0:
		return "NaN"
	}
	m := median(s.xs)
	lo, hi, ok := medianCI(s.xs, ciConfidence)
	if !ok {
		return fmtNum(m) + " ± ∞ " + fn.mark(ciNote)
	}
	if m == 0 || math.IsInf(m, 0) {
		return fmtNum(m) + " ± " + fmtNum(math.Max(m-lo, hi-m))
	}
	return fmtNum(m) + " ± " + fmtPct(100*math.Max(m-lo, hi-m)/math.Abs(m))
}

// deltaCell is benchstat's comparison cell: change or "~", then p and n.
func deltaCell(xa, xb []float64, alpha float64, fn *footnotes, powerNote string) string {
	p := mannWhitneyP(xa, xb)
	n := fmt.Sprint(len(xa))
	if len(xa) != len(xb) {
		n = fmt.Sprintf("%d+%d", len(xa), len(xb))
	}
	stat := fmt.Sprintf("(p=%.3f n=%s)", p, n)
	if p < alpha {
		return fmtChange(median(xa), median(xb)) + " " + stat
	}
	cell := "~ " + stat
	if minPValue(len(xa), len(xb)) >= alpha {
		cell += " " + fn.mark(powerNote)
	}
	return cell
}

func fmtChange(a, b float64) string {
	if a == 0 || math.IsInf(a, 0) || math.IsNaN(a) || math.IsNaN(b) {
		return "?"
	}
	return fmt.Sprintf("%+.2f%%", (b/a-1)*100)
}

func doneOnly(recs []*results.Record) (done, skipped []*results.Record) {
	for _, r := range recs {
		switch {
		case r == nil:
		case r.Status == results.StatusDone:
			done = append(done, r)
		default:
			skipped = append(skipped, r)
		}
	}
	return done, skipped
}

func axesKey(r *results.Record) string {
	keys := make([]string, 0, len(r.Info.Axes))
	for k := range r.Info.Axes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, r.Info.Axes[k])
	}
	return b.String()
}

// match pairs the cells of a and b by axes, or by id when no cell has axes,
// keeping a's order.
func match(a, b []*results.Record) (pairs []pair, onlyA, onlyB []*results.Record) {
	useAxes := false
	for _, r := range append(slices.Clone(a), b...) {
		if len(r.Info.Axes) > 0 {
			useAxes = true
		}
	}
	key := func(r *results.Record) string { return r.Cell.ID }
	if useAxes {
		key = axesKey
	}
	used := make([]bool, len(b))
	for _, ra := range a {
		found := false
		for j, rb := range b {
			if !used[j] && key(rb) == key(ra) {
				used[j], found = true, true
				pairs = append(pairs, pair{ra, rb})
				break
			}
		}
		if !found {
			onlyA = append(onlyA, ra)
		}
	}
	for j, rb := range b {
		if !used[j] {
			onlyB = append(onlyB, rb)
		}
	}
	if len(pairs) == 0 && len(a) == 1 && len(b) == 1 {
		return []pair{{a[0], b[0]}}, nil, nil
	}
	return pairs, onlyA, onlyB
}

func runName(recs []*results.Record, fallback string) string {
	for _, r := range recs {
		if r.Info.Experiment != "" {
			return r.Info.Experiment
		}
		if r.Cell.Experiment != "" {
			return r.Cell.Experiment
		}
	}
	return fallback
}

func describeRun(name string, recs []*results.Record) string {
	if len(recs) == 0 {
		return name + ": no finished cells"
	}
	info := recs[0].Info
	commit := info.Commit
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if commit == "" {
		commit = "unknown commit"
	}
	if info.Dirty {
		commit += " (dirty)"
	}
	s := fmt.Sprintf("%s: %s at %s", name, runName(recs, name), commit)
	if m := info.Machine.String(); m != "" {
		s += " on " + m
	}
	return s
}

func cellList(recs []*results.Record, label func(*results.Record) string) string {
	parts := make([]string, len(recs))
	for i, r := range recs {
		parts[i] = r.Cell.ID
		if l := label(r); l != r.Cell.ID {
			parts[i] += " (" + l + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func statusList(recs []*results.Record) string {
	parts := make([]string, len(recs))
	for i, r := range recs {
		st := r.Status
		if st == "" {
			st = "not started"
		}
		if st == results.StatusBroken {
			st += ": " + oneLine(r.Error)
		}
		parts[i] = r.Cell.ID + " (" + st + ")"
	}
	return strings.Join(parts, ", ")
}
