// Package htmlreport draws a run's results: training and validation curves per
// cell (repeats as a band around their median), and for benchmarked cells time
// per batch, tokens/s and peak memory against sequence length on log–log axes.
// Write puts the plots, as SVG and PNG files, beside a self-contained HTML page
// (the SVGs inline, the tables as HTML, no script, no network) that shows them
// with the run's table.
//
// The plots are made with gonum/plot. Nothing here computes a metric: every
// point is a number stored by the run (metrics.json, metrics.jsonl).
package htmlreport

import (
	"bytes"
	"fmt"
	"html"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

// Cell is one cell's data for the report.
type Cell struct {
	Record *results.Record
	Label  string               // the varied axes ("num_flows=4 share=false"), or the id
	Steps  []results.StepRecord // the per-step stream, all repeats; may be empty
}

// Figure is one plot the report wrote.
type Figure struct {
	Name  string // file stem: Name+".svg", Name+".png"
	Title string
	SVG   []byte
}

// Report is what Write produced.
type Report struct {
	Index   string // path of the HTML page
	Figures []Figure
}

const (
	figW = 7 * vg.Inch
	figH = 4 * vg.Inch
)

// Write draws the figures of title's cells into dir (created if needed) and
// writes dir/index.html. table is the run's table (report.CellsTable); notes
// are printed under it.
func Write(dir, title string, table *report.Table, cells []Cell) (*Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var figs []Figure
	add := func(name, title string, p *plot.Plot) error {
		if p == nil {
			return nil
		}
		var svg bytes.Buffer
		wt, err := p.WriterTo(figW, figH, "svg")
		if err != nil {
			return err
		}
		if _, err := wt.WriteTo(&svg); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".svg"), svg.Bytes(), 0o644); err != nil {
			return err
		}
		if err := p.Save(figW, figH, filepath.Join(dir, name+".png")); err != nil {
			return fmt.Errorf("htmlreport: %s.png: %w", name, err)
		}
		figs = append(figs, Figure{Name: name, Title: title, SVG: svg.Bytes()})
		return nil
	}
	steps := func(r results.StepRecord) (float64, bool) { return float64(r.Loss), true }
	if err := add("train_loss", "training loss", curvePlot("training loss per step", "loss", cells, steps)); err != nil {
		return nil, err
	}
	valid := func(r results.StepRecord) (float64, bool) {
		if r.ValidLoss == nil {
			return 0, false
		}
		return *r.ValidLoss, true
	}
	if err := add("valid_loss", "validation loss", curvePlot("validation loss", "loss", cells, valid)); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name, title, y string
		val            func(results.BenchRow) float64
	}{
		{"bench_time", "time per batch against length", "seconds per batch", func(r results.BenchRow) float64 { return r.MedianS }},
		{"bench_tokens", "throughput against length", "tokens/s", func(r results.BenchRow) float64 { return r.TokensPerS }},
		{"bench_memory", "peak memory against length", "peak GB", func(r results.BenchRow) float64 { return r.PeakMemGB }},
	} {
		if err := add(b.name, b.title, benchPlot(b.title, b.y, cells, b.val)); err != nil {
			return nil, err
		}
	}
	rep := &Report{Index: filepath.Join(dir, "index.html"), Figures: figs}
	if err := os.WriteFile(rep.Index, page(title, table, figs), 0o644); err != nil {
		return nil, err
	}
	return rep, nil
}

// curvePlot draws, per cell, the median over repeats of value at each step as
// a line and the repeats' range as a translucent band. Nil when no cell has a
// value.
func curvePlot(title, ylabel string, cells []Cell, value func(results.StepRecord) (float64, bool)) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	drawn := false
	for i, c := range cells {
		bySteps := map[int][]float64{}
		for _, r := range c.Steps {
			if v, ok := value(r); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				bySteps[r.Step] = append(bySteps[r.Step], v)
			}
		}
		if len(bySteps) == 0 {
			continue
		}
		xs := make([]int, 0, len(bySteps))
		for s := range bySteps {
			xs = append(xs, s)
		}
		sort.Ints(xs)
		mid := make(plotter.XYs, len(xs))
		lo := make(plotter.XYs, len(xs))
		hi := make(plotter.XYs, len(xs))
		band := false
		for j, s := range xs {
			v := bySteps[s]
			slices.Sort(v)
			mid[j] = plotter.XY{X: float64(s), Y: medianOf(v)}
			lo[j] = plotter.XY{X: float64(s), Y: v[0]}
			hi[j] = plotter.XY{X: float64(s), Y: v[len(v)-1]}
			band = band || len(v) > 1
		}
		col := plotutil.Color(i)
		if band {
			poly := append(slices.Clone(lo), reversed(hi)...)
			if pg, err := plotter.NewPolygon(poly); err == nil {
				r, g, b, _ := col.RGBA()
				pg.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 60}
				pg.LineStyle.Width = 0
				p.Add(pg)
			}
		}
		l, err := plotter.NewLine(mid)
		if err != nil {
			continue
		}
		l.Color = col
		l.Width = vg.Points(1.5)
		p.Add(l)
		if len(mid) <= 30 {
			if sc, err := plotter.NewScatter(mid); err == nil {
				sc.Color = col
				sc.Shape = draw.CircleGlyph{}
				sc.Radius = vg.Points(2)
				p.Add(sc)
			}
		}
		p.Legend.Add(c.Label, l)
		drawn = true
	}
	if !drawn {
		return nil
	}
	p.Add(plotter.NewGrid())
	return p
}

