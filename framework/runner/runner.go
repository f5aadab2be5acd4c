package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"liquidlab/framework/config"
	"liquidlab/framework/results"
)

// Runner runs experiments.
type Runner struct {
	Launcher *Launcher
	Store    results.Store
	Out      io.Writer // one line per finished cell
	Term     io.Writer // progress; nil when not a terminal
}

// Options select what a run does.
type Options struct {
	Train  bool // train and evaluate (liquidlab run)
	Bench  bool // benchmark (liquidlab run when [bench] has lengths; liquidlab bench)
	Force  bool // redo cells even when done
	Jobs   int
	Prefix string // results sub-name, e.g. "bench" → results/<exp>-bench
	// Cells, when not nil, selects the grid cells to run by index
	// (config.Cell.Index, 0-based): a Slurm array task runs one.
	Cells []int
}

// CellOutcome is one cell's result.
type CellOutcome struct {
	Cell    config.Cell
	ID      string
	Dir     string
	Skipped bool
	Busy    *results.HeldError // set, with Skipped, when another run holds the cell
	Err     error
	Metrics results.Metrics
}

// Run runs every cell of an experiment. It returns an error only for problems
// that stop the whole run; failed cells are in the outcomes.
func (r *Runner) Run(ctx context.Context, e *config.Experiment, o Options) ([]CellOutcome, error) {
	if o.Jobs < 0 {
		return nil, fmt.Errorf("runner: %d jobs: want at least 1, or 0 for the experiment's run.jobs", o.Jobs)
	}
	cells, err := e.Cells()
	if err != nil {
		return nil, err
	}
	if err := DuplicateCells(cells); err != nil {
		return nil, err
	}
	jobs := o.Jobs
	if jobs == 0 {
		jobs = max(1, e.Run.Jobs)
	}
	if jobs > 1 {
		ctx = context.WithValue(ctx, concurrentCells{}, true)
	}
	name := e.Name + o.Prefix
	sel := cells
	if o.Cells != nil {
		sel = make([]config.Cell, 0, len(o.Cells))
		for _, i := range o.Cells {
			if i < 0 || i >= len(cells) {
				return nil, fmt.Errorf("runner: cell index %d: the grid of %s has %d cells (indices 0 to %d)", i, e.Name, len(cells), len(cells)-1)
			}
			sel = append(sel, cells[i])
		}
	}
	out := make([]CellOutcome, len(sel))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	started := len(sel)
	progress := newRunProgress(r.Term, r.Out, &mu, sel, o.Train, e.Run.ProgressEvery)
	defer progress.stop()
	for i := range sel {
		if ctx.Err() != nil {
			// Interrupted: cells not started are left alone (no record), so a
			// rerun starts them afresh.
			started = i
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			n := sel[i].Index + 1
			prog := progress.cell(i)
			out[i] = r.runCell(ctx, name, sel[i], o, prog)
			prog.done()
			mu.Lock()
			defer mu.Unlock()
			oc := out[i]
			switch {
			case oc.Busy != nil:
				fmt.Fprintf(r.Out, "cell %d/%d %s: running elsewhere, skipped: %v\n", n, len(cells), oc.ID, oc.Busy)
			case oc.Skipped:
				fmt.Fprintf(r.Out, "cell %d/%d %s: already done, skipped (%s)\n", n, len(cells), oc.ID, oc.Dir)
			case oc.Err != nil:
				fmt.Fprintf(r.Out, "cell %d/%d %s: FAILED: %v\n", n, len(cells), oc.ID, oc.Err)
			default:
				fmt.Fprintf(r.Out, "cell %d/%d %s: done %s %s\n", n, len(cells), oc.ID, axesString(sel[i]), summary(oc.Metrics))
			}
		}(i)
	}
	wg.Wait()
	return out[:started], ctx.Err()
}

// CellID is the id (and so the results directory) a cell of an experiment
// gets in a run with options o: it hashes the canonical config, what the run
// does (train, bench) and the components' binaries, so it is known before
// anything starts.
func (r *Runner) CellID(ctx context.Context, cell config.Cell, o Options) (string, error) {
	e := cell.Exp
	sums, err := r.Launcher.Identities(ctx, e)
	if err != nil {
		return "", err
	}
	var mode []string
	if o.Train {
		mode = append(mode, "train")
	}
	if o.Bench {
		mode = append(mode, "bench")
	}
	canon := append(e.IdentityForm(), []byte("\nwhat="+strings.Join(mode, ","))...)
	axes := make([]results.AxisValue, len(cell.Axes))
	for i, a := range cell.Axes {
		axes[i] = results.AxisValue{Key: a.Key, Value: config.OptionString(a.Value)}
	}
	return results.CellName(axes, results.CellID(canon, sums)), nil
}

// DuplicateCells returns an error naming the first two cells of a grid that
// resolve to the same experiment (a repeated value such as [1, 1], or 1e-3 and
// 0.001): they would be one cell directory, run twice.
func DuplicateCells(cells []config.Cell) error {
	seen := make(map[string]int, len(cells))
	for i, c := range cells {
		key := string(c.Exp.Canonical())
		if j, dup := seen[key]; dup {
			return fmt.Errorf("grid: cells %d %s and %d %s are the same experiment: remove the repeated value", j+1, axesString(cells[j]), i+1, axesString(c))
		}
		seen[key] = i
	}
	return nil
}

func axesString(c config.Cell) string {
	var parts []string
	for _, a := range c.Axes {
		parts = append(parts, fmt.Sprintf("%s=%v", a.Key, a.Value))
	}
	if len(parts) == 0 {
		return ""
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func summary(m results.Metrics) string {
	keys := []string{"train_loss", "valid_loss", "valid_acc", "train_tokens_per_s"}
	var parts []string
	for _, k := range keys {
		if v, ok := m.Values[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.4g", k, v))
		}
	}
	for _, b := range m.Bench {
		parts = append(parts, fmt.Sprintf("%s@%d=%.0ftok/s", b.Mode, b.SeqLen, b.TokensPerS))
	}
	return strings.Join(parts, " ")
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Failed counts failed cells.
func Failed(out []CellOutcome) int {
	n := 0
	for _, o := range out {
		if o.Err != nil {
			n++
		}
	}
	return n
}

// FirstError returns the failed cells' errors joined, sorted by cell.
func FirstError(out []CellOutcome) error {
	var errs []error
	sort.SliceStable(out, func(i, j int) bool { return out[i].Cell.Index < out[j].Cell.Index })
	for _, o := range out {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("cell %d: %w", o.Cell.Index+1, o.Err))
		}
	}
	return errors.Join(errs...)
}
