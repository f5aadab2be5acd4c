package causal

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/safetensors"
	"liquidlab/framework/stage"
	"liquidlab/framework/stagefix"
	"liquidlab/framework/tensor"
)

// The dense reference: float64, the whole [S,S] score matrix of every head and
// an explicit mask built from the pattern's definition, independently of the
// kernels' planners.

func patternConfig(H int, opts map[string]string) stage.Config {
	return stage.Config{Dims: map[string]int{"hidden_size": H}, Options: opts}
}

// denseMask returns mask[b][h][t*S+s] for the options and (for lsh) the queries.
func denseMask(o *options, q [][]float64, B, S int) [][][]bool {
	H, d := o.H, o.d
	m := make([][][]bool, B)
	for b := range m {
		m[b] = make([][]bool, o.heads)
		for h := range m[b] {
			mk := make([]bool, S*S)
			var lshBucket, lshRank [][]int
			if o.pattern == LSH {
				for r := 0; r < o.nHashes; r++ {
					R := lshRotation(o, h, r)
					half := o.buckets / 2
					bk, rk := make([]int, S), make([]int, S)
					count := map[int]int{}
					for s := 0; s < S; s++ {
						qv := q[b][s*H+h*d : s*H+h*d+d]
						nrm := 0.0
						for _, v := range qv {
							nrm += v * v
						}
						nrm = math.Sqrt(nrm)
						best, bi := math.Inf(-1), 0
						for i := 0; i < half; i++ {
							x := 0.0
							for c, v := range qv {
								x += v / nrm * float64(R[c*half+i])
							}
							if x > best {
								best, bi = x, i
							}
							if -x > best {
								best, bi = -x, half+i
							}
						}
						bk[s], rk[s] = bi, count[bi]
						count[bi]++
					}
					lshBucket, lshRank = append(lshBucket, bk), append(lshRank, rk)
				}
			}
			for t := 0; t < S; t++ {
				any := false
				for s := 0; s <= t; s++ {
					var ok bool
					switch o.pattern {
					case Full, Linear:
						ok = true
					case Window:
						ok = t-s < o.W
					case Dilated:
						ok = (t-s)%o.dil == 0 && (t-s)/o.dil < o.W
					case Global:
						ok = t-s < o.W || s < o.G
					case BigBird:
						for _, j := range o.bigbirdBlocks(t/o.block, nil) {
							ok = ok || s/o.block == j
						}
					case LSH:
						for r := range lshBucket {
							if s != t && lshBucket[r][s] == lshBucket[r][t] && lshRank[r][s]/o.chunk >= lshRank[r][t]/o.chunk-1 {
								ok = true
							}
						}
					}
					mk[t*S+s] = ok
					any = any || (ok && s != t)
				}
				if o.pattern == LSH && !any {
					mk[t*S+t] = true
				}
			}
			m[b][h] = mk
		}
	}
	return m
}

