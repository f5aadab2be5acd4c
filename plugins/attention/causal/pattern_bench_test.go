package causal

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"liquidlab/framework/num"
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

// cpuSeconds is this process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// BenchmarkPattern runs forward + backward of one chunk of S tokens
// (B = 1, H = 256, 4 heads) for every pattern and reports ns/token,
// FLOPs/token (the stage's own count, Stats "flops" + "flops_backward"),
// GFLOP/s of wall time, and GFLOP/cpu-s and cpu-ns/token (per second of
// this process's CPU time: on a loaded machine wall time measures the load,
// CPU time the work; GrowthExponent over cpu-ns/token·S gives the exponent). Lengths default to 1k, 4k; LIQUIDLAB_ATTN_LENGTHS=1024,2048,…
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
				// one untimed pass first: fresh buffers' page faults and the
				// scratch pool's growth are not the kernels' cost
				if res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: tensor.Map{"e": e}, NeedGrad: true}); err != nil {
					b.Fatal(err)
				} else if _, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": dy}); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				cpu0 := cpuSeconds()
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
				cpu := (cpuSeconds() - cpu0) / float64(b.N)
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(sec*1e9/float64(B*S), "ns/token")
				b.ReportMetric(flops/float64(B*S), "FLOPs/token")
				b.ReportMetric(flops/sec/1e9, "GFLOP/s")
				// per CPU-second of this process: what the kernels reach on the
				// cores they actually got (robust to a loaded machine)
				b.ReportMetric(flops/cpu/1e9, "GFLOP/cpu-s")
				b.ReportMetric(cpu*1e9/float64(B*S), "cpu-ns/token")
			})
		}
	}
}

// BenchmarkSgemmReference is the machine's sgemm rate on this package's
// shapes, for comparison with BenchmarkPattern's GFLOP/s and GFLOP/cpu-s: the
// projections ([4096,256]·[256,256], split over the cores by num.Gemm) and a
// score block ([64,64]·[64,320], one core).
func BenchmarkSgemmReference(b *testing.B) {
	for _, sh := range []struct{ m, n, k int }{{4096, 256, 256}, {64, 320, 64}} {
		b.Run(fmt.Sprintf("%dx%dx%d", sh.m, sh.n, sh.k), func(b *testing.B) {
			r := rand.New(rand.NewPCG(2, 2))
			x, w := randn(r, sh.m*sh.k, 1), randn(r, sh.n*sh.k, 1)
			y := make([]float32, sh.m*sh.n)
			cpu0 := cpuSeconds()
			for b.Loop() {
				num.Gemm(false, true, sh.m, sh.n, sh.k, 1, x, sh.k, w, sh.k, 0, y, sh.n)
			}
			fl := 2 * float64(sh.m*sh.n*sh.k) * float64(b.N)
			b.ReportMetric(fl/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(fl/(cpuSeconds()-cpu0)/1e9, "GFLOP/cpu-s")
		})
	}
}
