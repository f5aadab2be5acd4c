package cfc

import (
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit with and without
// the backbone; chunked = unchunked covers the carried h and last_ts.
func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []string
	}{
		{"backbone", nil},
		{"no-backbone", []string{"backbone_layers", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(4, tc.opts...)
			stagetest.Run(t, New(), stagetest.Config{
				Dims: cfg.Dims, Options: cfg.Options, B: 2, S: 7,
				NoGrad: []string{stage.PortTimestamps},
			})
		})
	}
}
