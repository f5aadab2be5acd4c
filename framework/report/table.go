package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Table is a rendered-later table: strings only, every row as wide as
// Columns. Notes are footnotes and captions printed below the table.
type Table struct {
	Title string `json:"title,omitempty"`
	// Preamble lines are printed between the title and the table in text and
	// markdown (e.g. how the configurations of two compared runs differ).
	Preamble []string   `json:"preamble,omitempty"`
	Columns  []string   `json:"columns"`
	Rows     [][]string `json:"rows"`
	Notes    []string   `json:"notes,omitempty"`
	// Export, when set, is the numeric form of Rows: CSV and JSON carry it
	// (full precision, spreads and samples as their own fields) instead of
	// the rounded strings that text and markdown show.
	Export *Export `json:"-"`
}

// Formats lists the formats Render accepts.
var Formats = []string{"text", "markdown", "csv", "json"}

// missing marks a cell without a value.
const missing = "—"

// Render writes t in format: "text" (aligned box table, title above, notes
// below), "markdown" (GitHub table, title in bold, notes as a list), "csv"
// (header and rows only: title and notes are not data) or "json" (the Table
// itself). Numeric columns are right-aligned in text and markdown.
func Render(w io.Writer, t *Table, format string) error {
	if err := t.check(); err != nil {
		return err
	}
	var err error
	switch format {
	case "text":
		err = renderBox(w, t, false)
	case "markdown", "md":
		err = renderBox(w, t, true)
	case "csv":
		if t.Export != nil {
			err = renderExportCSV(w, t.Export)
			break
		}
		cw := csv.NewWriter(w)
		cw.Write(t.Columns)
		cw.WriteAll(t.Rows) // WriteAll flushes
		err = cw.Error()
	case "json":
		if t.Export != nil {
			err = renderExportJSON(w, t)
			break
		}
		out := *t
		if out.Rows == nil {
			out.Rows = [][]string{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(out)
	default:
		return fmt.Errorf("report: unknown format %q (want one of %s)", format, strings.Join(Formats, ", "))
	}
	if err != nil {
		return fmt.Errorf("report: render %q as %s: %w", t.Title, format, err)
	}
	return nil
}

func (t *Table) check() error {
	if t != nil && t.Export != nil {
		for i, r := range t.Export.Rows {
			if len(r) != len(t.Export.Columns) {
				return fmt.Errorf("report: table %q: export row %d has %d values, want %d (one per column)",
					t.Title, i+1, len(r), len(t.Export.Columns))
			}
		}
	}
	if t == nil {
		return fmt.Errorf("report: render: nil table")
	}
	if len(t.Columns) == 0 {
		return fmt.Errorf("report: table %q has no columns", t.Title)
	}
	for i, r := range t.Rows {
		if len(r) != len(t.Columns) {
			return fmt.Errorf("report: table %q: row %d has %d cells, want %d (one per column)",
				t.Title, i+1, len(r), len(t.Columns))
		}
	}
	return nil
}

func renderBox(w io.Writer, t *Table, md bool) error {
	esc := func(s string) string { return s }
	if md {
		esc = func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	}
	align := make([]tw.Align, len(t.Columns))
	for c := range t.Columns {
		align[c] = tw.AlignLeft
		if numericColumn(t.Rows, c) {
			align[c] = tw.AlignRight
		}
	}
	opts := []tablewriter.Option{
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAlignmentConfig(tw.CellAlignment{Global: tw.AlignLeft, PerColumn: align}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignLeft, PerColumn: align}),
	}
	if md {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
	}
	var b strings.Builder
	if t.Title != "" {
		if md {
			fmt.Fprintf(&b, "**%s**\n\n", esc(t.Title))
		} else {
			fmt.Fprintf(&b, "%s\n", t.Title)
		}
	}
	for _, l := range t.Preamble {
		if md {
			fmt.Fprintf(&b, "%s  \n", esc(l))
		} else {
			fmt.Fprintf(&b, "%s\n", l)
		}
	}
	if md && len(t.Preamble) > 0 {
		b.WriteString("\n")
	}
	tab := tablewriter.NewTable(&b, opts...)
	header := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		header[i] = esc(c)
	}
	tab.Header(header...)
	for _, r := range t.Rows {
		row := make([]string, len(r))
		for i, s := range r {
			if s == "" {
				// tablewriter drops trailing empty cells of a row.
				s = " "
			}
			row[i] = esc(s)
		}
		if err := tab.Append(row); err != nil {
			return err
		}
	}
	if err := tab.Render(); err != nil {
		return err
	}
	if len(t.Notes) > 0 {
		if md {
			b.WriteString("\n")
		}
		for _, n := range t.Notes {
			if md {
				b.WriteString("- ")
			}
			b.WriteString(n)
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// numericColumn reports whether every non-empty cell of column c starts like
// a number (digits, a sign, "~" for "no change", or the missing mark), and at
// least one is a number.
func numericColumn(rows [][]string, c int) bool {
	seen := false
	for _, r := range rows {
		s := strings.TrimSpace(r[c])
		switch {
		case s == "" || s == missing:
			continue
		case strings.HasPrefix(s, "~"):
		case strings.HasPrefix(s, "NaN") || strings.HasPrefix(s, "+Inf") || strings.HasPrefix(s, "-Inf"):
		default:
			s = strings.TrimLeft(s, "+-")
			if s == "" || !unicode.IsDigit([]rune(s)[0]) {
				return false
			}
		}
		seen = true
	}
	return seen
}

// fmtNum formats v with four significant digits, without exponent between
// 1e-4 and 1e15.
func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == 0:
		return "0"
	}
	a := math.Abs(v)
	switch {
	case a < 1e15 && v == math.Trunc(v):
		// Counts (steps, tokens) read better without a fraction.
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1e15 || a < 1e-4:
		return strconv.FormatFloat(v, 'e', 3, 64)
	case a >= 1e3:
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 3-int(math.Floor(math.Log10(a))), 64)
}

// fmtLike formats v with as many decimals as ref, a fmtNum output in fixed
// notation (a spread beside its median).
func fmtLike(v float64, ref string) string {
	if strings.ContainsAny(ref, "eEIN") {
		return fmtNum(v)
	}
	dec := 0
	if i := strings.IndexByte(ref, '.'); i >= 0 {
		dec = len(ref) - i - 1
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// fmtExact formats v in its shortest exact form (for documented figures,
// which are shown as written).
func fmtExact(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}
