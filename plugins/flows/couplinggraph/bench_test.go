package couplinggraph

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/flows/coupling"
)

// BenchmarkVsFused times coupling-graph against the fused coupling stage,
// forward and forward+backward, at the quickstart's size (D=64, L=16, F=32,
// K=4, batch 8 × 128 tokens) and the seed's (D=512, L=128, F=128, K=4, 4096
// tokens, as coupling's own benchmarks):
//
//	nice -n 10 go test -run '^$' -bench VsFused -benchtime 20x ./plugins/flows/couplinggraph/
func BenchmarkVsFused(b *testing.B) {
	for _, size := range []struct {
		name string
		c    tcase
	}{
		{"quickstart", tcase{D: 64, L: 16, F: 32, K: 4, share: true, B: 8, S: 128}},
		{"seed", tcase{D: 512, L: 128, F: 128, K: 4, share: true, B: 1, S: 4096}},
	} {
		c := size.c
		cfg := c.config()
		rng := rand.New(rand.NewPCG(11, 11))
		var p tensor.Map
		x := tensor.From(stagetest.Randn(rng, c.B*c.S*c.D, 1), c.B, c.S, c.D)
		dOut := tensor.Map{
			stage.PortZ:   tensor.From(stagetest.Randn(rng, c.B*c.S*c.L, 1), c.B, c.S, c.L),
			stage.PortLDJ: tensor.From(stagetest.Randn(rng, c.B*c.S, 1), c.B, c.S),
		}
		for _, impl := range []struct {
			name string
			s    stage.Stage
		}{{"fused", coupling.New()}, {"graph", New()}} {
			for _, grad := range []bool{false, true} {
				mode := "forward"
				if grad {
					mode = "forward+backward"
				}
				b.Run(size.name+"/"+mode+"/"+impl.name, func(b *testing.B) {
					if p == nil {
						p = params(b, cfg, rng)
					}
					ctx := context.Background()
					step := func() {
						res, err := impl.s.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: tensor.Map{stage.PortX: x}, NeedGrad: grad})
						if err != nil {
							b.Fatal(err)
						}
						if grad {
							if _, err := impl.s.Backward(ctx, res.Handle, dOut); err != nil {
								b.Fatal(err)
							}
						}
					}
					step() // untimed: builds and caches the graphs
					for b.Loop() {
						step()
					}
				})
			}
		}
	}
}
