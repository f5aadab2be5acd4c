package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"liquidlab/framework/results"
)

// sample is one metric of one cell: the finite repeats (sorted) and how many
// NaNs were dropped. A metric with only Values has one repeat.
type sample struct {
	xs      []float64
	nans    int
	present bool
}

func metricSample(r *results.Record, name string) sample {
	if r == nil || r.Metrics == nil {
		return sample{}
	}
	if v, ok := benchMetric(r.Metrics.Bench, name); ok {
		raw := slices.Clone(v)
		xs := finite(raw)
		return sample{xs: xs, nans: len(raw) - len(xs), present: true}
	}
	raw, ok := r.Metrics.Samples[name]
	if !ok || len(raw) == 0 {
		v, ok := r.Metrics.Values[name]
		if !ok {
			return sample{}
		}
		raw = []float64{v}
	}
	xs := finite(raw)
	return sample{xs: xs, nans: len(raw) - len(xs), present: true}
}

// benchSuffixes name the bench measurements that are metrics: MODE@LENGTH is
// tokens/s, MODE@LENGTH.s the seconds per batch (every timed repeat, so the
// spread shows), MODE@LENGTH.gb the peak memory.
var benchSuffixes = []string{"", ".s", ".gb"}

// benchMetric returns the values of a bench metric name (see benchSuffixes)
// from a cell's bench rows.
func benchMetric(rows []results.BenchRow, name string) ([]float64, bool) {
	base, suf, _ := strings.Cut(name, ".")
	mode, length, ok := strings.Cut(base, "@")
	if !ok {
		return nil, false
	}
	for _, b := range rows {
		if b.Mode != mode || fmt.Sprint(b.SeqLen) != length {
			continue
		}
		switch suf {
		case "":
			return []float64{b.TokensPerS}, true
		case "s":
			if len(b.TimesS) > 0 {
				return b.TimesS, true
			}
			return []float64{b.MedianS}, true
		case "gb":
			return []float64{b.PeakMemGB}, true
		}
	}
	return nil, false
}

