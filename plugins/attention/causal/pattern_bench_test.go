package causal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// benchOptions are the cost-curve settings of every pattern: B = 1,
// hidden 256, 4 heads, window 256 (dilated: 64 keys × 4; global: 16 + 256;
// bigbird: blocks of 64, 3 window + 1 global + 2 random; lsh: 2 hashes, 16
// buckets, chunks of 64).
var benchOptions = map[string]map[string]string{
	Full:    {"pattern": Full},
	Window:  {"pattern": Window, "window": "256"},
	Dilated: {"pattern": Dilated, "window": "64", "dilation": "4"},
	Global:  {"pattern": Global, "window": "256", "global": "16"},
	BigBird: {"pattern": BigBird, "block": "64", "window_blocks": "3", "global_blocks": "1", "random_blocks": "2"},
	LSH:     {"pattern": LSH, "n_hashes": "2", "buckets": "16", "chunk": "64"},
	Linear:  {"pattern": Linear},
}

// BenchmarkPattern runs forward + backward of one chunk of S tokens
// (B = 1, H = 256, 4 heads) for every pattern and reports ns/token,
// FLOPs/token (the stage's own count, Stats "flops" + "flops_backward") and
// GFLOP/s. Lengths default to 1k, 4k; LIQUIDLAB_ATTN_LENGTHS=1024,2048,…
// and LIQUIDLAB_ATTN_PATTERNS=full,window choose others.
func BenchmarkPattern(b *testing.B) {
	lengths := []int{1024, 4096}
	if v := os.Getenv("LIQUIDLAB_ATTN_LENGTHS"); v != "" {
		lengths = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("LIQUIDLAB_ATTN_LENGTHS: %v", err)
			}
			lengths = append(lengths, n)
		}
	}
	patterns := Patterns
	if v := os.Getenv("LIQUIDLAB_ATTN_PATTERNS"); v != "" {
		patterns = strings.Split(v, ",")
	}
	const B, H = 1, 256
	for _, pat := range patterns {
		for _, S := range lengths {
			b.Run(fmt.Sprintf("%s/%d", pat, S), func(b *testing.B) {
				opts := map[string]string{"heads": "4"}
				for k, v := range benchOptions[pat] {
					opts[k] = v
				}
				cfg := stage.Config{Dims: map[string]int{"hidden_size": H}, Options: opts}
				r := rand.New(rand.NewPCG(1, 1))
				pm := randParams(b, r, cfg)
				e := tensor.From(randn(r, B*S*H, 1), B, S, H)
				dy := tensor.From(randn(r, B*S*H, 1), B, S, H)
				s := New()
				var flops float64
				for b.Loop() {
					res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: tensor.Map{"e": e}, NeedGrad: true})
					if err != nil {
						b.Fatal(err)
					}
					flops = res.Stats["flops"] + res.Stats["flops_backward"]
					if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": dy}); err != nil {
						b.Fatal(err)
					}
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1e9/float64(B*S), "ns/token")
				b.ReportMetric(flops/float64(B*S), "FLOPs/token")
				b.ReportMetric(flops/sec/1e9, "GFLOP/s")
			})
		}
	}
}
