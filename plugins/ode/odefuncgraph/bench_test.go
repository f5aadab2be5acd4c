package odefuncgraph

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/ode/odefunc"
)

// BenchmarkVsFused times odefunc-graph against the fused odefunc, method rk4
// over t_span = linspace(0, 1, 5), forward and forward+backward, at the
// quickstart's size (L=16, H=32, batch 8 × 128 tokens) and the seed's
// (L=128, H=256, 4096 tokens, as odefunc's own benchmarks):
//
//	nice -n 10 go test -run '^$' -bench VsFused -benchtime 3x -count 2 ./plugins/ode/odefuncgraph/
func BenchmarkVsFused(b *testing.B) {
	for _, size := range []struct {
		name string
		c    tcase
	}{{"quickstart", tcase{16, 32, 8, 128, "rk4"}}, {"seed", tcase{128, 256, 1, 4096, "rk4"}}} {
		c := size.c
		cfg := c.config()
		rng := rand.New(rand.NewPCG(5, 5))
		d, err := odefunc.New().Describe(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		p := tensor.Map{}
		for _, ps := range d.Params {
			v := tensor.New(ps.Shape...)
			if v.Shape == nil {
				v.Shape = []int{}
			}
			copy(v.Data, stagetest.Randn(rng, len(v.Data), 0.3))
			p[ps.Name] = v
		}
		in := tensor.Map{odefunc.InputZ: tensor.From(stagetest.Randn(rng, c.B*c.S*c.L, 1), c.B, c.S, c.L),
			odefunc.InputTSpan: tensor.From([]float32{0, 0.25, 0.5, 0.75, 1}, 5)}
		dOut := tensor.Map{odefunc.OutputE: tensor.From(stagetest.Randn(rng, c.B*c.S*c.H, 1), c.B, c.S, c.H)}
		for _, impl := range []struct {
			name string
			s    stage.Stage
		}{{"fused", odefunc.New()}, {"graph", New()}} {
			for _, grad := range []bool{false, true} {
				mode := "forward"
				if grad {
					mode = "forward+backward"
				}
				b.Run(size.name+"/"+mode+"/"+impl.name, func(b *testing.B) {
					ctx := context.Background()
					step := func() {
						res, err := impl.s.Forward(ctx, cfg, &stage.ForwardRequest{Params: p, Inputs: in, NeedGrad: grad})
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
