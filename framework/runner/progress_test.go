package runner

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"liquidlab/framework/config"
)

func progressCells(t *testing.T, n, repeats, steps int) []config.Cell {
	t.Helper()
	cells := make([]config.Cell, n)
	for i := range cells {
		e := config.Default()
		e.Repeats, e.Train.Steps = repeats, steps
		cells[i] = config.Cell{Index: i, Exp: e}
	}
	return cells
}

// The terminal line names the cell, the repeat and the experiment-wide ETA,
// estimated from the steps done over all cells and the time taken.
func TestTermProgressLine(t *testing.T) {
	var term bytes.Buffer
	var mu sync.Mutex
	p := newRunProgress(&term, nil, &mu, progressCells(t, 2, 3, 10), true, time.Second)
	defer p.stop()
	clock := p.start
	p.now = func() time.Time { return clock }
	c := p.cell(1)
	c.repeat(1, 3, 10)
	for s := 1; s <= 10; s++ {
		c.stepDone(s)
	}
	c.repeat(2, 3, 10)
	for s := 1; s <= 5; s++ {
		c.stepDone(s)
	}
	c.Update("step %d/%d", 5, 10)
	got := term.String()
	if !strings.Contains(got, "[cell 2/2 repeat 2/3] step 5/10 | experiment 15/60 steps") {
		t.Errorf("terminal line %q: want cell 2/2, repeat 2/3 and 15/60 steps", got)
	}
	clock = clock.Add(30 * time.Second)
	if line := p.line(); !strings.Contains(line, "15/60 steps, elapsed 30s, ETA 1m30s") ||
		!strings.Contains(line, "running cell 2/2 repeat 2/3 step 5/10") {
		t.Errorf("progress line %q: want 15/60 steps, elapsed 30s, ETA 1m30s", line)
	}
	// A skipped cell leaves the total; a cell that skips a done repeat too.
	p.cell(0).done()
	c.skipSteps(10)
	c.done()
	if line := p.line(); !strings.Contains(line, "2/2 cells finished; 15/15 steps") {
		t.Errorf("after the cells: %q, want 2/2 cells finished and 15/15 steps", line)
	}
}

// Without a terminal, a plain line every progress_every shows the run is alive.
func TestHeartbeat(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	p := newRunProgress(nil, &out, &mu, progressCells(t, 1, 1, 4), true, 5*time.Millisecond)
	c := p.cell(0)
	c.repeat(1, 1, 4)
	c.stepDone(1)
	c.Update("step 1/4 loss 1.0")
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := strings.Count(out.String(), "progress: ")
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.stop()
	got := out.String()
	if strings.Count(got, "progress: ") < 2 || !strings.Contains(got, "progress: 0/1 cells finished; running cell 1/1 step 1/4; 1/4 steps") {
		t.Errorf("heartbeat output %q: want repeated lines naming cell 1/1 at step 1/4", got)
	}
	if strings.Contains(got, "\r") {
		t.Errorf("heartbeat output %q has terminal control characters", got)
	}
	n := len(got)
	time.Sleep(20 * time.Millisecond)
	if len(out.String()) != n {
		t.Error("heartbeat goes on after stop")
	}
}

// run.progress_every = 0 turns the heartbeat off; a terminal has none either.
func TestHeartbeatOff(t *testing.T) {
	var out, term bytes.Buffer
	var mu sync.Mutex
	for _, p := range []*runProgress{
		newRunProgress(nil, &out, &mu, progressCells(t, 1, 1, 4), true, 0),
		newRunProgress(&term, &out, &mu, progressCells(t, 1, 1, 4), true, time.Millisecond),
	} {
		time.Sleep(10 * time.Millisecond)
		p.stop()
	}
	if out.Len() != 0 {
		t.Errorf("heartbeat printed %q", out.String())
	}
}
