package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"liquidlab/framework/config"
	"liquidlab/framework/data"
	"liquidlab/framework/num"
	"liquidlab/framework/results"
	"liquidlab/framework/stage"
)

// cellRun is one cell on its way through the steps of runCell: resolve →
// skip-if-done → begin → train → bench. Each step returns an error; the
// stages are closed once, by runCell.
type cellRun struct {
	expName string
	cell    config.Cell
	o       Options
	prog    Progress

	c        results.Cell
	st       *Stages // nil when the components did not start
	startErr error   // why they did not start; recorded as the cell's failure
	log      io.Writer
	metrics  results.Metrics
	redo     error // why a cell recorded as done is redone (a file missing or corrupt)
	lock     *results.Lock
	descs    map[string]*stage.Description // with memory hints, for the bench's estimates
}

// runCell runs one cell and reports its outcome.
func (r *Runner) runCell(ctx context.Context, expName string, cell config.Cell, o Options, prog Progress) (oc CellOutcome) {
	oc.Cell = cell
	cr := &cellRun{expName: expName, cell: cell, o: o, prog: prog,
		metrics: results.Metrics{Values: map[string]float64{}, Samples: map[string][]float64{}}}
	defer cr.close()
	err := r.resolve(ctx, cr)
	oc.ID, oc.Dir = cr.c.ID, cr.c.Dir
	if errors.As(err, &oc.Busy) {
		oc.Skipped = true
		return oc
	}
	if err != nil {
		oc.Err = err
		return oc
	}
	if cr.done() {
		oc.Skipped = true
		return oc
	}
	logw, err := cr.begin()
	if err != nil {
		oc.Err = err
		return oc
	}
	defer logw.Close()
	if oc.Err = r.checkBudget(ctx, cr); oc.Err == nil {
		oc.Err = cr.work(ctx)
	}
	oc.Err = cr.finish(oc.Err)
	oc.Metrics = cr.metrics
	return oc
}

// resolve names the cell (its id hashes the config and the components'
// binaries, known before they start, so a cell whose plugin fails to start
// keeps the id a successful run has), takes the cell's lock and starts its
// components. A failure to start is kept in startErr, to be recorded as the
// cell's failure; an error is returned only when nothing is to be recorded: a
// *results.HeldError when another process runs the cell.
func (r *Runner) resolve(ctx context.Context, cr *cellRun) error {
	e := cr.cell.Exp
	id, err := r.CellID(ctx, cr.cell, cr.o)
	if err != nil {
		return err
	}
	cr.c = r.Store.Cell(cr.expName, id)
	if cr.lock, err = cr.c.Lock(); err != nil {
		return err
	}
	cr.prog.Update("starting components")
	cr.st, cr.startErr = r.Launcher.Resolve(ctx, e)
	if cr.startErr != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted before its components started (nothing recorded)")
	}
	return nil
}

// done says whether the cell is finished and intact, and so is skipped. A
// cell recorded as done whose metrics are corrupt or whose checkpoint is
// missing is redone, with the reason in its log; one with fewer finished
// repeats than asked for runs the missing ones (see train).
func (cr *cellRun) done() bool {
	if cr.o.Force || cr.startErr != nil {
		return false
	}
	var need []string
	if cr.o.Train && cr.cell.Exp.Train.Steps > 0 {
		need = append(need, results.CheckpointFile)
	}
	err := cr.c.Done(need...)
	if err == nil && cr.o.Train {
		want := max(1, cr.cell.Exp.Repeats)
		switch recs, rerr := cr.c.Repeats(); {
		case rerr != nil:
			err = rerr
		case len(recs) < want:
			err = fmt.Errorf("%d of %d repeats done: running the rest", len(recs), want)
		default:
			err = cr.showRepeats(recs[:want])
		}
	}
	if s, _ := cr.c.Status(); s == results.StatusDone && err != nil {
		cr.redo = err
	}
	return err == nil
}

// showRepeats makes the metrics of a finished cell those of the given
// repeats (the first N, when `repeats` was lowered); the other repeats stay in
// repeats.json and metrics.jsonl, so raising it again reruns nothing.
func (cr *cellRun) showRepeats(recs []results.RepeatRecord) error {
	rec, err := cr.c.Load()
	if err != nil {
		return err
	}
	if rec.Metrics == nil {
		return fmt.Errorf("done, but no metrics")
	}
	m := *rec.Metrics
	m.Values = maps.Clone(m.Values)
	m.Samples = maps.Clone(m.Samples)
	if m.Samples == nil {
		m.Samples = map[string][]float64{}
	}
	for _, r := range recs {
		for k := range r.Metrics {
			delete(m.Samples, k)
		}
	}
	for _, r := range recs {
		for k, v := range r.Metrics {
			m.Samples[k] = append(m.Samples[k], float64(v))
		}
	}
	for k, v := range m.Samples {
		m.Values[k] = median(v)
	}
	if len(recs) == 1 {
		m.Samples = nil
	}
	if sameMetrics(m, *rec.Metrics) {
		return nil
	}
	return cr.c.RewriteMetrics(m)
}