// dense computes L = Σ y·cy + Σ c·cc and y in float64. p holds the parameters
// in paramNames order (nil where absent), e [B,S,H].
func dense(o *options, p [8][]float64, e []float64, B, S int, cy, cc []float64) (float64, []float64) {
	H, d := o.H, o.d
	lin := func(w, bs []float64, x []float64) []float64 {
		out := make([]float64, len(x))
		n := len(x) / H
		for r := 0; r < n; r++ {
			for i := 0; i < H; i++ {
				s := bs[i]
				for j := 0; j < H; j++ {
					s += w[i*H+j] * x[r*H+j]
				}
				out[r*H+i] = s
			}
		}
		return out
	}
	q, k, v := make([][]float64, B), make([][]float64, B), make([][]float64, B)
	for b := 0; b < B; b++ {
		x := e[b*S*H : (b+1)*S*H]
		q[b] = lin(p[0], p[1], x)
		if o.logScale { // Scalable-Softmax: the query at position s times ln(s+1)
			for s := 0; s < S; s++ {
				f := math.Log(float64(s + 1))
				if o.qLen > 0 { // loglen: max(1, log_qLen(s+1))
					f = math.Max(1, f/math.Log(float64(o.qLen)))
				}
				for c := 0; c < H; c++ {
					q[b][s*H+c] *= f
				}
			}
		}
		if o.pattern == LSH {
			k[b] = make([]float64, S*H)
			for s := 0; s < S; s++ {
				for h := 0; h < o.heads; h++ {
					qv := q[b][s*H+h*d : s*H+h*d+d]
					n := 0.0
					for _, z := range qv {
						n += z * z
					}
					n = math.Sqrt(n)
					for c, z := range qv {
						k[b][s*H+h*d+c] = z / n
					}
				}
			}
		} else {
			k[b] = lin(p[2], p[3], x)
		}
		v[b] = lin(p[4], p[5], x)
	}
	mask := denseMask(o, q, B, S)
	y := make([]float64, B*S*H)
	var L float64
	for b := 0; b < B; b++ {
		a := make([]float64, S*H)
		for h := 0; h < o.heads; h++ {
			for t := 0; t < S; t++ {
				sc := make([]float64, S)
				if o.pattern == Linear {
					phi := func(x float64) float64 {
						if x > 0 {
							return x + 1
						}
						return math.Exp(x)
					}
					den := 0.0
					for s := 0; s <= t; s++ {
						for c := 0; c < d; c++ {
							sc[s] += phi(q[b][t*H+h*d+c]) * phi(k[b][s*H+h*d+c])
						}
						den += sc[s]
					}
					for s := 0; s <= t; s++ {
						for c := 0; c < d; c++ {
							a[t*H+h*d+c] += sc[s] / den * v[b][s*H+h*d+c]
						}
					}
					continue
				}
				mx := math.Inf(-1)
				for s := 0; s < S; s++ {
					if !mask[b][h][t*S+s] {
						continue
					}
					for c := 0; c < d; c++ {
						sc[s] += q[b][t*H+h*d+c] * k[b][s*H+h*d+c]
					}
					sc[s] /= math.Sqrt(float64(d))
					mx = math.Max(mx, sc[s])
				}
				z := 0.0
				for s := 0; s < S; s++ {
					if mask[b][h][t*S+s] {
						sc[s] = math.Exp(sc[s] - mx)
						z += sc[s]
					}
				}
				for s := 0; s < S; s++ {
					if mask[b][h][t*S+s] {
						for c := 0; c < d; c++ {
							a[t*H+h*d+c] += sc[s] / z * v[b][s*H+h*d+c]
						}
					}
				}
			}
		}
		yb := lin(p[6], p[7], a)
		copy(y[b*S*H:], yb)
		for i, x := range yb {
			L += x * cy[b*S*H+i]
		}
		for i := 0; i < H; i++ {
			L += yb[(S-1)*H+i] * cc[b*H+i]
		}
	}
	return L, y
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// relErr is parity's metric: max|got−ref| / max(max|ref|, floor).
func relErr(got []float32, ref []float64, floor float64) float64 {
	var md, mr float64
	for i, r := range ref {
		md = math.Max(md, math.Abs(float64(got[i])-r))
		mr = math.Max(mr, math.Abs(r))
	}
	return md / math.Max(mr, floor)
}

type denseCase struct {
	B, S, H int
	opts    map[string]string
}

func denseCases() []denseCase {
	m := func(kv ...string) map[string]string {
		o := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			o[kv[i]] = kv[i+1]
		}
		return o
	}
	return []denseCase{
		{2, 13, 8, m("pattern", "full", "heads", "2")},
		{1, 9, 6, m("pattern", "full", "heads", "3")},
		{2, 13, 8, m("pattern", "window", "window", "4", "heads", "2")},
		{2, 13, 8, m("pattern", "full", "heads", "2", "qscale", "log")},
		{1, 12, 6, m("pattern", "window", "window", "5", "heads", "3", "qscale", "log")},
		{2, 13, 8, m("pattern", "full", "heads", "2", "qscale", "loglen", "qscale_len", "4")},
		{1, 14, 6, m("pattern", "window", "window", "5", "heads", "3", "qscale", "loglen", "qscale_len", "3")},
		{1, 11, 6, m("pattern", "window", "window", "1")},
		{2, 17, 8, m("pattern", "dilated", "window", "3", "dilation", "3", "heads", "2")},
		{1, 12, 4, m("pattern", "dilated", "window", "20", "dilation", "2", "heads", "4")},
		{2, 15, 8, m("pattern", "global", "window", "3", "global", "2", "heads", "2")},
		{1, 10, 6, m("pattern", "global", "window", "2", "global", "0", "heads", "1")},
		{2, 26, 8, m("pattern", "bigbird", "block", "3", "window_blocks", "2", "global_blocks", "1", "random_blocks", "2", "random_reach", "3", "seed", "5", "heads", "2")},
		{1, 20, 6, m("pattern", "bigbird", "block", "2", "window_blocks", "1", "global_blocks", "2", "random_blocks", "1", "random_reach", "9", "seed", "7", "heads", "3")},
		{2, 24, 8, m("pattern", "lsh", "n_hashes", "2", "buckets", "4", "chunk", "3", "heads", "2", "seed", "3")},
		{1, 19, 6, m("pattern", "lsh", "n_hashes", "1", "buckets", "2", "chunk", "2", "heads", "1", "seed", "1")},
		// three rounds (pairs that are candidates in 1, 2 or 3 of them), several chunks per bucket
		{2, 40, 8, m("pattern", "lsh", "n_hashes", "3", "buckets", "2", "chunk", "4", "heads", "2", "seed", "11")},
		{2, 14, 8, m("pattern", "linear", "heads", "2")},
		{1, 70, 4, m("pattern", "linear", "heads", "1")},
	}
}

