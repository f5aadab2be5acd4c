package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"liquidlab/framework/config"
	"liquidlab/framework/report"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
)

func init() {
	register("run", command{summary: "train, evaluate and benchmark every cell of an experiment's grid", run: cmdRun})
}

// setFlags collects repeated -set key=value flags.
type setFlags []string

func (s *setFlags) String() string     { return strings.Join(*s, ",") }
func (s *setFlags) Set(v string) error { *s = append(*s, v); return nil }

const runDoc = `run [flags] EXPERIMENT.toml

Runs every cell of the experiment's [grid]: starts the components it names
(as plugin subprocesses, or in process with run.mode = "inprocess"), trains the
model for train.steps, evaluates it on eval.batches validation batches, and
benchmarks it at bench.lengths when any are given. Each cell is written to
results/<experiment>/<cell-id>/ (config, plugins with sha256, git commit,
machine, metrics.json, log.txt, checkpoint.safetensors). Finished cells are
skipped on a rerun; failed, interrupted and broken ones (a file missing or
corrupt) are redone. A cell another run is running (same results directory)
is skipped and shown as "running elsewhere". At the end a table of every cell
is printed and written to results/<experiment>/table.{txt,md,csv,json}.

Examples:
  liquidlab run experiments/quickstart.toml
  liquidlab run --dry-run experiments/ablation-ode.toml
  liquidlab run -set train.steps=10 -set model.num_flows=2 experiments/quickstart.toml`

func cmdRun(e *env, args []string) error {
	fs := newFlags(e, "run", runDoc)
	var sets setFlags
	fs.Var(&sets, "set", "override a setting, key.path=value (repeatable)")
	dry := fs.Bool("dry-run", false, "print the expanded grid and exit")
	jobs := fs.Int("jobs", 0, "cells run side by side (default run.jobs)")
	force := fs.Bool("force", false, "redo cells that are already done")
	dir := fs.String("results", "results", "results directory")
	format := fs.String("format", "text", "table format: text, markdown, csv, json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("run: want one experiment file, got %d arguments: %w", fs.NArg(), errUsage)
	}
	if !slices.Contains(report.Formats, *format) {
		return fmt.Errorf("run: -format %q: want one of %s: %w", *format, strings.Join(report.Formats, ", "), errUsage)
	}
	jobsSet := false
	fs.Visit(func(f *flag.Flag) { jobsSet = jobsSet || f.Name == "jobs" })
	if jobsSet && *jobs < 1 {
		return fmt.Errorf("run: -jobs %d: want at least 1 (without -jobs, run.jobs of the experiment decides): %w", *jobs, errUsage)
	}
	a := experimentArgs{Path: fs.Arg(0), Overrides: sets}
	return withApp(e, a, *dir, func(ctx context.Context, exp *config.Experiment, r *runner.Runner) error {
		if err := exp.Validate(r.Launcher.Describer(ctx, exp)); err != nil {
			return err
		}
		cells, err := exp.Cells()
		if err != nil {
			return err
		}
		if err := runner.DuplicateCells(cells); err != nil {
			return err
		}
		runner.WarnDuplicates(e.stdout, cells, r.Launcher.Describer(ctx, exp))
		if *dry {
			return config.DryRun(e.stdout, exp)
		}
		fmt.Fprintf(e.stdout, "experiment %s: %d cells, results in %s\n", exp.Name, len(cells), filepath.Join(*dir, exp.Name))
		out, err := r.Run(ctx, exp, runner.Options{Train: true, Bench: len(exp.Bench.Lengths) > 0, Force: *force, Jobs: *jobs})
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted after %d of %d cells started; cells in progress are recorded as failed: run the same command again to finish the rest", len(out), len(cells))
		}
		if err != nil {
			return err
		}
		if err := printCellsTable(e, results.Store{Root: *dir}, exp.Name, *format); err != nil {
			return err
		}
		if n := runner.Failed(out); n > 0 {
			return fmt.Errorf("%d of %d cells failed (their logs are in their directories):\n%w", n, len(out), runner.FirstError(out))
		}
		return nil
	})
}

// printCellsTable renders every cell of an experiment and writes the table in
// every format next to the cells.
func printCellsTable(e *env, store results.Store, name, format string) error {
	recs, err := store.Records(name)
	if err != nil {
		return err
	}
	t := report.CellsTable(recs, append([]string{"train_loss", "valid_loss", "valid_ppl", "valid_acc", "train_tokens_per_s", "ode_nfe_per_step"}, evalMetricNames(recs)...))
	t.Title = "experiment " + name
	for _, f := range report.Formats {
		var sb strings.Builder
		if err := report.Render(&sb, t, f); err != nil {
			return err
		}
		ext := map[string]string{"text": "txt", "markdown": "md"}[f]
		if ext == "" {
			ext = f
		}
		if err := results.WriteFileAtomic(filepath.Join(store.Root, name, "table."+ext), []byte(sb.String())); err != nil {
			return err
		}
	}
	return report.Render(e.stdout, t, format)
}
