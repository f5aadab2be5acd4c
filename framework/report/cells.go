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

	minN, maxN := math.MaxInt, 0
	var nanNotes, failNotes []string
	for _, r := range recs {
		row := []string{r.Cell.ID}
		for _, k := range axes {
			row = append(row, axisValue(r, k))
		}
		if showStatus {
			st := r.Status
			if st == "" {
				st = missing
			}
			row = append(row, st)
		}
		for _, m := range metrics {
			s := metricSample(r, m)
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
	t.Notes = append(t.Notes, failNotes...)
	t.Notes = append(t.Notes, nanNotes...)
	return t
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "(no error text)"
	}
	return s
}
