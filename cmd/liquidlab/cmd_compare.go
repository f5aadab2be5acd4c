package main

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

func init() {
	register("compare", command{summary: "set two runs side by side, benchstat-style", run: cmdCompare})
	register("table", command{summary: "print the table of a run's cells (text, markdown, csv, json)", run: cmdTable})
}

const compareDoc = `compare [flags] RUN_A RUN_B

A run is a results directory of one experiment, e.g. results/quickstart (copy or
rename one to keep it: mv results/quickstart results/quickstart-before). Cells
are matched by their varied axes. For every metric: the median over repeats of
A and B with their spread, the change in percent, "~" when the difference is not
significant (Mann–Whitney U test at -alpha; needs ≥ 4 repeats per side, set
repeats in the experiment), the p-value and n, and a geometric-mean row. Above the
table: the settings in which the two runs differ.

compare -col AXIS RUN compares the cells of one run along one grid axis instead:
the cells with the axis's first value are A, those with each other value B,
matched on the remaining axes.`

func loadRun(dir string) ([]*results.Record, error) {
	dir = filepath.Clean(dir)
	recs, err := results.Store{Root: filepath.Dir(dir)}.Records(filepath.Base(dir))
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s holds no cells (is it a results/<experiment> directory?)", dir)
	}
	return recs, nil
}

func cmdCompare(e *env, args []string) error {
	fs := newFlags(e, "compare", compareDoc)
	metrics := fs.String("metrics", "valid_loss,valid_acc,train_loss,train_tokens_per_s", "comma-separated metrics")
	alpha := fs.Float64("alpha", report.DefaultAlpha, "significance level")
	format := fs.String("format", "text", "text, markdown, csv, json (csv and json carry full-precision numbers)")
	col := fs.String("col", "", "compare the cells of ONE run along this grid axis: its first value is A, each other value B (benchstat's -col)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ms := splitList(*metrics)
	if *col != "" {
		if fs.NArg() != 1 {
			fs.Usage()
			return fmt.Errorf("compare -col: want one run: %w", errUsage)
		}
		recs, err := loadRun(fs.Arg(0))
		if err != nil {
			return err
		}
		if err := report.CheckMetrics(recs, ms); err != nil && flagSet(fs, "metrics") {
			return fmt.Errorf("compare -metrics: %w", err)
		}
		values, groups := report.SplitByAxis(recs, *col)
		if len(values) < 2 {
			return fmt.Errorf("compare -col %s: the run's cells have %d value(s) of that axis, need two or more (its axes: %s)",
				*col, len(values), strings.Join(report.VariedAxes(recs), ", "))
		}
		for i := 1; i < len(values); i++ {
			t := report.Compare(groups[0], groups[i], ms, *alpha)
			t.Title = fmt.Sprintf("%s: A = %s=%s, B = %s=%s", fs.Arg(0), *col, values[0], *col, values[i])
			if err := report.Render(e.stdout, t, *format); err != nil {
				return err
			}
		}
		return nil
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("compare: want two runs (or -col AXIS and one run): %w", errUsage)
	}
	a, err := loadRun(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := loadRun(fs.Arg(1))
	if err != nil {
		return err
	}
	if err := report.CheckMetrics(append(append([]*results.Record(nil), a...), b...), ms); err != nil && flagSet(fs, "metrics") {
		return fmt.Errorf("compare -metrics: %w", err)
	}
	t := report.Compare(a, b, ms, *alpha)
	t.Title = fmt.Sprintf("A = %s, B = %s", fs.Arg(0), fs.Arg(1))
	t.Preamble = report.ConfigDiff(a, b)
	return report.Render(e.stdout, t, *format)
}

func cmdTable(e *env, args []string) error {
	fs := newFlags(e, "table", "table [flags] RUN\n\nPrints one row per cell of a run (results/<experiment>): the varied axes, then the metrics.")
	metrics := fs.String("metrics", "train_loss,valid_loss,valid_ppl,valid_acc,train_tokens_per_s,ode_nfe_per_step", "comma-separated metrics, or all (an unknown name is an error that lists the valid ones; by default also every eval.* metric of liquidlab eval)")
	format := fs.String("format", "text", "text, markdown, csv, json (csv and json carry full-precision numbers: median, spread, n, samples)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("table: want one run directory: %w", errUsage)
	}
	recs, err := loadRun(fs.Arg(0))
	if err != nil {
		return err
	}
	ms := splitList(*metrics)
	if *metrics == "all" {
		ms = report.MetricNames(recs)
	} else if err := report.CheckMetrics(recs, ms); err != nil && flagSet(fs, "metrics") {
		return fmt.Errorf("table -metrics: %w", err)
	}
	if !flagSet(fs, "metrics") {
		ms = append(ms, evalMetricNames(recs)...)
	}
	return report.Render(e.stdout, report.CellsTable(recs, ms), *format)
}

// flagSet reports whether the command line set the flag (defaults name
// metrics a run may lack; only names the user typed must exist).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
