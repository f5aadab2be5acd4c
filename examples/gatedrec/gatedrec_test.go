package gatedrec

import (
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's kit: errors for bad input,
// gradients by finite differences, chunked = unchunked through the carried h,
// at tiny sizes and at the quickstart's hidden size.
func TestConformance(t *testing.T) {
	for _, sz := range []struct{ H, B, S int }{{4, 2, 7}, {3, 1, 5}, {32, 2, 16}} {
		stagetest.Run(t, New(), stagetest.Config{
			Dims: map[string]int{"hidden_size": sz.H}, B: sz.B, S: sz.S, Seed: 3,
			NoGrad: []string{stage.PortTimestamps},
		})
	}
}
