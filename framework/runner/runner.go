package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"liquidlab/framework/config"
	"liquidlab/framework/data"
	"liquidlab/framework/num"
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
}

// CellOutcome is one cell's result.
type CellOutcome struct {
	Cell    config.Cell
	ID      string
	Dir     string
	Skipped bool
	Err     error
	Metrics results.Metrics
}

// Run runs every cell of an experiment. It returns an error only for problems
// that stop the whole run; failed cells are in the outcomes.
func (r *Runner) Run(ctx context.Context, e *config.Experiment, o Options) ([]CellOutcome, error) {
	cells, err := e.Cells()
	if err != nil {
		return nil, err
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = max(1, e.Run.Jobs)
	}
	name := e.Name + o.Prefix
	out := make([]CellOutcome, len(cells))
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	started := len(cells)
	for i := range cells {
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
			prog := &termProgress{w: r.Term, prefix: fmt.Sprintf("[cell %d/%d] ", i+1, len(cells)), mu: &mu}
			out[i] = r.runCell(ctx, name, cells[i], o, prog)
			prog.done()
			mu.Lock()
			defer mu.Unlock()
			oc := out[i]
			switch {
			case oc.Skipped:
				fmt.Fprintf(r.Out, "cell %d/%d %s: already done, skipped (%s)\n", i+1, len(cells), oc.ID, oc.Dir)
			case oc.Err != nil:
				fmt.Fprintf(r.Out, "cell %d/%d %s: FAILED: %v\n", i+1, len(cells), oc.ID, oc.Err)
			default:
				fmt.Fprintf(r.Out, "cell %d/%d %s: done %s %s\n", i+1, len(cells), oc.ID, axesString(cells[i]), summary(oc.Metrics))
			}
		}(i)
	}
	wg.Wait()
	return out[:started], ctx.Err()
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

