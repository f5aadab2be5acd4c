package coupling

import (
	"fmt"
	"testing"

	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit over shared and
// unshared nets, the seed's and the exact log-determinant, with and without
// the extra residual (L = D/2).
func TestConformance(t *testing.T) {
	for _, c := range []tcase{
		{L: 4, K: 0, share: true}, {L: 3, K: 1, share: false, exact: true},
		{L: 4, K: 3, share: true}, {L: 5, K: 2, share: false},
	} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			cfg := testConfig(tD, c.L, tF, c.K, c.share, c.exact)
			s := New()
			stagetest.Run(t, s, stagetest.Config{
				Dims: cfg.Dims, Options: cfg.Options, B: 2, S: 3,
				Live:     s.handles.Len,
				Settings: stagetest.Settings{Step: 3e-4, ATol: 2e-3, RTol: 1e-2, Probes: 3},
			})
		})
	}
}
