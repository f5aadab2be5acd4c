package scan

import (
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit in both step modes;
// chunked = unchunked covers the carried h and last_ts. No gradient flows to
// the timestamps (doc.go), and in constant mode they may be absent.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     []string
		optional []string
	}{
		{"timestamps", nil, nil},
		{"constant", []string{"dt_mode", ModeConstant, "dt_const", "0.7"}, []string{stage.PortTimestamps}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(4, tc.opts...)
			stagetest.Run(t, New(), stagetest.Config{
				Dims: cfg.Dims, Options: cfg.Options, B: 2, S: 7,
				NoGrad:   []string{stage.PortTimestamps},
				Optional: tc.optional,
			})
		})
	}
}