func (r *Runner) runCell(ctx context.Context, expName string, cell config.Cell, o Options, prog Progress) (oc CellOutcome) {
	oc.Cell = cell
	e := cell.Exp
	// The id depends on the components' binaries (known before they start), so
	// a cell whose plugin fails to start keeps the id a successful run has.
	sums, err := r.Launcher.Checksums(e)
	if err != nil {
		oc.Err = err
		return oc
	}
	prog.Update("starting components")
	st, err := r.Launcher.Resolve(ctx, e)
	mode := []string{}
	if o.Train {
		mode = append(mode, "train")
	}
	if o.Bench {
		mode = append(mode, "bench")
	}
	canon := append(e.Canonical(), []byte("\nwhat="+strings.Join(mode, ","))...)
	oc.ID = results.CellID(canon, sums)
	c := r.Store.Cell(expName, oc.ID)
	oc.Dir = c.Dir
	if err != nil && ctx.Err() != nil {
		// Interrupted while starting: nothing ran, write nothing.
		oc.Err = fmt.Errorf("interrupted before its components started (nothing recorded)")
		return oc
	}
	if err == nil && !o.Force {
		if s, _ := c.Status(); s == results.StatusDone {
			st.Close()
			oc.Skipped = true
			return oc
		}
	}
	commit, dirty := results.GitCommit(".")
	axes := map[string]string{}
	for _, a := range cell.Axes {
		axes[a.Key] = config.OptionString(a.Value)
	}
	info := results.RunInfo{Experiment: expName, CellIndex: cell.Index, Axes: axes, Commit: commit, Dirty: dirty,
		Machine: results.DescribeMachine(num.Backend()), BLAS: num.Backend(), Start: time.Now()}
	var plugins []results.PluginInfo
	if st != nil {
		plugins = st.Plugins
	}
	if berr := c.Begin(info, e.Canonical(), plugins); berr != nil {
		if st != nil {
			st.Close()
		}
		oc.Err = berr
		return oc
	}
	metrics := results.Metrics{Values: map[string]float64{}, Samples: map[string][]float64{}}
	logw, lerr := c.Log()
	if lerr != nil {
		logw = nopCloser{io.Discard}
	}
	defer logw.Close()
	defer func() {
		if oc.Err != nil {
			fmt.Fprintf(logw, "FAILED: %v\n", oc.Err)
		}
		if ferr := c.Finish(metrics, oc.Err); ferr != nil && oc.Err == nil {
			oc.Err = ferr
		}
		oc.Metrics = metrics
	}()
	if err != nil {
		oc.Err = err
		return oc
	}
	defer st.Close()
	for _, p := range st.Plugins {
		fmt.Fprintf(logw, "component %s: %s %s (%s sha256 %s)\n", p.Kind, p.Impl, p.Version, p.Path, p.SHA256)
	}
	if o.Train {
		tok, err := LoadTokenizer(e)
		if err != nil {
			oc.Err = err
			return oc
		}
		if tok.VocabSize() > e.Model.VocabSize {
			oc.Err = fmt.Errorf("model.vocab_size %d is smaller than the tokenizer's vocabulary (%d): set model.vocab_size ≥ %d", e.Model.VocabSize, tok.VocabSize(), tok.VocabSize())
			return oc
		}
		prog.Update("preparing data")
		corpus, err := data.Load(encoder{tok}, data.Options{Source: e.Data.Source, SeqLen: e.Data.SeqLen, ValidFraction: e.Data.ValidFraction, Seed: uint64(e.Seed), MaxBytes: int64(e.Data.MaxBytes)})
		if err != nil {
			oc.Err = err
			return oc
		}
		fmt.Fprintf(logw, "data: %s, %d train and %d valid sequences of %d tokens\n", corpus.Source, len(corpus.Train), len(corpus.Valid), corpus.SeqLen)
		reps := max(1, e.Repeats)
		for rep := 0; rep < reps; rep++ {
			re := *e
			re.Seed = e.Seed + int64(rep)
			m, err := BuildModel(ctx, &re, st.Map)
			if err != nil {
				oc.Err = err
				return oc
			}
			if rep == 0 {
				for _, l := range m.Describe() {
					fmt.Fprintln(logw, l)
				}
			}
			if reps > 1 {
				fmt.Fprintf(logw, "repeat %d/%d (seed %d)\n", rep+1, reps, re.Seed)
			}
			tr, err := TrainEval(ctx, &re, m, corpus, padID(tok), uint64(re.Seed), logw, prog)
			if err == nil && rep == 0 && e.Train.Steps > 0 {
				// The trained parameters, under PyTorch's state_dict names.
				if cerr := m.SaveCheckpoint(filepath.Join(c.Dir, "checkpoint.safetensors"), map[string]string{"experiment": expName, "cell": oc.ID}); cerr != nil {
					fmt.Fprintf(logw, "checkpoint not saved: %v\n", cerr)
				}
			}
			for k, v := range tr {
				metrics.Samples[k] = append(metrics.Samples[k], v)
			}
			if err != nil {
				oc.Err = err
				break
			}
		}
		for k, v := range metrics.Samples {
			metrics.Values[k] = median(v)
		}
		if reps == 1 {
			metrics.Samples = nil
		}
		if oc.Err != nil {
			return oc
		}
	}
	if o.Bench && len(e.Bench.Lengths) > 0 {
		m, err := BuildModel(ctx, e, st.Map)
		if err != nil {
			oc.Err = err
			return oc
		}
		rows, err := Bench(ctx, m, BenchOptions{Lengths: e.Bench.Lengths, Batch: e.Bench.Batch, Modes: e.Bench.Modes,
			Warmup: e.Bench.Warmup, Repeats: e.Bench.Repeats, ChunkSize: e.Run.ChunkSize, Seed: uint64(e.Seed), PIDs: st.PIDs, Progress: prog})
		metrics.Bench = rows
		for _, b := range rows {
			fmt.Fprintf(logw, "bench %s %d tokens: median %.3fs (spread %.3fs) %.0f tok/s peak %.2f GB\n", b.Mode, b.SeqLen, b.MedianS, b.SpreadS, b.TokensPerS, b.PeakMemGB)
		}
		if err != nil {
			oc.Err = err
			return oc
		}
	}
	return oc
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// termProgress rewrites one status line on a terminal and prints nothing
// elsewhere.
type termProgress struct {
	w      io.Writer
	prefix string
	mu     *sync.Mutex
	last   time.Time
	shown  bool
}

func (p *termProgress) Update(format string, args ...any) {
	if p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K%s%s", p.prefix, fmt.Sprintf(format, args...))
	p.shown = true
}

func (p *termProgress) done() {
	if p.w != nil && p.shown {
		p.mu.Lock()
		fmt.Fprint(p.w, "\r\033[K")
		p.mu.Unlock()
	}
}

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