// sameMetrics compares two metrics by their JSON form (NaN equals NaN).
func sameMetrics(a, b results.Metrics) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// begin records the cell as running and opens its log.
func (cr *cellRun) begin() (io.WriteCloser, error) {
	commit, dirty := results.GitCommit(".")
	axes := map[string]string{}
	for _, a := range cr.cell.Axes {
		axes[a.Key] = config.OptionString(a.Value)
	}
	info := results.RunInfo{Experiment: cr.expName, CellIndex: cr.cell.Index, Axes: axes, Commit: commit, Dirty: dirty,
		Seed: cr.cell.Exp.Seed, DataSeed: cr.cell.Exp.DataSeed(),
		Machine: results.DescribeMachine(num.Backend()), BLAS: num.Backend(), Start: time.Now()}
	var plugins []results.PluginInfo
	if cr.st != nil {
		plugins = cr.st.Plugins
	}
	if err := cr.c.Begin(info, cr.cell.Exp.Canonical(), plugins); err != nil {
		return nil, err
	}
	logw, err := cr.c.Log()
	if err != nil {
		logw = nopCloser{io.Discard}
	}
	cr.log = logw
	if cr.redo != nil {
		fmt.Fprintf(logw, "redoing a cell recorded as done: %v\n", cr.redo)
	}
	return logw, nil
}

// work trains and benchmarks the begun cell.
func (cr *cellRun) work(ctx context.Context) error {
	if cr.startErr != nil {
		return cr.startErr
	}
	for _, p := range cr.st.Plugins {
		fmt.Fprintf(cr.log, "component %s: %s %s (%s sha256 %s)\n", p.Kind, p.Impl, p.Version, p.Path, p.SHA256)
	}
	if cr.o.Train {
		if err := cr.train(ctx); err != nil {
			return err
		}
	}
	if cr.o.Bench && len(cr.cell.Exp.Bench.Lengths) > 0 {
		return cr.bench(ctx)
	}
	return nil
}

// finish records the cell's end: its metrics and status.
func (cr *cellRun) finish(runErr error) error {
	if runErr != nil {
		fmt.Fprintf(cr.log, "FAILED: %v\n", runErr)
	}
	if err := cr.c.Finish(cr.metrics, runErr); err != nil && runErr == nil {
		return err
	}
	return runErr
}

// close stops the cell's components and releases its lock.
func (cr *cellRun) close() {
	if cr.st != nil {
		cr.st.Close()
	}
	// Closing the lock file releases the lock even when emptying the owner
	// record fails; a stale record of a free lock is ignored.
	_ = cr.lock.Unlock()
}

// train trains and evaluates e.Repeats models (seeds e.Seed, e.Seed+1, …);
// each metric is the median over the repeats, with the samples kept when
// there are several. Repeats a run of the same cell finished before (in
// repeats.json) are kept, not rerun: raising `repeats` runs only the new ones.
// Lowering it reruns nothing: the cell's metrics show the first N repeats
// (see showRepeats) and the others are kept for a later raise. -force, or a
// missing checkpoint, redoes every repeat.
func (cr *cellRun) train(ctx context.Context) error {
	e := cr.cell.Exp
	tok, err := LoadTokenizer(e)
	if err != nil {
		return err
	}
	if tok.VocabSize() > e.Model.VocabSize {
		return fmt.Errorf("model.vocab_size %d is smaller than the tokenizer's vocabulary (%d): set model.vocab_size ≥ %d", e.Model.VocabSize, tok.VocabSize(), tok.VocabSize())
	}
	recs, err := cr.keptRepeats()
	if err != nil {
		return err
	}
	cr.prog.Update("preparing data")
	corpus, err := loadCorpusCtx(ctx, e, tok)
	if err != nil {
		return err
	}
	if corpus.TrainAt != nil {
		fmt.Fprintf(cr.log, "data: %s, fresh training sequences of %d to %d tokens every step, %d valid sequences of %d tokens\n", corpus.Source, corpus.MinSeqLen, corpus.SeqLen, len(corpus.Valid), corpus.SeqLen)
	} else {
		fmt.Fprintf(cr.log, "data: %s, %d train and %d valid sequences of %d tokens\n", corpus.Source, len(corpus.Train), len(corpus.Valid), corpus.SeqLen)
	}
	// The per-step stream of every repeat (metrics.jsonl, repeat numbered),
	// with the lines of the kept repeats.
	steps, err := cr.c.KeepSteps(len(recs))
	if err != nil {
		return err
	}
	defer steps.Close()
	reps := max(1, e.Repeats)
	if len(recs) > 0 {
		fmt.Fprintf(cr.log, "repeats 1–%d already done, kept\n", len(recs))
		if tp, ok := cr.prog.(*termProgress); ok {
			tp.skipSteps(int64(min(len(recs), reps)) * int64(e.Train.Steps))
		}
	}
	for _, r := range recs {
		for k, v := range r.Metrics {
			cr.metrics.Samples[k] = append(cr.metrics.Samples[k], float64(v))
		}
	}
	var runErr error
	for rep := len(recs); rep < reps && runErr == nil; rep++ {
		steps.SetRepeat(rep + 1)
		var tr TrainResult
		tr, runErr = cr.trainRepeat(ctx, rep, reps, corpus, padID(tok), steps.Write)
		if runErr == nil {
			r := results.RepeatRecord{Repeat: rep + 1, Seed: e.Seed + int64(rep), Metrics: map[string]results.Num{}}
			for k, v := range tr {
				r.Metrics[k] = results.Num(v)
			}
			recs = append(recs, r)
			runErr = cr.c.SaveRepeats(recs)
		}
	}
	for k, v := range cr.metrics.Samples {
		cr.metrics.Values[k] = median(v)
	}
	if max(reps, len(recs)) == 1 {
		cr.metrics.Samples = nil
	}
	if runErr != nil {
		return runErr
	}
	if err := steps.Close(); err != nil {
		return fmt.Errorf("%s: %w", results.StepsFile, err)
	}
	return evalAfterTrain(ctx, e, cr.st.Map, cr.st.PIDs, cr.c.Dir, &cr.metrics, cr.log, cr.prog)
}

