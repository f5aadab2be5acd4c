package ltc

import (
	"testing"

	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit with a fixed-step
// method and with dopri5. Backward holds dopri5's step sizes constant while
// finite differences see them move, so dopri5 runs at tolerance 1e-6 with the
// looser check of TestStageGradients (0 failures in 30 seeds tried; at 1e-5,
// 5 in 30).
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		method, tol string
		fd          stagetest.Settings
	}{
		{"rk4", "", stagetest.Settings{Step: 1e-3, ATol: 1e-3, RTol: 1e-2}},
		{"dopri5", "1e-6", stagetest.Settings{Step: 3e-3, ATol: 5e-3, RTol: 5e-2}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			cfg := testConfig(4, tc.method)
			if tc.tol != "" {
				cfg.Options["rtol"], cfg.Options["atol"] = tc.tol, tc.tol
			}
			stagetest.Run(t, New(), stagetest.Config{Dims: cfg.Dims, Options: cfg.Options, B: 2, Settings: tc.fd})
		})
	}
}
