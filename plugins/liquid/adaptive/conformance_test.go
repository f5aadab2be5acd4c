package adaptive

import (
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit with fixed-step
// solvers over short constant steps (Δ = 0.3: over the long horizons of
// random timestamps the dynamics are too nonlinear for finite differences,
// see TestGradients) and the parameters of the package's own tests.
func TestConformance(t *testing.T) {
	for _, m := range []string{"euler", "rk4"} {
		t.Run(m, func(t *testing.T) {
			cfg := testConfig(4, "method", m, OptDtMode, ModeConstant, OptDtConst, "0.3")
			stagetest.Run(t, New(), stagetest.Config{
				Dims: cfg.Dims, Options: cfg.Options, B: 2, S: 7,
				Params:   testParams(t, rand.New(rand.NewPCG(7, 8)), 4),
				NoGrad:   []string{stage.PortTimestamps},
				Optional: []string{stage.PortTimestamps},
			})
		})
	}
}