// keptRepeats returns the repeats of this cell an earlier run finished, to be
// kept; none with -force or when the checkpoint (repeat 1's parameters) is
// missing, and the record is then removed.
func (cr *cellRun) keptRepeats() ([]results.RepeatRecord, error) {
	recs, err := cr.c.Repeats()
	if err != nil {
		fmt.Fprintf(cr.log, "redoing every repeat: %v\n", err)
		recs = nil
	}
	if cr.cell.Exp.Train.Steps > 0 {
		if _, err := os.Stat(filepath.Join(cr.c.Dir, results.CheckpointFile)); err != nil {
			recs = nil
		}
	}
	if cr.o.Force {
		recs = nil
	}
	if recs == nil {
		return nil, cr.c.SaveRepeats(nil)
	}
	return recs, nil
}

// trainRepeat trains and evaluates one repeat and adds its metrics to the
// samples; the first repeat's trained parameters are the cell's checkpoint.
func (cr *cellRun) trainRepeat(ctx context.Context, rep, reps int, corpus *data.Corpus, pad int64, steps StepSink) (TrainResult, error) {
	e := cr.cell.Exp
	re := *e
	re.Data.Seed = e.DataSeed() // the repeats share the cell's data
	re.Seed = e.Seed + int64(rep)
	m, err := BuildModel(ctx, &re, cr.st.Map)
	if err != nil {
		return nil, err
	}
	if rep == 0 {
		for _, l := range m.Describe() {
			fmt.Fprintln(cr.log, l)
		}
	}
	if reps > 1 {
		fmt.Fprintf(cr.log, "repeat %d/%d (seed %d)\n", rep+1, reps, re.Seed)
	}
	tp, _ := cr.prog.(*termProgress)
	tp.repeat(rep+1, reps, e.Train.Steps)
	sink := func(r results.StepRecord) error {
		tp.stepDone(r.Step)
		return steps(r)
	}
	tr, err := TrainEvalSteps(ctx, &re, m, corpus, pad, uint64(re.Seed), cr.log, cr.prog, sink)
	for k, v := range tr {
		cr.metrics.Samples[k] = append(cr.metrics.Samples[k], v)
	}
	if err == nil && rep == 0 && e.Train.Steps > 0 {
		// The trained parameters, under PyTorch's state_dict names. A cell
		// without its checkpoint is not done: generate needs it.
		if err := m.SaveCheckpoint(filepath.Join(cr.c.Dir, results.CheckpointFile), map[string]string{"experiment": cr.expName, "cell": cr.c.ID}); err != nil {
			return tr, fmt.Errorf("saving the trained parameters: %w", err)
		}
	}
	return tr, err
}

// bench measures the model at the experiment's bench lengths.
func (cr *cellRun) bench(ctx context.Context) error {
	e := cr.cell.Exp
	m, err := BuildModel(ctx, e, cr.st.Map)
	if err != nil {
		return err
	}
	rows, err := Bench(ctx, m, BenchOptions{Lengths: e.Bench.Lengths, Batch: e.Bench.Batch, Modes: e.Bench.Modes,
		Warmup: e.Bench.Warmup, Repeats: e.Bench.Repeats, ChunkSize: e.Run.ChunkSize, Seed: uint64(e.Seed), PIDs: cr.st.PIDs, Progress: cr.prog,
		Estimate: func(mode string, l int) int64 { return BenchEstimate(e, cr.descs, mode, l).Total }})
	cr.metrics.Bench = rows
	for _, b := range rows {
		fmt.Fprintf(cr.log, "bench %s %d tokens: median %.3fs (spread %.3fs) %.0f tok/s peak %.2f GB (estimate %.2f GB)\n", b.Mode, b.SeqLen, b.MedianS, b.SpreadS, b.TokensPerS, b.PeakMemGB, b.EstMemGB)
	}
	return err
}