// benchPlot draws value against sequence length, log–log, one line per cell
// and bench mode. Nil when no cell was benchmarked.
func benchPlot(title, ylabel string, cells []Cell, value func(results.BenchRow) float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "sequence length (tokens)"
	p.Y.Label.Text = ylabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = logTicks{}, logTicks{}
	p.Legend.Top = true
	n := 0
	for _, c := range cells {
		if c.Record == nil || c.Record.Metrics == nil {
			continue
		}
		byMode := map[string]plotter.XYs{}
		var modes []string
		for _, r := range c.Record.Metrics.Bench {
			v := value(r)
			if r.SeqLen <= 0 || !(v > 0) || math.IsInf(v, 0) {
				continue // a log axis has no room for 0, NaN or a missing value
			}
			if _, ok := byMode[r.Mode]; !ok {
				modes = append(modes, r.Mode)
			}
			byMode[r.Mode] = append(byMode[r.Mode], plotter.XY{X: float64(r.SeqLen), Y: v})
		}
		for _, mode := range modes {
			xy := byMode[mode]
			sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
			l, s, err := plotter.NewLinePoints(xy)
			if err != nil {
				continue
			}
			l.Color, s.Color = plotutil.Color(n), plotutil.Color(n)
			l.Width = vg.Points(1.5)
			s.Shape = plotutil.Shape(n)
			p.Add(l, s)
			label := c.Label
			if len(modes) > 1 {
				label += " " + mode
			}
			p.Legend.Add(label, l, s)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	p.Add(plotter.NewGrid())
	return p
}

// logTicks labels a log axis at 1, 2 and 5 times the powers of ten in its
// range (gonum's LogTicks labels only the powers of ten, so a range inside
// one decade, as most benchmarks span, had no labels at all), with unlabelled
// minor ticks at the other integers times the powers of ten.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi >= lo) {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p10 := math.Pow(10, e)
		for m := 1; m <= 9; m++ {
			v := float64(m) * p10
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			label := ""
			if m == 1 || m == 2 || m == 5 {
				label = tickLabel(v)
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	labelled := 0
	for _, t := range ticks {
		if t.Label != "" {
			labelled++
		}
	}
	if labelled < 2 { // a narrow range: label every tick, and its ends
		for i := range ticks {
			ticks[i].Label = tickLabel(ticks[i].Value)
		}
		if len(ticks) < 2 {
			ticks = append(ticks, plot.Tick{Value: lo, Label: strconv.FormatFloat(lo, 'g', 3, 64)},
				plot.Tick{Value: hi, Label: strconv.FormatFloat(hi, 'g', 3, 64)})
		}
	}
	return ticks
}

// tickLabel writes a tick value without an exponent between 1e-4 and 1e7
// (20000, not 2e+04), with 4 significant digits.
func tickLabel(v float64) string {
	if a := math.Abs(v); a >= 1e-4 && a < 1e7 {
		r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64) // 3·0.1 → 0.3
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

func medianOf(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func reversed(xy plotter.XYs) plotter.XYs {
	out := make(plotter.XYs, len(xy))
	for i := range xy {
		out[i] = xy[len(xy)-1-i]
	}
	return out
}

// page is the self-contained HTML: the table, its notes, every figure inline.
func page(title string, table *report.Table, figs []Figure) []byte {
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title>\n", esc(title))
	b.WriteString(`<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:90%}
th,td{border:1px solid #ccc;padding:.25em .6em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f3f3f3}
figure{margin:1.5em 0}
figcaption{font-weight:bold;margin-bottom:.3em}
.notes{color:#555;font-size:90%}
</style></head><body>
`)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", esc(title))
	if table != nil {
		b.WriteString("<table>\n<tr>")
		for _, c := range table.Columns {
			fmt.Fprintf(&b, "<th>%s</th>", esc(c))
		}
		b.WriteString("</tr>\n")
		for _, r := range table.Rows {
			b.WriteString("<tr>")
			for _, v := range r {
				cls := ""
				if looksNumeric(v) {
					cls = ` class="num"`
				}
				fmt.Fprintf(&b, "<td%s>%s</td>", cls, esc(v))
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</table>\n")
		if len(table.Notes) > 0 {
			b.WriteString("<ul class=\"notes\">\n")
			for _, n := range table.Notes {
				fmt.Fprintf(&b, "<li>%s</li>\n", esc(n))
			}
			b.WriteString("</ul>\n")
		}
	}
	if len(figs) == 0 {
		b.WriteString("<p>No curves: the cells have no per-step metrics (metrics.jsonl) and no benchmark rows.</p>\n")
	}
	for _, f := range figs {
		fmt.Fprintf(&b, "<figure id=\"%s\"><figcaption>%s</figcaption>\n", esc(f.Name), esc(f.Title))
		svg := string(f.SVG)
		if i := strings.Index(svg, "<svg"); i > 0 {
			svg = svg[i:] // drop the XML prolog: not allowed inside HTML
		}
		b.WriteString(svg)
		fmt.Fprintf(&b, "\n<p class=\"notes\">files: <a href=\"%s.svg\">%s.svg</a>, <a href=\"%s.png\">%s.png</a></p></figure>\n",
			esc(f.Name), esc(f.Name), esc(f.Name), esc(f.Name))
	}
	b.WriteString("</body></html>\n")
	return []byte(b.String())
}

func looksNumeric(s string) bool {
	s = strings.TrimLeft(strings.TrimSpace(s), "+-~")
	return s != "" && (s[0] >= '0' && s[0] <= '9')
}