// TestDenseReference holds every pattern against the dense masked reference:
// outputs, and gradients of the input and every parameter, where the
// reference's gradients are float64 central differences of the reference.
func TestDenseReference(t *testing.T) {
	for ci, tc := range denseCases() {
		t.Run(fmt.Sprint(tc.opts["pattern"], "/", ci), func(t *testing.T) {
			r := rand.New(rand.NewPCG(3, uint64(ci)))
			cfg := patternConfig(tc.H, tc.opts)
			o, err := parseOptions(cfg)
			if err != nil {
				t.Fatal(err)
			}
			B, S, H := tc.B, tc.S, tc.H
			pm := randParams(t, r, cfg)
			e := tensor.From(randn(r, B*S*H, 1), B, S, H)
			cy := randn(r, B*S*H, 1)
			cc := randn(r, B*H, 1)
			s := New()
			res, err := s.Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, 0, S), NeedGrad: true})
			if err != nil {
				t.Fatal(err)
			}
			bg, err := s.Backward(context.Background(), res.Handle, tensor.Map{"y": tensor.From(cy, B, S, H), "c": tensor.From(cc, B, H)})
			if err != nil {
				t.Fatal(err)
			}
			var p [8][]float64
			for i, n := range paramNames {
				if o.hasParam(i) {
					p[i] = to64(pm[n].Data)
				} else if pm[n] != nil {
					t.Fatalf("pattern %s declares %s", o.pattern, n)
				}
			}
			e64, cy64, cc64 := to64(e.Data), to64(cy), to64(cc)
			_, y := dense(&o, p, e64, B, S, cy64, cc64)
			if err := relErr(res.Outputs["y"].Data, y, 1e-3); err > 1e-5 {
				t.Errorf("y: relative error %.2e", err)
			}
			// gradients by central differences of the float64 reference
			fd := func(x []float64) []float64 {
				g := make([]float64, len(x))
				const h = 1e-6
				for i := range x {
					v := x[i]
					x[i] = v + h
					lp, _ := dense(&o, p, e64, B, S, cy64, cc64)
					x[i] = v - h
					lm, _ := dense(&o, p, e64, B, S, cy64, cc64)
					x[i] = v
					g[i] = (lp - lm) / (2 * h)
				}
				return g
			}
			// parity's rule: a gradient that is zero in exact arithmetic (the key
			// bias; everything of q and k when W = 1) is judged against the
			// scale of all gradients
			type gc struct {
				name string
				got  []float32
				ref  []float64
			}
			all := []gc{{"e", bg.InputGrads["e"].Data, fd(e64)}}
			for i, n := range paramNames {
				if p[i] != nil {
					all = append(all, gc{n, bg.ParamGrads[n].Data, fd(p[i])})
				}
			}
			var scale float64
			for _, g := range all {
				for _, v := range g.ref {
					scale = math.Max(scale, math.Abs(v))
				}
			}
			for _, g := range all {
				tol := 1e-4
				if g.name == "key.bias" { // zero in exact arithmetic: all rounding
					tol = 1e-3
				}
				if err := relErr(g.got, g.ref, 1e-3*scale); err > tol {
					t.Errorf("%s: relative error %.2e against float64 finite differences", g.name, err)
				}
			}
			if s.Live() != 0 {
				t.Errorf("%d handles live", s.Live())
			}
			// The same case as a stage fixture (FIXTURES.md) with the float64
			// reference's values and random chunk cuts: liquidlab parity's
			// check passes on it.
			f32 := func(x []float64) []float32 {
				out := make([]float32, len(x))
				for i, v := range x {
					out[i] = float32(v)
				}
				return out
			}
			floats := map[string]*tensor.Tensor{
				"input.e": e, "cotangent.y": tensor.From(cy, B, S, H), "cotangent.c": tensor.From(cc, B, H),
				"output.y": tensor.From(f32(y), B, S, H),
			}
			cref := make([]float64, 0, B*H)
			for b := 0; b < B; b++ {
				cref = append(cref, y[(b*S+S-1)*H:(b*S+S)*H]...)
			}
			floats["output.c"] = tensor.From(f32(cref), B, H)
			for _, g := range all {
				if g.name == "e" {
					floats["grad.input.e"] = tensor.From(f32(g.ref), B, S, H)
				} else {
					floats["param."+g.name] = pm[g.name]
					floats["grad.param."+g.name] = tensor.From(f32(g.ref), pm[g.name].Shape...)
				}
			}
			var chunks []int
			for left := S; left > 0; {
				n := min(left, 1+r.IntN(S/2+1))
				chunks = append(chunks, n)
				left -= n
			}
			opts, _ := json.Marshal(tc.opts)
			cj, _ := json.Marshal(chunks)
			meta := map[string]string{"fixture": "stage", "kind": "attention", "impl": "causal",
				"options": string(opts), "dims": fmt.Sprintf(`{"hidden_size":%d}`, H), "chunks": string(cj)}
			raw, err := safetensors.Encode(floats, nil, meta)
			if err != nil {
				t.Fatal(err)
			}
			file, err := safetensors.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			fx, err := stagefix.FromFile(file)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := stagefix.Run(context.Background(), fx, New(), 1e-4, 1e-3)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || len(rep.Rows) != 2+len(all)+2 {
				var buf strings.Builder
				rep.Print(&buf)
				t.Errorf("stage fixture, chunks %v:\n%s", chunks, buf.String())
			}
		})
	}
}

