package causal

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestGrowingCacheInPlace: for a batch of one row, the growing patterns
// append each chunk's keys and values to the cache they returned before
// (the state's buffer is reused while it has room), and yet no state handed
// out is ever changed: a second forward from the same state (a retried or
// forked stream) copies, and a state whose buffer the stage did not allocate
// is never written past its length.
func TestGrowingCacheInPlace(t *testing.T) {
	for _, pattern := range []string{"full", "lsh"} {
		t.Run(pattern, func(t *testing.T) {
			r := rand.New(rand.NewPCG(9, 1))
			H, S := 6, 16
			cfg := patternConfig(H, map[string]string{"pattern": pattern, "heads": "2", "n_hashes": "2", "buckets": "2", "chunk": "2"})
			pm := randParams(t, r, cfg)
			e := tensor.From(randn(r, S*H, 1), 1, S, H)
			e2 := tensor.From(randn(r, S*H, 1), 1, S, H)
			s := New()
			fwd := func(s *Stage, e *tensor.Tensor, lo, hi int, st tensor.Map) *stage.ForwardResult {
				t.Helper()
				res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, lo, hi), State: st})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			snap := func(st tensor.Map) [2][]float32 {
				return [2][]float32{append([]float32(nil), st["k_cache"].Data...), append([]float32(nil), st["v_cache"].Data...)}
			}
			same := func(a, b []float32) bool { return &a[0] == &b[0] }

			r1 := fwd(s, e, 0, 5, nil) // 5 rows, room for 8
			s1 := snap(r1.State)
			r2 := fwd(s, e, 5, 8, r1.State)
			if !same(r2.State["k_cache"].Data, r1.State["k_cache"].Data) || !same(r2.State["v_cache"].Data, r1.State["v_cache"].Data) {
				t.Error("chunk 2's cache is a new buffer, want chunk 1's extended in place")
			}
			s2 := snap(r2.State)

			// A fork from state 1 with other tokens: must not touch state 2.
			rf := fwd(s, e2, 5, 8, r1.State)
			if same(rf.State["k_cache"].Data, r2.State["k_cache"].Data) {
				t.Error("a second forward from state 1 reused the buffer state 2 extends")
			}
			if got := snap(r2.State); !equal(got[0], s2[0]) || !equal(got[1], s2[1]) {
				t.Error("a forward from state 1 changed state 2")
			}
			if got := snap(r1.State); !equal(got[0], s1[0]) || !equal(got[1], s1[1]) {
				t.Error("forwards from state 1 changed it")
			}
			// The fork equals a fresh stage's forward from a copy of state 1.
			cp := tensor.Map{}
			for k, v := range r1.State {
				cp[k] = tensor.From(append([]float32(nil), v.Data...), v.Shape...)
			}
			want := fwd(New(), e2, 5, 8, cp)
			if !equal(rf.Outputs["y"].Data, want.Outputs["y"].Data) || !equal(rf.State["k_cache"].Data, want.State["k_cache"].Data) {
				t.Error("the fork's outputs or state differ from a fresh stage's")
			}

			// Continuing from state 2 past its room (8 rows) moves to a new
			// buffer, and the result equals the unchunked pass.
			r3 := fwd(s, e, 8, S, r2.State)
			if same(r3.State["k_cache"].Data, r2.State["k_cache"].Data) {
				t.Error("16 rows in a buffer of 8")
			}
			whole := fwd(New(), e, 0, S, nil)
			var y []float32
			for _, rr := range []*stage.ForwardResult{r1, r2, r3} {
				y = append(y, rr.Outputs["y"].Data...)
			}
			if d := maxAbsDiff(y, whole.Outputs["y"].Data); d > 1e-5 {
				t.Errorf("chunked in place vs whole: max diff %.2e", d)
			}

			// A state in a buffer the stage did not allocate, with spare
			// room after it: the room is left alone.
			foreign := tensor.Map{}
			for k, v := range r1.State {
				buf := make([]float32, len(v.Data), len(v.Data)+8*H)
				copy(buf, v.Data)
				for i := len(v.Data); i < cap(buf); i++ {
					buf[:cap(buf)][i] = 42
				}
				foreign[k] = tensor.From(buf, v.Shape...)
			}
			fwd(s, e, 5, 8, foreign)
			for _, k := range []string{"k_cache", "v_cache"} {
				d := foreign[k].Data
				for _, x := range d[len(d):cap(d)] {
					if x != 42 {
						t.Fatalf("%s: the stage wrote past the length of a state it did not allocate", k)
					}
				}
			}
		})
	}
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		d := float64(a[i] - b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}
