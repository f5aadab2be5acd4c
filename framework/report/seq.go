package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/results"
)

// Documented is one row of a published table: figures we did not measure.
type Documented struct {
	MemGB, TimeS, TokensPerS float64
}

// SeedREADME is the long-sequence table of the seed project's README, by
// sequence length. See SeedREADMENote for how far it can be compared.
var SeedREADME = map[int]Documented{
	4096:  {2.5, 0.8, 20000},
	8192:  {4.2, 1.5, 18000},
	16384: {7.8, 2.8, 16000},
	32768: {14.5, 5.2, 15000},
}

// SeedREADMENote qualifies SeedREADME wherever it is shown.
const SeedREADMENote = "no hardware or batch stated; time × throughput ≠ tokens per batch"

// SeqColumns are the columns of SeqTable.
var SeqColumns = []string{
	"Mode", "Length",
	"Memory GB (measured)", "Memory GB (seed README)",
	"Time/batch s (measured, median ± spread)", "Time/batch s (seed README)",
	"Throughput tok/s (measured)", "Throughput tok/s (seed README)",
}

// lengthLabel writes multiples of 1024 as "4k", "32k".
func lengthLabel(n int) string {
	if n > 0 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + "k"
	}
	return strconv.Itoa(n)
}

// SeqTable is the long-sequence table in the seed README's layout, measured
// figures beside the documented ones (never mixed: the documented columns
// are labelled "seed README"). Rows come in one block per mode, in the order
// the modes first appear in rows; a block lists every measured length and
// every documented length, ascending, so each documented figure is shown
// even where we have no measurement ("—"). The measured time is the median
// over TimesS (MedianS when TimesS is empty) ± SpreadS (the largest
// deviation from the median, computed when SpreadS is zero); throughput is
// TokensPerS, or Batch·SeqLen / median when that is zero. The notes name the
// machine, the batch and chunk sizes per mode, the provenance of the
// documented figures and the rows' own notes. documented may be nil.
func SeqTable(rows []results.BenchRow, documented map[int]Documented, machine string) *Table {
	t := &Table{Title: "long sequences", Columns: slices.Clone(SeqColumns), Rows: [][]string{}}
	var modes []string
	byMode := map[string][]results.BenchRow{}
	for _, r := range rows {
		if _, ok := byMode[r.Mode]; !ok {
			modes = append(modes, r.Mode)
		}
		byMode[r.Mode] = append(byMode[r.Mode], r)
	}
	if len(modes) == 0 {
		modes = []string{missing}
	}
	var docLens []int
	for n := range documented {
		docLens = append(docLens, n)
	}
	var shapeNotes, rowNotes []string
	var est []string // each row's estimated memory (BenchRow.EstMemGB)
	hasEst := false
	for _, mode := range modes {
		block := byMode[mode]
		lens := slices.Clone(docLens)
		for _, r := range block {
			lens = append(lens, r.SeqLen)
		}
		sort.Ints(lens)
		lens = slices.Compact(lens)
		for _, n := range lens {
			d, hasDoc := documented[n]
			var measured []results.BenchRow
			for _, r := range block {
				if r.SeqLen == n {
					measured = append(measured, r)
				}
			}
			emit := func(r *results.BenchRow) {
				row := []string{mode, lengthLabel(n), missing, missing, missing, missing, missing, missing}
				e := missing
				if r != nil && r.EstMemGB > 0 {
					e, hasEst = strconv.FormatFloat(r.EstMemGB, 'f', 2, 64), true
				}
				est = append(est, e)
				if r != nil {
					row[2], row[4], row[6] = measuredCells(*r)
					for _, note := range r.Notes {
						rowNotes = append(rowNotes, fmt.Sprintf("%s %s: %s", mode, lengthLabel(n), note))
					}
				}
				if hasDoc {
					row[3], row[5], row[7] = fmtExact(d.MemGB), fmtExact(d.TimeS), fmtExact(d.TokensPerS)
				}
				t.Rows = append(t.Rows, row)
			}
			if len(measured) == 0 {
				emit(nil)
			}
			for i := range measured {
				emit(&measured[i])
			}
		}
		if len(block) > 0 {
			shapeNotes = append(shapeNotes, fmt.Sprintf("%s: batch %s, chunk size %s", mode,
				distinct(block, "?", func(r results.BenchRow) int { return r.Batch }),
				distinct(block, "none", func(r results.BenchRow) int { return r.ChunkSize })))
		}
	}
	if hasEst {
		// The memory budget's estimate beside the measured peak.
		t.Columns = slices.Insert(t.Columns, 3, "Memory GB (estimate)")
		for i := range t.Rows {
			t.Rows[i] = slices.Insert(t.Rows[i], 3, est[i])
		}
		shapeNotes = append(shapeNotes, "memory estimate: the memory budget's estimate of the peak from the configuration (host and plugins, as measured); a cell whose estimate exceeds the available memory or run.max_memory is refused")
	}
	if machine == "" {
		machine = "an unrecorded machine"
	}
	t.Notes = append(t.Notes, "measured on "+machine)
	t.Notes = append(t.Notes, shapeNotes...)
	if len(documented) > 0 {
		t.Notes = append(t.Notes, "seed README columns: figures documented by the seed project, not measured here ("+SeedREADMENote+")")
	}
	t.Notes = append(t.Notes, rowNotes...)
	return t
}

// measuredCells formats memory, time and throughput of one measured row.
func measuredCells(r results.BenchRow) (mem, tm, tput string) {
	mem, tm, tput = missing, missing, missing
	if r.PeakMemGB > 0 || math.IsNaN(r.PeakMemGB) {
		mem = strconv.FormatFloat(r.PeakMemGB, 'f', 2, 64)
	}
	times := finite(r.TimesS)
	med, spread := r.MedianS, r.SpreadS
	if len(times) > 0 {
		med = median(times)
		if spread == 0 {
			spread = math.Max(med-times[0], times[len(times)-1]-med)
		}
	}
	if med > 0 {
		tm = fmtNum(med)
		if len(times) > 1 || spread > 0 {
			tm += " ± " + fmtLike(spread, tm)
		}
	}
	tok := r.TokensPerS
	if tok <= 0 && med > 0 && r.Batch > 0 {
		tok = float64(r.Batch*r.SeqLen) / med
	}
	if tok > 0 {
		tput = strconv.FormatFloat(tok, 'f', 0, 64)
	}
	return mem, tm, tput
}

// distinct lists the distinct values of f over rows, ascending, "/"-joined;
// a zero is written as zero.
func distinct(rows []results.BenchRow, zero string, f func(results.BenchRow) int) string {
	var vs []int
	for _, r := range rows {
		vs = append(vs, f(r))
	}
	sort.Ints(vs)
	vs = slices.Compact(vs)
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.Itoa(v)
		if v == 0 {
			parts[i] = zero
		}
	}
	return strings.Join(parts, "/")
}