// TestStreaming cuts sequences into random chunks: the concatenated outputs
// equal the unchunked ones, for every pattern; the bounded patterns' state
// does not grow.
func TestStreaming(t *testing.T) {
	for ci, tc := range denseCases() {
		t.Run(fmt.Sprint(tc.opts["pattern"], "/", ci), func(t *testing.T) {
			r := rand.New(rand.NewPCG(5, uint64(ci)))
			cfg := patternConfig(tc.H, tc.opts)
			o, _ := parseOptions(cfg)
			B, S, H := tc.B, 3*tc.S, tc.H
			pm := randParams(t, r, cfg)
			e := tensor.From(randn(r, B*S*H, 1), B, S, H)
			whole := runChunks(t, New(), cfg, pm, e, []int{0, S})[0].Outputs["y"].Data
			for trial := 0; trial < 4; trial++ {
				bounds := []int{0}
				for bounds[len(bounds)-1] < S {
					bounds = append(bounds, min(S, bounds[len(bounds)-1]+1+r.IntN(S/3+1)))
				}
				res := runChunks(t, New(), cfg, pm, e, bounds)
				var maxd, maxr float64
				for i, rr := range res {
					lo, hi := bounds[i], bounds[i+1]
					got := rr.Outputs["y"].Data
					for b := 0; b < B; b++ {
						for j := 0; j < (hi-lo)*H; j++ {
							w := whole[(b*S+lo)*H+j]
							maxd = math.Max(maxd, math.Abs(float64(got[(b*(hi-lo))*H+j]-w)))
							maxr = math.Max(maxr, math.Abs(float64(w)))
						}
					}
					if sh := rr.State["k_cache"]; sh != nil {
						if c := o.capacity(); c >= 0 && sh.Shape[1] != c {
							t.Errorf("bounded pattern's cache has %d rows, declared %d", sh.Shape[1], c)
						} else if c < 0 && sh.Shape[1] != hi {
							t.Errorf("after %d tokens the growing cache has %d rows", hi, sh.Shape[1])
						}
					}
				}
				if maxd > 1e-5*math.Max(maxr, 1) {
					t.Errorf("cuts %v: max|chunked − whole| = %.2e (max|y| %.2e)", bounds, maxd, maxr)
				}
			}
		})
	}
}

