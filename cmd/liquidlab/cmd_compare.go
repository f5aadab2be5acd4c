package main

import (
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
repeats in the experiment), the p-value and n, and a geometric-mean row.`

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
	format := fs.String("format", "text", "text, markdown, csv, json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return fmt.Errorf("compare: want two runs: %w", errUsage)
	}
	a, err := loadRun(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := loadRun(fs.Arg(1))
	if err != nil {
		return err
	}
	t := report.Compare(a, b, strings.Split(*metrics, ","), *alpha)
	t.Title = fmt.Sprintf("A = %s, B = %s", fs.Arg(0), fs.Arg(1))
	return report.Render(e.stdout, t, *format)
}

func cmdTable(e *env, args []string) error {
	fs := newFlags(e, "table", "table [flags] RUN\n\nPrints one row per cell of a run (results/<experiment>): the varied axes, then the metrics.")
	metrics := fs.String("metrics", "train_loss,valid_loss,valid_ppl,valid_acc,train_tokens_per_s,ode_nfe_per_step", "comma-separated metrics (by default also every eval.* metric of liquidlab eval)")
	format := fs.String("format", "text", "text, markdown, csv, json")
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
	names := strings.Split(*metrics, ",")
	if !flagSet(fs, "metrics") {
		names = append(names, evalMetricNames(recs)...)
	}
	return report.Render(e.stdout, report.CellsTable(recs, names), *format)
}
