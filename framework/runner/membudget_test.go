package runner_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/config"
	"liquidlab/framework/registry"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
	"liquidlab/framework/stage"
)

// A cell whose estimated peak exceeds run.max_memory is refused before it
// allocates a model: it fails with the estimate and the limit, trains no step
// and writes no checkpoint; a generous limit lets the same cells run.
func TestMemoryBudgetRefuses(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir(), `run.max_memory="1MiB"`)
	oc := ev.run(t, faultNone, train)
	for impl, c := range oc {
		var be *runner.BudgetError
		if !errors.As(c.Err, &be) {
			t.Fatalf("%s: err %v, want a BudgetError", impl, c.Err)
		}
		msg := c.Err.Error()
		for _, want := range []string{"estimated peak is", "more than 1 MiB", `run.max_memory = "1MiB"`, "host process"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: message lacks %q: %s", impl, want, msg)
			}
		}
		if be.Estimate.Total <= 1<<20 || be.Limit != 1<<20 {
			t.Errorf("%s: estimate %d, limit %d", impl, be.Estimate.Total, be.Limit)
		}
		if s := status(t, c); s != results.StatusFailed {
			t.Errorf("%s: status %q, want failed", impl, s)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, results.CheckpointFile)); err == nil {
			t.Errorf("%s: a refused cell wrote a checkpoint", impl)
		}
		if b, _ := os.ReadFile(filepath.Join(c.Dir, results.StepsFile)); len(b) > 0 {
			t.Errorf("%s: a refused cell trained: %s", impl, b)
		}
	}
	ev = newEnv(t, tinyExperiment, t.TempDir(), `run.max_memory="20GiB"`)
	for impl, c := range ev.run(t, faultNone, train) {
		if c.Err != nil {
			t.Errorf("%s with a generous limit: %v", impl, c.Err)
		}
		b, _ := os.ReadFile(filepath.Join(c.Dir, results.LogFile))
		if !strings.Contains(string(b), "memory estimate: ") {
			t.Errorf("%s: the log does not give the estimate:\n%s", impl, b)
		}
	}
}

// descsOf describes an experiment's stages with the test registry.
func descsOf(t *testing.T, e *config.Experiment) map[string]*stage.Description {
	t.Helper()
	reg, err := registry.FromList(testComponents)
	if err != nil {
		t.Fatal(err)
	}
	l := &runner.Launcher{Registry: reg}
	d, err := l.Descriptions(context.Background(), e, nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The estimate grows where the memory does: training above the forward pass,
// with the batch and the chunk, and not with the length once chunked; a stage
// without a hint gets the generic formula, not nothing.
func TestMemoryEstimateShape(t *testing.T) {
	e := config.Default()
	e.Run.ChunkSize = 1024
	e.Bench.Batch = 1
	descs := descsOf(t, e)
	est := func(mode string, l int) int64 { return runner.BenchEstimate(e, descs, mode, l).Total }
	if f, tr := est("forward", 4096), est("train", 4096); tr <= f {
		t.Errorf("train %d ≤ forward %d", tr, f)
	}
	if a, b := est("train", 4096), est("train", 32768); float64(b) > 1.1*float64(a) {
		t.Errorf("chunked by 1024, 32k tokens estimated at %d, 4k at %d: the chunk, not the length, should count", b, a)
	}
	e.Bench.Batch = 8
	if a := est("train", 4096); a <= est("forward", 4096) {
		t.Errorf("batch 8: train %d", a)
	}
	withHint := est("train", 4096)
	bare := map[string]*stage.Description{}
	for k, d := range descs {
		dd := *d
		dd.Memory = nil
		bare[k] = &dd
	}
	if g := runner.BenchEstimate(e, bare, "train", 4096).Total; g <= 0 || g == withHint {
		t.Errorf("without hints: %d (with: %d)", g, withHint)
	}
	// A stage whose state grows with the sequence (full attention's cache).
	grow := map[string]*stage.Description{}
	for k, d := range descs {
		grow[k] = d
	}
	att := *descs[stage.KindAttention]
	att.Memory = &stage.MemoryHint{State: int64(2 * e.Model.HiddenSize)}
	grow[stage.KindAttention] = &att
	a, b := runner.BenchEstimate(e, grow, "forward", 4096).Total, runner.BenchEstimate(e, grow, "forward", 32768).Total
	if want := int64(8*(32768-4096)*2*e.Model.HiddenSize) * 4; b-a < want {
		t.Errorf("a growing state: 32k − 4k = %d bytes, want ≥ %d", b-a, want)
	}
}

// The seed's configuration trains within a few GiB, and a batch of 16,384
// sequences of 1,024 tokens (allowed by the size limits) is estimated far
// above any machine's memory, so it is refused, not attempted.
func TestMemoryEstimateHostile(t *testing.T) {
	e := config.Default()
	descs := descsOf(t, e)
	peak, _ := runner.EstimateMemory(e, descs, runner.Phases{Train: true})
	if peak.Total < 100<<20 || peak.Total > 16<<30 {
		t.Errorf("the seed's configuration: %s", peak)
	}
	e.Train.Batch, e.Data.SeqLen = 16384, 1024
	peak, _ = runner.EstimateMemory(e, descs, runner.Phases{Train: true})
	if peak.Total < 1<<40 {
		t.Errorf("16384×1024 tokens a step: %s", peak)
	}
	e.Run.MaxMemory = "1TiB"
	if _, err := runner.CheckMemory(e, descs, runner.Phases{Train: true}); err == nil {
		t.Error("no refusal")
	}
}

// A hostile hint or parameter shape (a plugin's description) cannot overflow
// the estimate into a small or negative number: it is refused.
func TestMemoryEstimateSaturates(t *testing.T) {
	e := config.Default()
	e.Train.Batch, e.Data.SeqLen = 16384, 1024
	descs := descsOf(t, e)
	att := *descs[stage.KindAttention]
	att.Memory = &stage.MemoryHint{Saved: 1 << 62, Work: 1 << 62, State: 1 << 62, Row: 1 << 62}
	att.Params = append(append([]stage.ParamSpec(nil), att.Params...), stage.ParamSpec{Name: "huge", Shape: []int{1 << 62, 1 << 62}})
	descs[stage.KindAttention] = &att
	peak, _ := runner.EstimateMemory(e, descs, runner.Phases{Train: true})
	if peak.Total < 1<<50 {
		t.Fatalf("hostile hint: %s", peak)
	}
	e.Run.MaxMemory = "1TiB"
	if _, err := runner.CheckMemory(e, descs, runner.Phases{Train: true}); err == nil {
		t.Error("not refused")
	}
}
