package runner

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"liquidlab/framework/config"
)

// runProgress follows a whole run for its progress lines: which cells are
// running, at which repeat and step, and the training steps done so far over
// all cells, from which the experiment-wide ETA is estimated. On a terminal
// (term) each cell rewrites one status line; elsewhere a plain line goes to
// out every `every` (run.progress_every), so a cluster log shows life.
type runProgress struct {
	term  io.Writer   // nil when not a terminal
	out   io.Writer   // heartbeat lines when term is nil
	outMu *sync.Mutex // guards writes to term and out (shared with the cell lines)
	cells int
	start time.Time
	now   func() time.Time

	planned []int64 // training steps of each cell

	mu       sync.Mutex
	total    int64 // training steps this run is expected to do
	done     int64 // training steps done
	finished int   // cells finished (done, skipped or failed)
	active   map[int]*termProgress

	stopOnce sync.Once
	stopc    chan struct{}
	stopped  chan struct{}
}

// newRunProgress starts following a run of cells; every > 0 starts the
// heartbeat when term is nil. stop ends it.
func newRunProgress(term, out io.Writer, outMu *sync.Mutex, cells []config.Cell, train bool, every time.Duration) *runProgress {
	p := &runProgress{term: term, out: out, outMu: outMu, cells: len(cells), start: time.Now(), now: time.Now,
		active: map[int]*termProgress{}, stopc: make(chan struct{}), stopped: make(chan struct{})}
	p.planned = make([]int64, len(cells))
	if train {
		for i, c := range cells {
			p.planned[i] = plannedSteps(c.Exp)
			p.total += p.planned[i]
		}
	}
	if term != nil || out == nil || every <= 0 {
		close(p.stopped)
		return p
	}
	go p.heartbeat(every)
	return p
}

// plannedSteps is the number of training steps a cell takes when none of its
// repeats are done.
func plannedSteps(e *config.Experiment) int64 {
	return int64(max(1, e.Repeats)) * int64(max(0, e.Train.Steps))
}

func (p *runProgress) heartbeat(every time.Duration) {
	defer close(p.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.stopc:
			return
		case <-t.C:
			line := p.line()
			p.outMu.Lock()
			fmt.Fprintln(p.out, line)
			p.outMu.Unlock()
		}
	}
}

// stop ends the heartbeat and waits for it.
func (p *runProgress) stop() {
	p.stopOnce.Do(func() { close(p.stopc) })
	<-p.stopped
}

// cell returns the progress of cell i (0-based).
func (p *runProgress) cell(i int) *termProgress {
	c := &termProgress{run: p, index: i, planned: p.planned[i]}
	p.mu.Lock()
	p.active[i] = c
	p.mu.Unlock()
	return c
}

// line is the heartbeat: the running cells, then the run's totals and ETA.
func (p *runProgress) line() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	idx := make([]int, 0, len(p.active))
	for i := range p.active {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	var parts []string
	for _, i := range idx {
		c := p.active[i]
		s := fmt.Sprintf("cell %d/%d", i+1, p.cells)
		if c.reps > 1 {
			s += fmt.Sprintf(" repeat %d/%d", c.rep, c.reps)
		}
		if c.steps > 0 {
			s += fmt.Sprintf(" step %d/%d", c.step, c.steps)
		} else if c.msg != "" {
			s += " " + c.msg
		}
		parts = append(parts, s)
	}
	el := p.now().Sub(p.start)
	head := fmt.Sprintf("progress: %d/%d cells finished", p.finished, p.cells)
	if len(parts) > 0 {
		head += "; running " + strings.Join(parts, ", ")
	}
	return head + "; " + p.totalsLocked(el)
}

// totalsLocked is "N/M steps, elapsed E, ETA T" (ETA once anything is done).
func (p *runProgress) totalsLocked(el time.Duration) string {
	var s string
	eta := time.Duration(-1)
	switch {
	case p.total > 0:
		s = fmt.Sprintf("%d/%d steps, elapsed %s", p.done, p.total, el.Round(time.Second))
		if p.done > 0 {
			eta = time.Duration(float64(el) / float64(p.done) * float64(p.total-p.done))
		}
	default:
		s = fmt.Sprintf("elapsed %s", el.Round(time.Second))
		if p.finished > 0 {
			eta = time.Duration(float64(el) / float64(p.finished) * float64(p.cells-p.finished))
		}
	}
	if eta >= 0 {
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s
}

// termProgress is one cell's progress: it rewrites the cell's status line on
// a terminal (with the repeat and the experiment-wide ETA) and records where
// the cell is for the heartbeat.
type termProgress struct {
	run   *runProgress
	index int

	// guarded by run.mu
	rep, reps   int
	step, steps int
	msg         string
	cellDone    int64 // training steps this cell did
	planned     int64 // training steps counted for it in run.total
	last        time.Time
	shown       bool
}

// Update sets the cell's status message and shows it on a terminal.
func (p *termProgress) Update(format string, args ...any) {
	r := p.run
	r.mu.Lock()
	p.msg = fmt.Sprintf(format, args...)
	if r.term == nil || time.Since(p.last) < 200*time.Millisecond {
		r.mu.Unlock()
		return
	}
	p.last = time.Now()
	prefix := fmt.Sprintf("[cell %d/%d", p.index+1, r.cells)
	if p.reps > 1 {
		prefix += fmt.Sprintf(" repeat %d/%d", p.rep, p.reps)
	}
	line := prefix + "] " + p.msg + " | experiment " + r.totalsLocked(time.Since(r.start))
	p.shown = true
	r.mu.Unlock()
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.term, "\r\033[K%s", line)
}

// repeat says the cell starts repeat rep of reps, of steps training steps.
// Like skipSteps and stepDone, it does nothing on a nil *termProgress.
func (p *termProgress) repeat(rep, reps, steps int) {
	if p == nil {
		return
	}
	r := p.run
	r.mu.Lock()
	defer r.mu.Unlock()
	p.rep, p.reps, p.step, p.steps = rep, reps, 0, steps
}

// skipSteps takes n training steps this cell will not do (repeats already
// done) out of the run's total.
func (p *termProgress) skipSteps(n int64) {
	if p == nil {
		return
	}
	r := p.run
	r.mu.Lock()
	defer r.mu.Unlock()
	p.planned -= n
	r.total -= n
}

// stepDone records that the cell finished training step step of its repeat.
func (p *termProgress) stepDone(step int) {
	if p == nil {
		return
	}
	r := p.run
	r.mu.Lock()
	defer r.mu.Unlock()
	p.step = step
	p.cellDone++
	r.done++
}

// done ends the cell: its status line is cleared and the steps it was
// counted for but did not do (skipped, failed) leave the run's total.
func (p *termProgress) done() {
	r := p.run
	r.mu.Lock()
	delete(r.active, p.index)
	r.finished++
	if rest := p.planned - p.cellDone; rest > 0 {
		r.total -= rest
	}
	shown := p.shown
	r.mu.Unlock()
	if r.term != nil && shown {
		r.outMu.Lock()
		fmt.Fprint(r.term, "\r\033[K")
		r.outMu.Unlock()
	}
}
