package causal

import (
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit with windows
// shorter and longer than the chunks. "timestamps" and "h" are accepted and
// ignored (doc.go): they may be absent and have no gradient, which the kit
// checks by finite differences.
func TestConformance(t *testing.T) {
	for _, window := range []string{"1", "3", "16"} {
		t.Run("window="+window, func(t *testing.T) {
			stagetest.Run(t, New(), stagetest.Config{
				Dims:    map[string]int{"hidden_size": 4},
				Options: map[string]string{"window": window},
				B:       2, S: 8,
				Optional: []string{stage.PortTimestamps, stage.PortH},
			})
		})
	}
}
