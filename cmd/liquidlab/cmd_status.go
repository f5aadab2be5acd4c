package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"liquidlab/framework/config"
	"liquidlab/framework/report"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
	"liquidlab/framework/slurm"
)

func init() {
	register("status", command{summary: "show the progress of a grid submitted to Slurm", run: cmdStatus})
}

const statusDoc = `status [flags] RESULTS/EXPERIMENT

Shows a grid submitted to Slurm by "liquidlab run" (run.executor = "slurm"):
the latest submission recorded in RESULTS/EXPERIMENT/.slurm/, its cells
counted as pending / running (from squeue) and done / failed (from the results
directory), every failed cell with its Slurm log, then the table of every cell
(also written to RESULTS/EXPERIMENT/table.*). A task that left the queue
without finishing its cell (it failed, hit its time limit, was cancelled) is a
failed cell; "liquidlab run" submits it again.

Examples:
  liquidlab status results/ablation-flows
  liquidlab status -format markdown /shared/results/ablation-flows`

func cmdStatus(e *env, args []string) error {
	fs := newFlags(e, "status", statusDoc)
	format := fs.String("format", "text", "table format: text, markdown, csv, json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("status: want one results directory of an experiment, got %d arguments: %w", fs.NArg(), errUsage)
	}
	if !slices.Contains(report.Formats, *format) {
		return fmt.Errorf("status: -format %q: want one of %s: %w", *format, strings.Join(report.Formats, ", "), errUsage)
	}
	dir := filepath.Clean(fs.Arg(0))
	subs, err := slurm.Submissions(filepath.Join(dir, slurmDir))
	if err != nil {
		return err
	}
	if len(subs) == 0 {
		return fmt.Errorf("status: %s has no Slurm submission (no %s/*.json): it was not run with run.executor = \"slurm\", or is not RESULTS/EXPERIMENT", dir, slurmDir)
	}
	sub := subs[len(subs)-1]
	store := results.Store{Root: filepath.Dir(dir)}
	ctx, cancel := signalContext()
	defer cancel()
	p, err := progressOf(ctx, store, sub)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "Slurm job %s, submitted %s: %s\n", sub.JobID, sub.Submitted.Local().Format("2006-01-02 15:04:05"), p)
	p.printFailed(e.stdout)
	if err := printCellsTable(e, store, filepath.Base(dir), *format); err != nil {
		return err
	}
	if p.Pending+p.Running > 0 {
		fmt.Fprintf(e.stdout, "%d cells to go; cancel them with: scancel %s\n", p.Pending+p.Running, strings.Join(p.jobs, " "))
	}
	return nil
}

// slurmDir is where, under results/<experiment>/, the submissions, the batch
// script and the tasks' logs go (a hidden name: Store.Records skips it).
const slurmDir = ".slurm"

// slurmRunFlags are run's flags that matter to a submission.
type slurmRunFlags struct {
	results string
	force   bool
	detach  bool
	format  string
}

