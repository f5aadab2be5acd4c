package causalgraph

import (
	"context"
	"math/rand/v2"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/attention/causal"
)

// BenchmarkVsFused times causal-graph against the fused causal stage, forward
// and forward+backward of one chunk, pattern window (W=64, one head, causal's
// defaults), at the quickstart's size (H=32, batch 8 × 128 tokens), the
// seed's hidden size (H=256, batch 8 × 512 tokens, as scan-graph's) and a long
// chunk (H=256, 1 × 2048 tokens: 32 windows, blocked):
//
//	nice -n 19 go test -run '^$' -bench VsFused -benchtime 5x -count 3 ./plugins/attention/causalgraph/
func BenchmarkVsFused(b *testing.B) {
	for _, size := range []struct {
		name    string
		H, B, S int
	}{{"quickstart", 32, 8, 128}, {"seed", 256, 8, 512}, {"long", 256, 1, 2048}} {
		c := tcase{pattern: causal.Window, H: size.H, heads: 1, W: causal.DefaultWindow, B: size.B, chunks: []int{size.S}}
		cfg := c.config()
		rng := rand.New(rand.NewPCG(3, 3))
		p := params(b, cfg, rng)
		in := tensor.Map{stage.PortE: tensor.From(stagetest.Randn(rng, c.B*size.S*c.H, 1), c.B, size.S, c.H)}
		dOut := tensor.Map{"y": tensor.From(stagetest.Randn(rng, c.B*size.S*c.H, 1), c.B, size.S, c.H)}
		for _, impl := range []struct {
			name string
			s    stage.Stage
		}{{"fused", causal.New()}, {"graph", New()}} {
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