// metricNames is the sorted union of metric names over recs.
func metricNames(recs []*results.Record) []string {
	set := map[string]bool{}
	for _, r := range recs {
		if r == nil || r.Metrics == nil {
			continue
		}
		for k := range r.Metrics.Values {
			set[k] = true
		}
		for k := range r.Metrics.Samples {
			set[k] = true
		}
		for _, b := range r.Metrics.Bench {
			base := fmt.Sprintf("%s@%d", b.Mode, b.SeqLen)
			for _, suf := range benchSuffixes {
				set[base+suf] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// variedAxes returns, sorted, the axes whose value (absence included) is not
// the same in every record.
func variedAxes(recs []*results.Record) []string {
	keys := map[string]bool{}
	for _, r := range recs {
		if r == nil {
			continue
		}
		for k := range r.Info.Axes {
			keys[k] = true
		}
	}
	var varied []string
	for k := range keys {
		first, firstOK, differs := "", false, false
		for i, r := range recs {
			if r == nil {
				continue
			}
			v, ok := r.Info.Axes[k]
			if i == 0 {
				first, firstOK = v, ok
			} else if v != first || ok != firstOK {
				differs = true
				break
			}
		}
		if differs {
			varied = append(varied, k)
		}
	}
	sort.Strings(varied)
	return varied
}

func axisValue(r *results.Record, k string) string {
	if v, ok := r.Info.Axes[k]; ok {
		return v
	}
	return missing
}

// spreadCell formats a sample as "median ± largest relative deviation".
func spreadCell(s sample) string {
	switch {
	case !s.present:
		return missing
	case len(s.xs) == 0:
		return "NaN"
	case len(s.xs) == 1:
		return fmtNum(s.xs[0])
	}
	m := median(s.xs)
	if m == 0 || math.IsInf(m, 0) {
		return fmtNum(m) + " ± " + fmtNum(math.Max(m-s.xs[0], s.xs[len(s.xs)-1]-m))
	}
	return fmtNum(m) + " ± " + fmtPct(maxRelDev(s.xs, m))
}

// fmtPct formats a non-negative percentage, one decimal below 10%.
func fmtPct(p float64) string {
	switch {
	case math.IsNaN(p) || math.IsInf(p, 0):
		return "∞"
	case p < 10:
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}

// CellsTable lays out the cells of one run: one row per record, in the
// order given. Columns are "cell" (the id), the axes that vary between the
// records (sorted by name), "status" when not every cell is done, then the
// metrics (all metrics of any record, sorted, when metrics is empty). A
// metric with repeats (Metrics.Samples) shows "median ± d%", d the largest
// deviation of a repeat from the median; a metric with one value shows it; a
// missing one shows "—". NaN repeats are left out and counted in the notes,
// as are failed cells with their error.
func CellsTable(recs []*results.Record, metrics []string) *Table {
	recs = slices.DeleteFunc(slices.Clone(recs), func(r *results.Record) bool { return r == nil })
	if len(metrics) == 0 {
		metrics = metricNames(recs)
	}
	axes := variedAxes(recs)
	showStatus := false
	for _, r := range recs {
		if r.Status != results.StatusDone {
			showStatus = true
		}
	}
	t := &Table{Title: "cells", Rows: [][]string{}}
	if len(recs) > 0 {
		exp := recs[0].Info.Experiment
		if exp == "" {
			exp = recs[0].Cell.Experiment
		}
		t.Title = "cells of " + exp
	}
	t.Columns = append([]string{"cell"}, axes...)
	if showStatus {
		t.Columns = append(t.Columns, "status")
	}
	t.Columns = append(t.Columns, metrics...)
	x := &Export{Columns: slices.Clone(t.Columns[:len(t.Columns)-len(metrics)])}
	for _, m := range metrics {
		x.Columns = append(x.Columns, m, m+"_spread_pct", m+"_n", m+"_samples")
	}
	t.Export = x

	minN, maxN := math.MaxInt, 0
	var nanNotes, failNotes []string
	for _, r := range recs {
		row := []string{r.Cell.ID}
		xrow := []any{r.Cell.ID}
		for _, k := range axes {
			row = append(row, axisValue(r, k))
			if v, ok := r.Info.Axes[k]; ok {
				xrow = append(xrow, v)
			} else {
				xrow = append(xrow, nil)
			}
		}
		if showStatus {
			st := r.Status
			if st == "" {
				st = missing
			}
			row = append(row, st)
			xrow = append(xrow, r.Status)
		}
		for _, m := range metrics {
			s := metricSample(r, m)
			xs := sampleExport(s)
			if s.present {
				xs[3] = rawFinite(r, m)
			}
			xrow = append(xrow, xs...)
			if s.present && len(r.Metrics.Samples[m]) > 1 {
				minN, maxN = min(minN, len(s.xs)), max(maxN, len(s.xs))
			}
			if s.nans > 0 && len(s.xs) > 0 {
				nanNotes = append(nanNotes, fmt.Sprintf("cell %s: %s: %d of %d values are NaN and left out",
					r.Cell.ID, m, s.nans, s.nans+len(s.xs)))
			}
			row = append(row, spreadCell(s))
		}
		if r.Status == results.StatusFailed {
			failNotes = append(failNotes, fmt.Sprintf("cell %s failed: %s", r.Cell.ID, oneLine(r.Error)))
		} else if r.Status != results.StatusDone && r.Error != "" {
			failNotes = append(failNotes, fmt.Sprintf("cell %s %s: %s", r.Cell.ID, r.Status, oneLine(r.Error)))
		}
		t.Rows = append(t.Rows, row)
		x.Rows = append(x.Rows, xrow)
	}
	if len(recs) == 0 {
		t.Notes = append(t.Notes, "no cells")
	}
	if maxN > 0 {
		n := fmt.Sprint(maxN)
		if minN != maxN {
			n = fmt.Sprintf("%d–%d", minN, maxN)
		}
		t.Notes = append(t.Notes, fmt.Sprintf("median ± largest deviation of a repeat from the median (n = %s)", n))
	}
	for _, k := range nullAxes(recs, axes) {
		t.Notes = append(t.Notes, fmt.Sprintf("axis %s changed no metric: every value of it gives identical results in every cell and repeat (timings aside)", k))
	}
	t.Notes = append(t.Notes, failNotes...)
	t.Notes = append(t.Notes, nanNotes...)
	return t
}

// rawFinite returns a metric's finite repeats in the order they ran.
func rawFinite(r *results.Record, name string) []float64 {
	raw := r.Metrics.Samples[name]
	if v, ok := benchMetric(r.Metrics.Bench, name); ok {
		raw = v
	}
	if len(raw) == 0 {
		if v, ok := r.Metrics.Values[name]; ok {
			raw = []float64{v}
		}
	}
	out := make([]float64, 0, len(raw))
	for _, v := range raw {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

// timingMetric reports whether a metric measures time, speed or memory, which
// differ between any two runs and so say nothing about whether an axis
// changed the model.
func timingMetric(name string) bool {
	return strings.Contains(name, "@") || strings.HasSuffix(name, "_per_s") || strings.HasSuffix(name, "_s") ||
		strings.Contains(name, "time") || strings.Contains(name, "mem") ||
		strings.Contains(name, "rss") || strings.Contains(name, "peak")
}

// nullAxes returns the varied axes that changed no metric: for every group of
// finished cells that agree on all other axes, every value of the axis gives
// the same repeats (bit for bit) of every metric that is not a timing. An
// axis is only judged when some group holds two or more of its values and at
// least one metric was compared.
func nullAxes(recs []*results.Record, axes []string) []string {
	var done []*results.Record
	for _, r := range recs {
		if r.Status == results.StatusDone && r.Metrics != nil {
			done = append(done, r)
		}
	}
	var out []string
	for _, k := range axes {
		groups := map[string][]*results.Record{}
		var order []string
		for _, r := range done {
			var key strings.Builder
			for _, o := range axes {
				if o != k {
					fmt.Fprintf(&key, "%q=%q;", o, axisValue(r, o))
				}
			}
			if _, ok := groups[key.String()]; !ok {
				order = append(order, key.String())
			}
			groups[key.String()] = append(groups[key.String()], r)
		}
		judged, same, compared := false, true, false
		for _, g := range order {
			rs := groups[g]
			if len(rs) < 2 {
				continue
			}
			judged = true
			for _, m := range metricNames(rs) {
				if timingMetric(m) {
					continue
				}
				compared = true
				ref := rawAll(rs[0], m)
				for _, r := range rs[1:] {
					if !slices.Equal(ref, rawAll(r, m)) {
						same = false
					}
				}
			}
		}
		if judged && compared && same {
			out = append(out, k)
		}
	}
	return out
}

// rawAll returns a metric's repeats as stored (NaN included, compared by bits).
func rawAll(r *results.Record, name string) []uint64 {
	raw := r.Metrics.Samples[name]
	if len(raw) == 0 {
		if v, ok := r.Metrics.Values[name]; ok {
			raw = []float64{v}
		}
	}
	out := make([]uint64, len(raw))
	for i, v := range raw {
		out[i] = math.Float64bits(v)
	}
	return out
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(no error text)"
	}
	return s
}

// MetricNames returns the sorted names of every metric any record holds.
func MetricNames(recs []*results.Record) []string { return metricNames(recs) }

// CheckMetrics returns an error naming the metrics of want that no record
// holds, with the list of those it could have been. Empty names are ignored.
func CheckMetrics(recs []*results.Record, want []string) error {
	have := metricNames(recs)
	var unknown []string
	for _, m := range want {
		if m != "" && !slices.Contains(have, m) {
			unknown = append(unknown, m)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	valid := strings.Join(have, ", ")
	if valid == "" {
		valid = "none: no cell has metrics yet"
	}
	return fmt.Errorf("unknown metric %s (the cells hold: %s)", strings.Join(unknown, ", "), valid)
}

// VariedAxes returns, sorted, the axes whose value is not the same in every
// record.
func VariedAxes(recs []*results.Record) []string { return variedAxes(recs) }
