package main

import (
	"context"
	"fmt"
	"io"

	"liquidlab/framework/config"
	"liquidlab/framework/runner"
)

// printMemoryEstimates writes each cell's estimated peak memory (the memory
// budget, runner.EstimateMemory) and the limit a run would hold it to, without
// allocating a model: the components only describe themselves.
func printMemoryEstimates(ctx context.Context, w io.Writer, exp *config.Experiment, cells []config.Cell, r *runner.Runner) error {
	limit, from := runner.MemoryLimit(exp)
	if limit > 0 {
		fmt.Fprintf(w, "\nmemory estimate per cell (limit %s: %s):\n", runner.FormatBytes(limit), from)
	} else {
		fmt.Fprintf(w, "\nmemory estimate per cell (no limit known):\n")
	}
	for _, c := range cells {
		descs, err := r.Launcher.Descriptions(ctx, c.Exp, r.Launcher.Describer(ctx, c.Exp))
		if err != nil {
			return fmt.Errorf("cell %d: %w", c.Index, err)
		}
		ph := runner.Phases{Train: true, Bench: len(c.Exp.Bench.Lengths) > 0}
		peak, _ := runner.EstimateMemory(c.Exp, descs, ph)
		verdict := ""
		if limit > 0 && peak.Total > limit {
			verdict = "  REFUSED: more than the limit"
		}
		fmt.Fprintf(w, "  cell %d: %s%s\n", c.Index, peak, verdict)
	}
	return nil
}