// runSlurm submits the experiment's unfinished cells as one array and, unless
// detached, waits for it and prints the table.
func runSlurm(e *env, a experimentArgs, exp *config.Experiment, f slurmRunFlags) error {
	t0 := time.Now()
	resDir := f.results
	if exp.Slurm.Results != "" {
		resDir = exp.Slurm.Results
	}
	resDir, err := filepath.Abs(resDir)
	if err != nil {
		return err
	}
	expPath, err := filepath.Abs(a.Path)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("run: the slurm executor runs this binary on the nodes, but its path is unknown: %w", err)
	}
	workdir, err := os.Getwd()
	if err != nil {
		return err
	}
	return withApp(e, a, resDir, func(ctx context.Context, exp *config.Experiment, r *runner.Runner) error {
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
		store := results.Store{Root: resDir}
		logDir := filepath.Join(resDir, exp.Name, slurmDir)
		// Cells still queued or running in an earlier submission stay there.
		earlier, err := slurm.Submissions(logDir)
		if err != nil {
			return err
		}
		type place struct {
			job  string
			task int
		}
		queued := map[string]place{}
		for _, s := range earlier {
			q, err := slurm.Queue(ctx, s.JobID)
			if err != nil {
				return err
			}
			for _, c := range s.Cells {
				if _, ok := q[c.Task]; ok && c.JobID == s.JobID {
					queued[c.ID] = place{s.JobID, c.Task}
				}
			}
		}
		o := runner.Options{Train: true, Bench: len(exp.Bench.Lengths) > 0, Force: f.force}
		sub := &slurm.Submission{Experiment: exp.Name, Workdir: workdir, Results: resDir, LogDir: logDir, GridCells: len(cells)}
		var todo []int
		var done, elsewhere int
		for _, c := range cells {
			id, err := r.CellID(ctx, c, o)
			if err != nil {
				return err
			}
			sc := slurm.Cell{Index: c.Index, ID: id, Axes: axesOf(c), Task: c.Index}
			rc := store.Cell(exp.Name, id)
			var need []string
			if c.Exp.Train.Steps > 0 {
				need = append(need, results.CheckpointFile)
			}
			owner, _ := rc.Locker()
			switch p, ok := queued[id]; {
			case ok:
				sc.JobID, sc.Task = p.job, p.task
				elsewhere++
			case owner != nil:
				elsewhere++
			case !f.force && rc.Done(need...) == nil:
				done++
			default:
				todo = append(todo, c.Index)
				sc.JobID = "?" // this submission's; set once sbatch names it
			}
			sub.Cells = append(sub.Cells, sc)
		}
		fmt.Fprintf(e.stdout, "experiment %s: %d cells (%d done, %d queued or running elsewhere), results in %s\n", exp.Name, len(cells), done, elsewhere, filepath.Join(resDir, exp.Name))
		if len(todo) == 0 {
			if elsewhere > 0 {
				fmt.Fprintf(e.stdout, "nothing to submit: the cells not done are queued or running already (liquidlab status %s)\n", filepath.Join(resDir, exp.Name))
				return nil
			}
			fmt.Fprintln(e.stdout, "nothing to submit: every cell is done")
			return printCellsTable(e, store, exp.Name, f.format)
		}
		argv := []string{self, "run"}
		for _, s := range a.Overrides {
			argv = append(argv, "-set", s)
		}
		argv = append(argv, "-results", resDir)
		if f.force {
			argv = append(argv, "-force")
		}
		argv = append(argv, expPath)
		so := slurm.Options{Partition: exp.Slurm.Partition, Time: exp.Slurm.Time, CPUsPerTask: exp.Slurm.CPUsPerTask,
			Mem: exp.Slurm.Mem, MaxParallel: exp.Slurm.MaxParallel, ExtraArgs: exp.Slurm.ExtraArgs, JobName: "liquidlab-" + exp.Name}
		job, err := slurm.Submit(ctx, so, logDir, argv, workdir, todo)
		if err != nil {
			return fmt.Errorf("run: submitting %d cells to Slurm: %w", len(todo), err)
		}
		sub.JobID, sub.Submitted, sub.Argv = job.ID, time.Now().Round(0), argv
		for i := range sub.Cells {
			if sub.Cells[i].JobID == "?" {
				sub.Cells[i].JobID = job.ID
			}
		}
		if err := sub.Save(logDir); err != nil {
			return fmt.Errorf("run: Slurm job %s is submitted, but its record is not (cancel it with: scancel %s): %w", job.ID, job.ID, err)
		}
		par := "no limit"
		if exp.Slurm.MaxParallel > 0 {
			par = fmt.Sprintf("at most %d at once", exp.Slurm.MaxParallel)
		}
		fmt.Fprintf(e.stdout, "submitted Slurm job %s: %d cells (array %s, %s) in %.2fs; logs in %s\n",
			job.ID, len(todo), slurm.ArraySpec(todo, 0), par, time.Since(t0).Seconds(), logDir)
		watch := filepath.Join(resDir, exp.Name)
		if f.detach {
			fmt.Fprintf(e.stdout, "detached: watch with  liquidlab status %s\n          cancel with scancel %s\n", watch, job.ID)
			return nil
		}
		if err := waitSlurm(ctx, e, store, sub, exp.Slurm.Poll); err != nil {
			return err
		}
		if err := printCellsTable(e, store, exp.Name, f.format); err != nil {
			return err
		}
		p, err := progressOf(context.Background(), store, sub)
		if err != nil {
			return err
		}
		if p.Failed > 0 {
			return fmt.Errorf("%d of %d submitted cells failed (see their Slurm logs above); run the same command again to resubmit them", p.Failed, len(todo))
		}
		return nil
	})
}