// TestPatternErrors: bad pattern options and state are errors naming them.
func TestPatternErrors(t *testing.T) {
	const H = 8
	r := rand.New(rand.NewPCG(9, 9))
	e := tensor.From(randn(r, 2*10*H, 1), 2, 10, H)
	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{"pattern": "sparse"}, "pattern"},
		{map[string]string{"pattern": "full", "heads": "3"}, "heads"},
		{map[string]string{"pattern": "full", "heads": "0"}, "heads"},
		{map[string]string{"pattern": "dilated", "dilation": "0"}, "dilation"},
		{map[string]string{"pattern": "global", "global": "-1"}, "global"},
		{map[string]string{"pattern": "lsh", "buckets": "5"}, "buckets"},
		{map[string]string{"pattern": "lsh", "n_hashes": "0"}, "n_hashes"},
		{map[string]string{"pattern": "bigbird", "block": "x"}, "block"},
		{map[string]string{"pattern": "bigbird", "seed": "1.5"}, "seed"},
		{map[string]string{"pattern": "full", "stride": "2"}, "stride"},
		{map[string]string{"pattern": "full", "qscale": "loglen"}, "qscale_len"},
		{map[string]string{"pattern": "full", "qscale": "loglen", "qscale_len": "1"}, "qscale_len"},
		{map[string]string{"pattern": "full", "qscale": "log", "qscale_len": "128"}, "qscale_len"},
		{map[string]string{"pattern": "lsh", "qscale": "loglen", "qscale_len": "128"}, "qscale"},
	} {
		_, err := New().Describe(context.Background(), patternConfig(H, tc.opts))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.opts, err, tc.want)
		}
	}
	// state of the wrong pattern, or inconsistent
	for _, pat := range []string{"dilated", "global", "bigbird", "full", "lsh", "linear"} {
		cfg := patternConfig(H, map[string]string{"pattern": pat, "heads": "2", "window": "3", "block": "2", "chunk": "2"})
		pm := randParams(t, r, cfg)
		st := runChunks(t, New(), cfg, pm, e, []int{0, 10})[0].State
		bad := tensor.Map{}
		for k, v := range st {
			bad[k] = v
		}
		var want string
		if pat == "linear" {
			bad["z_sum"] = tensor.New(2, H, H)
			want = "z_sum"
		} else {
			bad["pos"] = tensor.From([]float32{1}, 1)
			want = "n_cache"
		}
		_, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, 0, 10), State: bad})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: inconsistent state: error %v, want one naming %s", pat, err, want)
		}
		delete(bad, want)
		if _, err := New().Forward(context.Background(), cfg, &stage.ForwardRequest{Params: pm, Inputs: chunkInputs(e, 0, 10), State: bad}); err == nil {
			t.Errorf("%s: state without %s accepted", pat, want)
		}
	}
}
