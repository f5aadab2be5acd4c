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
	"liquidlab/framework/slurm"
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

With run.executor = "slurm" the cells run on a Slurm cluster instead: the
grid is resolved here, and the cells not done (never run, failed or
interrupted) are submitted as ONE job array (sbatch --array=…%slurm.max_parallel)
whose task i runs this binary as "liquidlab run --cell i" with the same -set
flags on the same experiment, writing into slurm.results (or -results), a
directory every node must see. The submission is recorded, with the task
logs, in <results>/<experiment>/.slurm/. The command then waits, printing the
pending / running / done / failed counts whenever they change, and prints the
table; with --detach it returns at once ("liquidlab status" shows the same
later). Ctrl-C while waiting asks whether to cancel the array. A rerun submits
only what is missing or failed.

--cell N runs only grid cell N (0-based, the order of --dry-run), whatever
run.executor says: it is what a Slurm array task runs. The cell is written and
locked exactly as in a full run, and the Slurm job, task and node are recorded
in its run.json and lock; a task Slurm requeued skips its cell when done and
redoes it when interrupted.

Examples:
  liquidlab run experiments/quickstart.toml
  liquidlab run --dry-run experiments/ablation-ode.toml
  liquidlab run -set train.steps=10 -set model.num_flows=2 experiments/quickstart.toml
  liquidlab run -set run.executor=slurm -set slurm.partition=gpu --detach experiments/ablation-flows.toml
  liquidlab run --cell 3 experiments/ablation-flows.toml`

func cmdRun(e *env, args []string) error {
	fs := newFlags(e, "run", runDoc)
	var sets setFlags
	fs.Var(&sets, "set", "override a setting, key.path=value (repeatable)")
	dry := fs.Bool("dry-run", false, "print the expanded grid and exit")
	jobs := fs.Int("jobs", 0, "cells run side by side (default run.jobs)")
	force := fs.Bool("force", false, "redo cells that are already done")
	dir := fs.String("results", "results", "results directory")
	format := fs.String("format", "text", "table format: text, markdown, csv, json")
	cell := fs.Int("cell", -1, "run only grid cell `N` (0-based), as a Slurm array task does; ignores run.executor")
	detach := fs.Bool("detach", false, "with run.executor = \"slurm\": return once the array is submitted (see liquidlab status)")
	// Flags may also follow the experiment file: a Slurm task's command line
	// ends in "--cell N".
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("run: want one experiment file, got %d arguments: %w", len(pos), errUsage)
	}
	cellSet := false
	fs.Visit(func(f *flag.Flag) { cellSet = cellSet || f.Name == "cell" })
	if cellSet && *cell < 0 {
		return fmt.Errorf("run: --cell %d: want a cell index ≥ 0 (see --dry-run for the grid's cells): %w", *cell, errUsage)
	}
	if !slices.Contains(report.Formats, *format) {
		return fmt.Errorf("run: -format %q: want one of %s: %w", *format, strings.Join(report.Formats, ", "), errUsage)
	}
	jobsSet := false
	fs.Visit(func(f *flag.Flag) { jobsSet = jobsSet || f.Name == "jobs" })
	if jobsSet && *jobs < 1 {
		return fmt.Errorf("run: -jobs %d: want at least 1 (without -jobs, run.jobs of the experiment decides): %w", *jobs, errUsage)
	}
	a := experimentArgs{Path: pos[0], Overrides: sets}
	if cellSet {
		if *detach || *dry {
			return fmt.Errorf("run: --cell runs one cell here and now: it takes neither --detach nor --dry-run: %w", errUsage)
		}
		return runOneCell(e, a, *dir, *cell, *force)
	}
	if !*dry {
		exp, err := config.Load(a.Path, a.Overrides)
		if err != nil {
			return err
		}
		if exp.Run.Executor == config.ExecutorSlurm {
			return runSlurm(e, a, exp, slurmRunFlags{results: *dir, force: *force, detach: *detach, format: *format})
		}
	}
	if *detach {
		return fmt.Errorf("run: --detach needs run.executor = \"slurm\" (a local run cannot be detached): %w", errUsage)
	}
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
			if err := config.DryRun(e.stdout, exp); err != nil {
				return err
			}
			return printMemoryEstimates(ctx, e.stdout, exp, cells, r)
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

// parseInterspersed parses flags that come before and after the positional
// arguments, and returns those.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		rest := fs.Args()
		if rest[0] == "--" || len(rest) == 1 {
			if rest[0] == "--" {
				rest = rest[1:]
			}
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// runOneCell runs grid cell index (what a Slurm array task runs), locally.
func runOneCell(e *env, a experimentArgs, dir string, index int, force bool) error {
	task := slurm.FromEnv()
	if task.Restarts > 0 {
		// Slurm requeued the task (node failure, preemption): resume, that is
		// skip the cell when an earlier attempt finished it.
		force = false
	}
	return withApp(e, a, dir, func(ctx context.Context, exp *config.Experiment, r *runner.Runner) error {
		if err := exp.Validate(r.Launcher.Describer(ctx, exp)); err != nil {
			return err
		}
		if task.InTask() {
			fmt.Fprintf(e.stdout, "Slurm job %s task %s on %s (restart %d): cell %d of %s\n", task.ArrayJobID, task.TaskID, task.Node, task.Restarts, index, exp.Name)
		}
		out, err := r.Run(ctx, exp, runner.Options{Train: true, Bench: len(exp.Bench.Lengths) > 0, Force: force, Jobs: 1, Cells: []int{index}})
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("cell %d interrupted: it is recorded as failed; run the same command again to redo it", index)
		}
		if err != nil {
			return err
		}
		if n := runner.Failed(out); n > 0 {
			return fmt.Errorf("cell %d failed (its log is in its directory): %w", index, runner.FirstError(out))
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
