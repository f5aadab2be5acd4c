package report

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
)

// Export is the numeric form of a table: what its CSV and JSON renderings
// carry instead of the rounded strings of Rows. Each row has one value per
// column: a string, a float64 (full precision; NaN and ±Inf as the strings
// "NaN", "+Inf", "-Inf" in JSON, which has no such numbers), an int, a
// []float64 (the samples; space-separated in CSV) or nil (missing: an empty
// CSV field, JSON null).
type Export struct {
	Columns []string
	Rows    [][]any
}

func (x *Export) add(row ...any) { x.Rows = append(x.Rows, row) }

// csvField formats one value of an Export row for CSV.
func csvField(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case float64:
		return fmtFull(v)
	case []float64:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = fmtFull(x)
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// fmtFull is the shortest text that parses back to v exactly.
func fmtFull(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// jsonValue turns one value of an Export row into something encoding/json
// accepts (it rejects NaN and ±Inf).
func jsonValue(v any) any {
	switch v := v.(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmtFull(v)
		}
		return v
	case []float64:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = jsonValue(x)
		}
		return out
	}
	return v
}

func renderExportCSV(w io.Writer, x *Export) error {
	cw := csv.NewWriter(w)
	cw.Write(x.Columns)
	for _, r := range x.Rows {
		rec := make([]string, len(r))
		for i, v := range r {
			rec[i] = csvField(v)
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// exportJSON is the JSON form of a table with an Export: rows are objects
// keyed by column (columns gives their order).
type exportJSON struct {
	Title    string           `json:"title,omitempty"`
	Preamble []string         `json:"preamble,omitempty"`
	Columns  []string         `json:"columns"`
	Rows     []map[string]any `json:"rows"`
	Notes    []string         `json:"notes,omitempty"`
}

func renderExportJSON(w io.Writer, t *Table) error {
	out := exportJSON{Title: t.Title, Preamble: t.Preamble, Columns: t.Export.Columns, Rows: []map[string]any{}, Notes: t.Notes}
	for _, r := range t.Export.Rows {
		obj := make(map[string]any, len(r))
		for i, v := range r {
			obj[t.Export.Columns[i]] = jsonValue(v)
		}
		out.Rows = append(out.Rows, obj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// sampleExport is the numeric form of one metric sample: median, largest
// relative deviation of a repeat from it in percent, n, the finite samples.
func sampleExport(s sample) []any {
	if !s.present {
		return []any{nil, nil, nil, nil}
	}
	if len(s.xs) == 0 {
		return []any{math.NaN(), nil, 0, []float64{}}
	}
	m := median(s.xs)
	var spread any
	if len(s.xs) > 1 && m != 0 && !math.IsInf(m, 0) {
		spread = maxRelDev(s.xs, m)
	}
	return []any{m, spread, len(s.xs), append([]float64(nil), s.xs...)}
}
