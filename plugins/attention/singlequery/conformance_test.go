package singlequery

import (
	"testing"

	"liquidlab/framework/stage/stagetest"
)

// TestConformance runs the stage contract's conformance kit for every pattern,
// with windows, strides and global parts smaller than the sequence so chunks
// cross them. Output "w" is normalised with the state after each chunk, and
// "score" is −Inf where a position is unselected as of its chunk's end (doc.go),
// so "w" is never and "score" only without a window compared with the one-chunk
// pass; "c" always is.
func TestConformance(t *testing.T) {
	for _, pattern := range Patterns {
		t.Run(pattern, func(t *testing.T) {
			exempt := map[string]string{"w": "normalised with the state after each chunk, exact for one chunk only"}
			if pattern == "window" || pattern == "global_window" {
				exempt["score"] = "−Inf where unselected as of each chunk's end, and the window moves on"
			}
			stagetest.Run(t, New(), stagetest.Config{
				Dims:    map[string]int{"hidden_size": 4},
				Options: map[string]string{"pattern": pattern, "window": "3", "stride": "2", "global": "2"},
				B:       2, S: 8,
				ChunkExempt: exempt,
			})
		})
	}
}
