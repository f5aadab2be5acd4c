package realnvp

import (
	"fmt"
	"testing"

	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit over flow counts
// and both ways of taking z.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		K    int
		opts []string
	}{{0, nil}, {1, nil}, {3, nil}, {2, []string{"z_from", "first"}}} {
		t.Run(fmt.Sprint(c.K, c.opts), func(t *testing.T) {
			cfg := testConfig(6, 4, 5, c.K, c.opts...)
			stagetest.Run(t, New(), stagetest.Config{
				Dims: cfg.Dims, Options: cfg.Options, B: 2, S: 3,
				Settings: stagetest.Settings{Step: 3e-4, ATol: 2e-3, RTol: 1e-2, Probes: 3},
			})
		})
	}
}
