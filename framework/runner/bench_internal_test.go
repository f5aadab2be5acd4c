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
