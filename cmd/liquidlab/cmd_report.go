package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"liquidlab/framework/htmlreport"
	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

func init() {
	register("report", command{summary: "draw a run: an HTML page with its table, training/validation curves and bench plots (SVG, PNG)", run: cmdReport})
}

const reportDoc = `report [flags] RUN

Draws a run (results/<experiment>) into RUN/report/ (or -out DIR):

  index.html        a self-contained page: the run's table, then every figure
                    inline (no script, no network needed to view it)
  train_loss.svg/.png   training loss per step, one line per cell (the median
                    over repeats), the repeats' range as a band
  valid_loss.svg/.png   validation loss at the steps where it was measured
                    (eval.every, and after the last step)
  bench_time, bench_tokens, bench_memory (.svg/.png)
                    time per batch, tokens/s and peak memory against sequence
                    length, log–log, one line per cell and bench mode
  steps.csv         every cell's per-step metrics (metrics.jsonl) in one CSV
                    with the cell's axes: what a tracker imports

Curves need the per-step stream each cell writes (metrics.jsonl); a figure with
no data is left out and the page says so.`

func cmdReport(e *env, args []string) error {
	fs := newFlags(e, "report", reportDoc)
	out := fs.String("out", "", "output directory (default RUN/report)")
	metrics := fs.String("metrics", "train_loss,valid_loss,valid_ppl,valid_acc,train_tokens_per_s,params,train_time_s", "table columns, comma-separated, or all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("report: want one run directory: %w", errUsage)
	}
	run := filepath.Clean(fs.Arg(0))
	recs, err := loadRun(run)
	if err != nil {
		return err
	}
	ms := splitList(*metrics)
	if *metrics == "all" {
		ms = report.MetricNames(recs)
	} else if err := report.CheckMetrics(recs, ms); err != nil && flagSet(fs, "metrics") {
		return fmt.Errorf("report -metrics: %w", err)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join(run, "report")
	}
	axes := report.VariedAxes(recs)
	store := results.Store{Root: filepath.Dir(run)}
	var cells []htmlreport.Cell
	var warnings []string
	for _, r := range recs {
		if r == nil {
			continue
		}
		c := htmlreport.Cell{Record: r, Label: cellLabel(r, axes)}
		path := store.Cell(filepath.Base(run), r.Cell.ID).StepsPath()
		if steps, err := results.ReadSteps(path); err == nil {
			c.Steps = steps
		} else if !os.IsNotExist(err) {
			warnings = append(warnings, err.Error())
		}
		cells = append(cells, c)
	}
	t := report.CellsTable(recs, ms)
	t.Notes = append(t.Notes, warnings...)
	rep, err := htmlreport.Write(dir, "liquidlab: "+filepath.Base(run), t, cells)
	if err != nil {
		return err
	}
	if err := writeStepsCSV(filepath.Join(dir, "steps.csv"), axes, cells); err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(e.stderr, "report: warning:", w)
	}
	names := make([]string, len(rep.Figures))
	for i, f := range rep.Figures {
		names[i] = f.Name
	}
	fmt.Fprintf(e.stdout, "%s (%d figures: %s; steps.csv)\n", rep.Index, len(rep.Figures), strings.Join(names, ", "))
	return nil
}

// cellLabel names a cell by its varied axes, or by its id when none vary.
func cellLabel(r *results.Record, axes []string) string {
	if len(axes) == 0 {
		return r.Cell.ID
	}
	parts := make([]string, len(axes))
	for i, k := range axes {
		parts[i] = k + "=" + r.Info.Axes[k]
	}
	return strings.Join(parts, " ")
}

func writeStepsCSV(path string, axes []string, cells []htmlreport.Cell) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(append(append([]string{"cell"}, axes...), "repeat", "step", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "valid_loss", "valid_acc"))
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return num(*v)
	}
	for _, c := range cells {
		for _, s := range c.Steps {
			row := []string{c.Record.Cell.ID}
			for _, k := range axes {
				row = append(row, c.Record.Info.Axes[k])
			}
			row = append(row, strconv.Itoa(s.Repeat), strconv.Itoa(s.Step), num(float64(s.Loss)), num(float64(s.LR)),
				num(float64(s.GradNorm)), num(float64(s.TokensPerS)), num(float64(s.ElapsedS)), opt(s.ValidLoss), opt(s.ValidAcc))
			w.Write(row)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
