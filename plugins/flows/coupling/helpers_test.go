package coupling

import (
	"context"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

func testConfig(D, L, F, K int, share, exact bool) stage.Config {
	return stage.Config{
		Dims: map[string]int{"embedding_dim": D, "latent_dim": L, "hidden_dim": F, "num_flows": K,
			"vocab_size": 11, "hidden_size": 6},
		Options: map[string]string{OptSharePar: strconv.FormatBool(share), OptExactLogdet: strconv.FormatBool(exact)},
	}
}

// randParams sets every declared parameter off its trivial initial value: gates
// in (0.2, 0.8) so every path carries gradient.
func randParams(t testing.TB, cfg stage.Config, rng *rand.Rand) tensor.Map {
	t.Helper()
	desc, err := New().Describe(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := tensor.Map{}
	for _, p := range desc.Params {
		x := tensor.New(p.Shape...)
		switch {
		case strings.HasSuffix(p.Name, "gate"):
			x.Data[0] = float32(0.2 + 0.6*rng.Float64())
		case strings.HasSuffix(p.Name, "scale_adapter"):
			x.Data[0] = float32(0.5 + 0.7*rng.Float64())
		case strings.HasSuffix(p.Name, "translate_adapter"):
			x.Data[0] = float32(0.3 + 0.6*rng.Float64())
		default:
			bound := 1 / math.Sqrt(float64(p.FanIn))
			for i := range x.Data {
				x.Data[i] = float32(bound * (2*rng.Float64() - 1))
			}
		}
		m[p.Name] = x
	}
	return m
}

func cloneMap(m tensor.Map) tensor.Map {
	out := tensor.Map{}
	for k, v := range m {
		out[k] = v.Clone()
	}
	return out
}

func sameMap(t *testing.T, what string, a, b tensor.Map) {
	t.Helper()
	for k, v := range a {
		w := b[k]
		if w == nil || !tensor.SameShape(v.Shape, w.Shape) {
			t.Fatalf("%s: tensor %q changed shape", what, k)
		}
		for i := range v.Data {
			if math.Float32bits(v.Data[i]) != math.Float32bits(w.Data[i]) {
				t.Fatalf("%s: tensor %q was modified at %d", what, k, i)
			}
		}
	}
}

// ref is a plain float64 transcription of the seed's forward pass, one row at a
// time, reading parameters by their (shared or per-layer) names.
type ref struct {
	D, H, L, F, K int
	share, exact  bool
	m             tensor.Map
}

func newRef(t testing.TB, cfg stage.Config, m tensor.Map) *ref {
	d, err := parseConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &ref{D: d.D, H: d.H, L: d.L, F: d.F, K: d.K, share: d.share, exact: d.exact, m: m}
}

func (r *ref) v(name string) []float64 {
	t := r.m[name]
	out := make([]float64, len(t.Data))
	for i, x := range t.Data {
		out[i] = float64(x)
	}
	return out
}

func linear64(x, w, b []float64, in, out int) []float64 {
	y := make([]float64, out)
	for o := 0; o < out; o++ {
		s := b[o]
		for i := 0; i < in; i++ {
			s += w[o*in+i] * x[i]
		}
		y[o] = s
	}
	return y
}

func (r *ref) net(i int, kind string, x1 []float64) []float64 {
	src := i
	if r.share {
		src = 0
	}
	n := netParamNames(src, kind)
	h := linear64(x1, r.v(n[0]), r.v(n[1]), r.H, r.F)
	for j := range h {
		h[j] = math.Max(h[j], 0)
	}
	return linear64(h, r.v(n[2]), r.v(n[3]), r.F, r.H)
}

// row returns z, ldj, the stack output y and x0 for one embedding row.
func (r *ref) row(emb []float64) (z []float64, ldj float64, y, x0 []float64) {
	D, H := r.D, r.H
	gp := r.v(nameProjG)[0]
	p := linear64(emb, r.v(nameProjW), r.v(nameProjB), D, D)
	x0 = make([]float64, D)
	for j := range x0 {
		x0[j] = gp*p[j] + (1-gp)*emb[j]
	}
	x := append([]float64(nil), x0...)
	for i := 0; i < r.K; i++ {
		as := r.v(flowName(i, "scale_adapter"))[0]
		at := r.v(flowName(i, "translate_adapter"))[0]
		g := r.v(flowName(i, "gate"))[0]
		x1 := x[:H]
		s := r.net(i, "scale_net", x1)
		t := r.net(i, "translate_net", x1)
		nx := make([]float64, D)
		copy(nx, x1)
		for j := 0; j < H; j++ {
			sj := math.Tanh(s[j]) * as
			tj := t[j] * at
			x2 := x[H+j]
			nx[H+j] = g*(x2*math.Exp(sj)+tj) + (1-g)*x2
			if r.exact {
				ldj += math.Log(math.Abs(g*math.Exp(sj) + 1 - g))
			} else {
				ldj += sj * g
			}
		}
		if i%2 == 1 {
			for j := range nx {
				nx[j] += 0.1 * x0[j]
			}
		}
		x = nx
	}
	z = append([]float64(nil), x[:r.L]...)
	if r.L == H {
		for j := range z {
			z[j] += 0.1 * x0[j]
		}
	}
	return z, ldj, x, x0
}

func row64(x *tensor.Tensor, r, D int) []float64 {
	out := make([]float64, D)
	for j := range out {
		out[j] = float64(x.Data[r*D+j])
	}
	return out
}

func near(a, b, atol, rtol float64) bool {
	return math.Abs(a-b) <= atol+rtol*math.Max(math.Abs(a), math.Abs(b))
}