// waitSlurm polls squeue and the results directory every poll and prints the
// counts whenever they change, until no cell is pending or running. On Ctrl-C
// it asks (on a terminal) whether to cancel the array.
func waitSlurm(ctx context.Context, e *env, store results.Store, sub *slurm.Submission, poll time.Duration) error {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	last := ""
	failures := 0
	for {
		p, err := progressOf(ctx, store, sub)
		if err != nil && ctx.Err() == nil {
			// A busy slurmctld times out now and then; give up only when
			// squeue keeps failing.
			if failures++; failures >= 5 {
				return fmt.Errorf("%w (Slurm job %s goes on: liquidlab status %s)", err, sub.JobID, filepath.Join(sub.Results, sub.Experiment))
			}
			fmt.Fprintf(e.stderr, "%s job %s: %v (retrying)\n", time.Now().Format("15:04:05"), sub.JobID, err)
		}
		if err == nil {
			failures = 0
			if s := p.String(); s != last {
				fmt.Fprintf(e.stdout, "%s job %s: %s\n", time.Now().Format("15:04:05"), sub.JobID, s)
				last = s
			}
			if p.Pending+p.Running == 0 {
				p.printFailed(e.stdout)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return interruptedWait(e, sub)
		case <-time.After(poll):
		}
	}
}

// interruptedWait handles Ctrl-C while waiting: on a terminal it asks whether
// to cancel the array; otherwise the jobs go on and the way to cancel them is
// printed.
func interruptedWait(e *env, sub *slurm.Submission) error {
	watch := filepath.Join(sub.Results, sub.Experiment)
	if f, ok := e.stdin.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		fmt.Fprintf(e.stderr, "\ncancel Slurm job %s (scancel its pending and running tasks)? [y/N] ", sub.JobID)
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a == "y" || a == "yes" {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := slurm.Cancel(ctx, sub.JobID); err != nil {
				return err
			}
			return fmt.Errorf("cancelled Slurm job %s; finished cells are kept, run the same command again to submit the rest", sub.JobID)
		}
	}
	return fmt.Errorf("stopped watching; Slurm job %s goes on. Watch it with: liquidlab status %s; cancel it with: scancel %s", sub.JobID, watch, sub.JobID)
}

// slurmProgress counts a submission's cells.
type slurmProgress struct {
	Pending, Running, Done, Failed int
	failed                         []string // one line per failed cell
	jobs                           []string // the jobs with tasks still queued
}

func (p slurmProgress) String() string {
	return fmt.Sprintf("%d pending, %d running, %d done, %d failed", p.Pending, p.Running, p.Done, p.Failed)
}

func (p slurmProgress) printFailed(w io.Writer) {
	for _, l := range p.failed {
		fmt.Fprintln(w, l)
	}
}

// progressOf counts the submission's cells: done from the results directory,
// pending and running from squeue (or the cell's lock, for a cell another
// process runs), failed for the rest — a task that left the queue without
// finishing its cell.
func progressOf(ctx context.Context, store results.Store, sub *slurm.Submission) (slurmProgress, error) {
	var p slurmProgress
	queues := map[string]map[int]string{}
	for _, c := range sub.Cells {
		if c.JobID == "" {
			continue
		}
		if _, ok := queues[c.JobID]; !ok {
			q, err := slurm.Queue(ctx, c.JobID)
			if err != nil {
				return p, err
			}
			queues[c.JobID] = q
			if len(q) > 0 {
				p.jobs = append(p.jobs, c.JobID)
			}
		}
	}
	for _, c := range sub.Cells {
		rc := store.Cell(sub.Experiment, c.ID)
		st, _ := rc.Status()
		if st == results.StatusDone {
			p.Done++
			continue
		}
		if state, ok := queues[c.JobID][c.Task]; ok && c.JobID != "" {
			if slurm.Pending(state) {
				p.Pending++
			} else {
				p.Running++
			}
			continue
		}
		if o, _ := rc.Locker(); o != nil {
			p.Running++
			continue
		}
		p.Failed++
		why := "not done"
		if r, err := rc.Load(); err == nil && r.Status == results.StatusFailed {
			why = "failed: " + firstLine(r.Error)
		} else if err == nil && r.Status == results.StatusRunning {
			why = "interrupted (killed, cancelled or out of time)"
		} else if st == "" {
			why = "never started"
		}
		line := fmt.Sprintf("cell %d %s %s: %s", c.Index, c.ID, c.Axes, why)
		if c.JobID != "" {
			line += "; Slurm log " + slurm.LogPath(sub.LogDir, c.JobID, c.Task)
		}
		p.failed = append(p.failed, line)
	}
	return p, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func axesOf(c config.Cell) string {
	var parts []string
	for _, a := range c.Axes {
		parts = append(parts, fmt.Sprintf("%s=%s", a.Key, config.OptionString(a.Value)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "[" + strings.Join(parts, " ") + "]"
}
