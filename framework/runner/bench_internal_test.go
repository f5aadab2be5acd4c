package runner

import (
	"testing"

	"liquidlab/framework/model"
)

// TestStepNote: the bench's wall-time-by-step note lists the model's step
// timers longest first (ties by name) and ignores other statistics.
func TestStepNote(t *testing.T) {
	st := map[string]float64{
		model.StepSeconds + "flows": 0.031, model.StepSeconds + "head": 0.2,
		model.StepSeconds + "ode": 0.031, model.StepSeconds + "embed": 0,
		"ode.nfe": 14, statHeadS: 0.19,
	}
	if got, want := stepNote(st), "head 0.200 s, flows 0.031 s, ode 0.031 s"; got != want {
		t.Errorf("stepNote = %q, want %q", got, want)
	}
	if got := stepNote(map[string]float64{"ode.nfe": 14}); got != "" {
		t.Errorf("stepNote without timers = %q, want empty", got)
	}
}

// TestMedianStats: the bench's step times are per-key medians over the runs;
// a key a run lacks counts as 0 there.
func TestMedianStats(t *testing.T) {
	runs := []map[string]float64{
		{"head": 0.30, "ode": 0.02},
		{"head": 0.20, "ode": 0.04, "liquid": 0.01},
		{"head": 0.25, "ode": 0.03},
		{"head": 0.21, "ode": 0.05},
	}
	got := medianStats(runs)
	want := map[string]float64{"head": 0.23, "ode": 0.035, "liquid": 0}
	if len(got) != len(want) {
		t.Fatalf("medianStats = %v, want %v", got, want)
	}
	for k, w := range want {
		if g := got[k]; g < w-1e-12 || g > w+1e-12 {
			t.Errorf("medianStats[%q] = %v, want %v", k, g, w)
		}
	}
	if got := medianStats(nil); len(got) != 0 {
		t.Errorf("medianStats(nil) = %v, want empty", got)
	}
}
