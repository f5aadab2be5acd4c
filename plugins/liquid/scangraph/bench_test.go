package scangraph

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/liquid/scan"
)

// BenchmarkVsFused times scan-graph against the fused scan, forward and
// forward+backward of one chunk, at the quickstart's size (H=32, batch 8 ×
// 128 tokens) and the seed's hidden size (H=256, batch 8 × 512 tokens, as
// scan's doc):
//
//	nice -n 10 go test -run '^$' -bench VsFused -benchtime 3x ./plugins/liquid/scangraph/
func BenchmarkVsFused(b *testing.B) {
	for _, size := range []struct {
		name    string
		H, B, S int
	}{{"quickstart", 32, 8, 128}, {"seed", 256, 8, 512}} {
		H, B, S := size.H, size.B, size.S
		rng := rand.New(rand.NewPCG(3, 3))
		p := tensor.Map{
			"input.weight":     tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(float64(H))), H, H),
			"input.bias":       tensor.From(stagetest.Randn(rng, H, 0.3), H),
			"recurrent.weight": tensor.From(stagetest.Randn(rng, H*H, 1/math.Sqrt(float64(H))), H, H),
			"tau_raw":          tensor.From(stagetest.Randn(rng, H, 0.5), H),
			"A":                tensor.From(stagetest.Randn(rng, H, 1), H),
		}
		ts := make([]float32, B*S)
		for i := range ts {
			ts[i] = rng.Float32()
		}
		for r := 0; r < B; r++ {
			slices.Sort(ts[r*S : (r+1)*S])
		}
		in := tensor.Map{
			stage.PortE:          tensor.From(stagetest.Randn(rng, B*S*H, 1), B, S, H),
			stage.PortTimestamps: tensor.From(ts, B, S),
			stage.PortH:          tensor.New(B, H),
		}
		dOut := tensor.Map{"y": tensor.From(stagetest.Randn(rng, B*S*H, 1), B, S, H), "h": tensor.New(B, H)}
		cfg := config(H)
		for _, impl := range []struct {
			name string
			s    stage.Stage
		}{{"fused", scan.New()}, {"graph", New()}} {
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
