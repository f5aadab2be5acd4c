package graphstage

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"testing"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"

	"liquidlab/framework/stage"
	"liquidlab/framework/stage/stagetest"
	"liquidlab/framework/tensor"
)

// toy is z = tanh(x·Wᵀ + b)·a over [B,S,D] → [B,S,L] with a scalar a, plus
// ldj = Σ_l z per token; the timestamps-like input "u" is unused.
func toy(build func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error)) Spec {
	return Spec{
		Describe: func(cfg stage.Config) (*Description, error) {
			D, err := cfg.Dim("embedding_dim")
			if err != nil {
				return nil, err
			}
			L, err := cfg.Dim("latent_dim")
			if err != nil {
				return nil, err
			}
			return &Description{
				Description: stage.Description{Kind: stage.KindFlows, Name: "toy", Version: "0",
					Params: []stage.ParamSpec{
						{Name: "w", Shape: []int{L, D}, Init: "linear_weight", FanIn: D},
						{Name: "b", Shape: []int{L}, Init: "linear_bias", FanIn: D},
						{Name: "a", Shape: []int{}, Init: "ones"},
						{Name: "frozen", Shape: []int{L}, Init: "ones", NoGrad: true},
					},
					Inputs: []string{stage.PortX, "u"}, Outputs: []string{stage.PortZ, stage.PortLDJ}},
				Shapes: map[string][]int{stage.PortX: {B, S, D}, "u": {B, S}},
			}, nil
		},
		Build: build,
	}
}

func toyBuild(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
	x := in[stage.PortX]
	sh := x.Shape()
	y, err := Linear(G.Must(Tokens(x)), p["w"], p["b"])
	if err != nil {
		return nil, nil, err
	}
	z := G.Must(G.Mul(G.Must(G.Tanh(y)), p["a"]))
	z = G.Must(G.HadamardProd(z, G.Must(G.BroadcastAdd(z, p["frozen"], nil, []byte{0}))))
	ldj := G.Must(G.Reshape(G.Must(G.Sum(z, 1)), []int{sh[0], sh[1]}))
	z = G.Must(G.Reshape(z, []int{sh[0], sh[1], z.Shape()[1]}))
	return Nodes{stage.PortZ: z, stage.PortLDJ: ldj}, nil, nil
}

func toyConfig() stage.Config {
	return stage.Config{Dims: map[string]int{"embedding_dim": 5, "latent_dim": 3}}
}

// TestConformance runs the stage contract's kit on a stateless component with
// a scalar parameter, a NoGrad parameter and an input the outputs ignore (its
// gradient is zero, which the kit's finite differences confirm).
func TestConformance(t *testing.T) {
	s := New(toy(toyBuild))
	stagetest.Run(t, s, stagetest.Config{Dims: toyConfig().Dims, B: 2, S: 4, Seed: 1,
		Inputs: tensor.Map{"u": tensor.New(2, 4)}})
	stagetest.Run(t, s, stagetest.Config{Dims: toyConfig().Dims, B: 1, S: 3, Seed: 2,
		Inputs: tensor.Map{"u": tensor.New(1, 3)}})
}

func run(t *testing.T, s *Stage, B, S int, needGrad bool) *stage.ForwardResult {
	t.Helper()
	req := &stage.ForwardRequest{NeedGrad: needGrad, Params: tensor.Map{
		"w": tensor.New(3, 5), "b": tensor.New(3), "a": tensor.From([]float32{1}), "frozen": tensor.New(3)},
		Inputs: tensor.Map{stage.PortX: tensor.New(B, S, 5), "u": tensor.New(B, S)}}
	res, err := s.Forward(context.Background(), toyConfig(), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestGraphCache checks that graphs are built once per shape and that the
// gradient graph is built only when a forward pass with NeedGrad (whose forward
// pass it runs) or a backward pass needs it.
func TestGraphCache(t *testing.T) {
	s := New(toy(toyBuild))
	run(t, s, 2, 4, false)
	run(t, s, 2, 4, false)
	if n := s.Graphs(); n != 1 {
		t.Fatalf("%d graphs after two forward passes of one shape, want 1", n)
	}
	res := run(t, s, 2, 5, true)
	if n := s.Graphs(); n != 2 {
		t.Fatalf("%d graphs after a second shape with NeedGrad, want 2", n)
	}
	if _, err := s.Backward(context.Background(), res.Handle, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.Graphs(); n != 2 {
		t.Fatalf("%d graphs after its backward pass, want 2", n)
	}
	run(t, s, 2, 5, false)
	if n := s.Graphs(); n != 3 {
		t.Fatalf("%d graphs after a forward pass without NeedGrad, want 3", n)
	}
	for i := 1; i <= MaxGraphs+3; i++ {
		run(t, s, 1, i, false)
	}
	if n := s.Graphs(); n > MaxGraphs*2 {
		t.Fatalf("%d graphs cached, want at most %d", n, 2*MaxGraphs)
	}
}

// TestBuildErrors checks that a Build that fails or panics, or returns too
// few outputs, gives an error naming the component instead of a panic.
func TestBuildErrors(t *testing.T) {
	for name, b := range map[string]func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error){
		"no such output": func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
			return Nodes{stage.PortZ: in[stage.PortX]}, nil, nil
		},
		"panicked": func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
			G.Must(G.Mul(in[stage.PortX], p["w"])) // [B,S,D]×[L,D]: gorgonia panics in Must
			return nil, nil, nil
		},
		"my error": func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
			return nil, nil, errors.New("my error")
		},
	} {
		s := New(toy(b))
		req := &stage.ForwardRequest{Params: tensor.Map{
			"w": tensor.New(3, 5), "b": tensor.New(3), "a": tensor.From([]float32{1}), "frozen": tensor.New(3)},
			Inputs: tensor.Map{stage.PortX: tensor.New(2, 4, 5), "u": tensor.New(2, 4)}}
		_, err := s.Forward(context.Background(), toyConfig(), req)
		if err == nil || !strings.Contains(err.Error(), name) && !strings.Contains(err.Error(), "output") {
			t.Errorf("%s: Forward error %v", name, err)
		}
	}
}

// TestShapes checks the symbolic-size checks: inconsistent B or S between
// inputs is an error naming the input.
func TestShapes(t *testing.T) {
	s := New(toy(toyBuild))
	req := &stage.ForwardRequest{Params: tensor.Map{
		"w": tensor.New(3, 5), "b": tensor.New(3), "a": tensor.From([]float32{1}), "frozen": tensor.New(3)},
		Inputs: tensor.Map{stage.PortX: tensor.New(2, 4, 5), "u": tensor.New(2, 3)}}
	if _, err := s.Forward(context.Background(), toyConfig(), req); err == nil || !strings.Contains(err.Error(), `"u"`) {
		t.Errorf("S mismatch: error %v, want one naming input \"u\"", err)
	}
	if s := patString([]int{B, S, 7}); s != "[B,S,7]" {
		t.Errorf("patString = %s", s)
	}
}

// viewBuild computes z ⊙ (reshape(z) + frozen): gorgonia's Reshape returns a
// view of z, and a machine that adds in place into that view corrupts z
// (gorgonia's TapeMachine does; TestViews guards the kit's machine against it).
func viewBuild(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
	x := in[stage.PortX]
	sh := x.Shape()
	y, err := Linear(G.Must(Tokens(x)), p["w"], p["b"])
	if err != nil {
		return nil, nil, err
	}
	z := G.Must(G.Mul(G.Must(G.Tanh(y)), p["a"]))
	z = G.Must(G.HadamardProd(z, G.Must(G.BroadcastAdd(G.Must(G.Reshape(z, z.Shape())), p["frozen"], nil, []byte{0}))))
	ldj := G.Must(G.Reshape(G.Must(G.Sum(z, 1)), []int{sh[0], sh[1]}))
	z = G.Must(G.Reshape(z, []int{sh[0], sh[1], z.Shape()[1]}))
	return Nodes{stage.PortZ: z, stage.PortLDJ: ldj}, nil, nil
}

// TestViews runs the contract kit (finite differences included) on a graph
// whose results a machine writing in place through a view would corrupt.
func TestViews(t *testing.T) {
	stagetest.Run(t, New(toy(viewBuild)), stagetest.Config{Dims: toyConfig().Dims, B: 2, S: 4, Seed: 4,
		Inputs: tensor.Map{"u": tensor.New(2, 4)}})
}

// TestConcurrent runs forward and backward passes of two shapes from several
// goroutines on one stage (go test -race checks the locking) and compares
// each with a sequential run.
func TestConcurrent(t *testing.T) {
	s := New(toy(toyBuild))
	ctx := context.Background()
	mk := func(S int, v float32) *stage.ForwardRequest {
		x := tensor.New(2, S, 5)
		for i := range x.Data {
			x.Data[i] = v * float32(i%7-3) / 7
		}
		return &stage.ForwardRequest{NeedGrad: true, Params: tensor.Map{
			"w": tensor.From([]float32{.1, .2, .3, .4, .5, -.1, -.2, -.3, -.4, -.5, .3, .1, -.2, .4, 0}, 3, 5),
			"b": tensor.From([]float32{.1, -.1, .2}, 3), "a": tensor.From([]float32{0.9}), "frozen": tensor.From([]float32{1, 2, 3}, 3)},
			Inputs: tensor.Map{stage.PortX: x, "u": tensor.New(2, S)}}
	}
	want := map[int]float32{}
	for i := 0; i < 4; i++ {
		req := mk(3+i%2, float32(i+1))
		res, err := s.Forward(ctx, toyConfig(), req)
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.Backward(ctx, res.Handle, tensor.Map{stage.PortZ: res.Outputs[stage.PortZ]})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = res.Outputs[stage.PortLDJ].Data[1] + g.ParamGrads["w"].Data[2]
	}
	errs := make(chan error, 16)
	for k := 0; k < 16; k++ {
		go func(i int) {
			req := mk(3+i%2, float32(i+1))
			res, err := s.Forward(ctx, toyConfig(), req)
			if err != nil {
				errs <- err
				return
			}
			g, err := s.Backward(ctx, res.Handle, tensor.Map{stage.PortZ: res.Outputs[stage.PortZ]})
			if err != nil {
				errs <- err
				return
			}
			if got := res.Outputs[stage.PortLDJ].Data[1] + g.ParamGrads["w"].Data[2]; got != want[i] {
				errs <- fmt.Errorf("request %d: %v concurrently, %v sequentially", i, got, want[i])
				return
			}
			errs <- nil
		}(k % 4)
	}
	for k := 0; k < 16; k++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := s.Live(); n != 0 {
		t.Errorf("%d live handles", n)
	}
}

// growSpec is a stateful toy: y_t = w ⊙ (h + x_t), h = input "h0" on the first
// chunk and the carried "h" later, next h = h + Σ_t x_t, and state "hist"
// [B,n,D], every x so far (a cache that grows: −1 after the batch). With
// stateGrads, input h0's gradient on a later chunk is the carried h's.
func growSpec(stateGrads bool) Spec {
	const D = 3
	sg := map[string]string{}
	if stateGrads {
		sg["h0"] = "h"
	}
	return Spec{
		Describe: func(cfg stage.Config) (*Description, error) {
			return &Description{
				Description: stage.Description{Kind: stage.KindLiquid, Name: "grow", Version: "0",
					Params:  []stage.ParamSpec{{Name: "w", Shape: []int{D}, Init: "ones"}},
					State:   []stage.StateSpec{{Name: "h", Shape: []int{-1, D}}, {Name: "hist", Shape: []int{-1, -1, D}}},
					Inputs:  []string{stage.PortX, "h0"},
					Outputs: []string{"y"}},
				Shapes:     map[string][]int{stage.PortX: {B, S, D}, "h0": {B, D}},
				StateGrads: sg,
			}, nil
		},
		Build: func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
			x := in[stage.PortX]
			b := x.Shape()[0]
			h, hist := in["h0"], x
			if st != nil {
				h, hist = st["h"], G.Must(G.Concat(1, st["hist"], x))
			}
			y := G.Must(G.BroadcastAdd(x, G.Must(G.Reshape(h, []int{b, 1, D})), nil, []byte{1}))
			y = G.Must(G.BroadcastHadamardProd(y, p["w"], nil, []byte{0, 1}))
			next := G.Must(G.Add(h, G.Must(G.Sum(x, 1))))
			return Nodes{"y": y}, Nodes{"h": next, "hist": hist}, nil
		},
	}
}

// TestGrowingStateAndStateGrads checks a state whose size varies from chunk
// to chunk (graphs keyed by it), a wrong carried shape refused by name, and
// Description.StateGrads: on a later chunk, input h0's gradient is Σ_t w⊙dy_t
// (the carried h's) with it, zero without.
func TestGrowingStateAndStateGrads(t *testing.T) {
	ctx := context.Background()
	const Bn, D = 2, 3
	w := tensor.From([]float32{1, 2, 3}, D)
	for _, withSG := range []bool{false, true} {
		s := New(growSpec(withSG))
		var state tensor.Map
		n := 0
		for _, S := range []int{2, 3, 3} {
			x := tensor.New(Bn, S, D)
			for i := range x.Data {
				x.Data[i] = float32(i%5) - 1
			}
			res, err := s.Forward(ctx, stage.Config{}, &stage.ForwardRequest{Params: tensor.Map{"w": w}, State: state, NeedGrad: true,
				Inputs: tensor.Map{stage.PortX: x, "h0": tensor.New(Bn, D)}})
			if err != nil {
				t.Fatal(err)
			}
			n += S
			if got := res.State["hist"].Shape; !tensor.SameShape(got, []int{Bn, n, D}) {
				t.Fatalf("hist after %d tokens has shape %v", n, got)
			}
			dy := tensor.New(Bn, S, D)
			for i := range dy.Data {
				dy.Data[i] = 1
			}
			g, err := s.Backward(ctx, res.Handle, tensor.Map{"y": dy})
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range g.InputGrads["h0"].Data {
				want := float32(S) * w.Data[i%D] // Σ_t w⊙dy_t
				if state != nil && !withSG {
					want = 0
				}
				if v != want {
					t.Fatalf("StateGrads %v, chunk of %d after %v: gradient of h0[%d] = %v, want %v", withSG, S, state != nil, i, v, want)
				}
			}
			state = res.State
		}
		bad := tensor.Map{"h": state["h"], "hist": tensor.New(Bn, 2, D+1)}
		_, err := s.Forward(ctx, stage.Config{}, &stage.ForwardRequest{Params: tensor.Map{"w": w}, State: bad,
			Inputs: tensor.Map{stage.PortX: tensor.New(Bn, 1, D), "h0": tensor.New(Bn, D)}})
		if err == nil || !strings.Contains(err.Error(), `"hist"`) {
			t.Errorf("state hist of shape [2 2 4]: error %v, want one naming it", err)
		}
	}
}

// sliceBuild is a small recurrence over the tokens of x, with what the plan
// must get right on later runs: slices (whose gradient, sliceIncr, adds into
// its output), unary ops, broadcasts, views and a concatenation.
func sliceBuild(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
	x := in[stage.PortX]
	sh := x.Shape()
	y := G.Must(Linear(G.Must(Tokens(x)), p["w"], p["b"]))
	y = G.Must(G.Reshape(y, []int{sh[0], sh[1], y.Shape()[1]}))
	var h *G.Node
	hs := make(G.Nodes, sh[1])
	for t := range hs {
		yt := G.Must(G.Slice(y, nil, G.S(t)))
		if h == nil {
			h = G.Must(G.Tanh(yt))
		} else {
			h = G.Must(G.Tanh(G.Must(G.Add(yt, G.Must(G.Mul(h, p["a"]))))))
		}
		h = G.Must(G.BroadcastAdd(h, p["frozen"], nil, []byte{0}))
		hs[t] = G.Must(G.Reshape(h, []int{sh[0], 1, y.Shape()[2]}))
	}
	z := G.Must(G.Concat(1, hs...))
	ldj := G.Must(G.Sum(G.Must(G.Square(z)), 2))
	return Nodes{stage.PortZ: z, stage.PortLDJ: ldj}, nil, nil
}

// TestLaterRunsMatchFirst checks the plan's reuse of memory: a stage that has
// run its graphs before (so its ops write into shared, preallocated memory)
// gives, bit for bit, what a fresh stage's first run gives for the same
// request; and the plan does share memory (fewer buffers than outputs).
func TestLaterRunsMatchFirst(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		build func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error)
	}{{"toy", toyBuild}, {"views", viewBuild}, {"slices", sliceBuild}} {
		t.Run(tc.name, func(t *testing.T) {
			mk := func(v float32) (*stage.ForwardRequest, tensor.Map) {
				x := tensor.New(2, 6, 5)
				for i := range x.Data {
					x.Data[i] = v * float32(i%11-5) / 7
				}
				req := &stage.ForwardRequest{NeedGrad: true, Params: tensor.Map{
					"w": tensor.From([]float32{.1, .2, .3, .4, .5, -.1, -.2, -.3, -.4, -.5, .3, .1, -.2, .4, 0}, 3, 5),
					"b": tensor.From([]float32{.1, -.1, .2}, 3), "a": tensor.From([]float32{0.9}), "frozen": tensor.From([]float32{1, 2, 3}, 3)},
					Inputs: tensor.Map{stage.PortX: x, "u": tensor.New(2, 6)}}
				dz := tensor.New(2, 6, 3)
				for i := range dz.Data {
					dz.Data[i] = v * float32(i%5-2)
				}
				return req, tensor.Map{stage.PortZ: dz, stage.PortLDJ: tensor.From([]float32{1, -1, 2, 0, 1, 3, 1, 1, -2, 0, 1, 2}, 2, 6)}
			}
			run := func(s *Stage, v float32) []float32 {
				req, dOut := mk(v)
				res, err := s.Forward(ctx, toyConfig(), req)
				if err != nil {
					t.Fatal(err)
				}
				g, err := s.Backward(ctx, res.Handle, dOut)
				if err != nil {
					t.Fatal(err)
				}
				return flatten(res.Outputs, g.InputGrads, g.ParamGrads)
			}
			warm := New(toy(tc.build))
			for _, v := range []float32{1, -0.5, 2} {
				run(warm, v)
			}
			got, want := run(warm, 0.7), run(New(toy(tc.build)), 0.7)
			if len(got) != len(want) {
				t.Fatalf("%d values, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("value %d: later run %v, first run %v", i, got[i], want[i])
				}
			}
			bufs, shared := warm.sharing()
			if tc.name == "slices" && shared == 0 {
				t.Errorf("the plans share no memory (%d buffers)", bufs)
			}
		})
	}
}

// flatten is the values of every tensor of the maps, each map's in key order.
func flatten(maps ...tensor.Map) []float32 {
	var all []float32
	for _, m := range maps {
		for _, k := range sortedKeys(m) {
			all = append(all, m[k].Data...)
		}
	}
	return all
}

func sortedKeys(m tensor.Map) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// panicOp is an op whose Do panics, as a gorgonia op can on data it does not
// expect.
type panicOp struct{}

func (panicOp) Arity() int { return 1 }
func (panicOp) Type() hm.Type {
	t := G.TensorType{Dims: 2, Of: hm.TypeVariable('a')}
	return hm.NewFnType(t, t)
}
func (panicOp) InferShape(ns ...G.DimSizer) (T.Shape, error) {
	return ns[0].(T.Shape).Clone(), nil
}
func (panicOp) Do(...G.Value) (G.Value, error) { panic("the op broke") }
func (panicOp) ReturnsPtr() bool               { return false }
func (panicOp) CallsExtern() bool              { return false }
func (panicOp) OverwritesInput() int           { return -1 }
func (panicOp) WriteHash(h hash.Hash)          { fmt.Fprint(h, "panicOp") }
func (panicOp) Hashcode() uint32               { return 1 }
func (panicOp) String() string                 { return "panicOp" }

// TestOpPanic: a panic inside an op while the graph runs comes back as an
// error naming the component, and the stage keeps working.
func TestOpPanic(t *testing.T) {
	s := New(toy(func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
		x := G.Must(Tokens(in[stage.PortX]))
		z := G.Must(G.ApplyOp(panicOp{}, x))
		sh := in[stage.PortX].Shape()
		return Nodes{stage.PortZ: G.Must(G.Reshape(G.Must(Linear(z, p["w"], p["b"])), []int{sh[0], sh[1], 3})),
			stage.PortLDJ: G.Must(G.Reshape(G.Must(G.Sum(z, 1)), []int{sh[0], sh[1]}))}, nil, nil
	}))
	req := &stage.ForwardRequest{Params: tensor.Map{"w": tensor.New(3, 5), "b": tensor.New(3), "a": tensor.From([]float32{1}), "frozen": tensor.New(3)},
		Inputs: tensor.Map{stage.PortX: tensor.New(2, 3, 5), "u": tensor.New(2, 3)}}
	for range 2 {
		_, err := s.Forward(context.Background(), toyConfig(), req)
		if err == nil || !strings.Contains(err.Error(), "toy") || !strings.Contains(err.Error(), "the op broke") {
			t.Fatalf("err = %v, want the op's panic, naming the component", err)
		}
	}
}

// TestKeptForward checks the backward passes that find their forward pass
// kept in the gradient graph (the last forward pass with NeedGrad of that
// shape) and those that must recompute it (an earlier one, or after another
// backward pass), against a fresh stage's, bit for bit.
func TestKeptForward(t *testing.T) {
	ctx := context.Background()
	mk := func(v float32) *stage.ForwardRequest {
		x := tensor.New(2, 6, 5)
		for i := range x.Data {
			x.Data[i] = v * float32(i%11-5) / 7
		}
		return &stage.ForwardRequest{NeedGrad: true, Params: tensor.Map{
			"w": tensor.From([]float32{.1, .2, .3, .4, .5, -.1, -.2, -.3, -.4, -.5, .3, .1, -.2, .4, 0}, 3, 5),
			"b": tensor.From([]float32{.1, -.1, .2}, 3), "a": tensor.From([]float32{v}), "frozen": tensor.From([]float32{1, 2, 3}, 3)},
			Inputs: tensor.Map{stage.PortX: x, "u": tensor.New(2, 6)}}
	}
	dOut := tensor.Map{stage.PortZ: tensor.New(2, 6, 3), stage.PortLDJ: tensor.From([]float32{1, -1, 2, 0, 1, 3, 1, 1, -2, 0, 1, 2}, 2, 6)}
	for i := range dOut[stage.PortZ].Data {
		dOut[stage.PortZ].Data[i] = float32(i%5 - 2)
	}
	flat := func(g *stage.BackwardResult) []float32 { return flatten(g.InputGrads, g.ParamGrads) }
	want := func(v float32) []float32 { // a fresh stage, one forward and backward
		s := New(toy(sliceBuild))
		res, err := s.Forward(ctx, toyConfig(), mk(v))
		if err != nil {
			t.Fatal(err)
		}
		g, err := s.Backward(ctx, res.Handle, dOut)
		if err != nil {
			t.Fatal(err)
		}
		return flat(g)
	}
	s := New(toy(sliceBuild))
	fwd := func(v float32, grad bool) uint64 {
		req := mk(v)
		req.NeedGrad = grad
		res, err := s.Forward(ctx, toyConfig(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Handle
	}
	bwd := func(h uint64, v float32) {
		t.Helper()
		g, err := s.Backward(ctx, h, dOut)
		if err != nil {
			t.Fatal(err)
		}
		got, w := flat(g), want(v)
		for i := range w {
			if got[i] != w[i] {
				t.Fatalf("handle %d: gradient value %d = %v, want %v", h, i, got[i], w[i])
			}
		}
	}
	h1 := fwd(0.9, true)
	h2 := fwd(-0.4, true)
	bwd(h1, 0.9)  // recomputed: h2's forward pass took the plan
	bwd(h2, -0.4) // recomputed: h1's backward pass overwrote it
	if n := s.kept.Load(); n != 0 {
		t.Fatalf("%d backward passes used a kept forward pass, want 0", n)
	}
	h3 := fwd(0.7, true)
	fwd(1.3, false) // the forward-only graph: leaves h3's values alone
	bwd(h3, 0.7)
	h4 := fwd(0.5, true)
	if err := s.Release(ctx, h4); err != nil {
		t.Fatal(err)
	}
	h5 := fwd(0.3, true)
	bwd(h5, 0.3)
	if n := s.kept.Load(); n != 2 {
		t.Fatalf("%d backward passes used a kept forward pass, want 2 (h3, h5)", n)
	}
}

// perTokenSpec is a small recurrence over x [B,S,D] written with x's tokens
// either sliced from the whole input (perToken false) or handed over by the
// kit (Description.PerToken): h_t = tanh(x_t·Wᵀ + b + a·h_{t−1}).
func perTokenSpec(perToken bool) Spec {
	sp := toy(func(g *G.ExprGraph, cfg stage.Config, in, p, st Nodes) (Nodes, Nodes, error) {
		u := in["u"].Shape() // [B,S]
		var h *G.Node
		hs := make(G.Nodes, u[1])
		for t := range hs {
			var xt *G.Node
			if perToken {
				xt = in[TokenKey(stage.PortX, t)]
			} else {
				xt = G.Must(G.Slice(in[stage.PortX], nil, G.S(t)))
			}
			y := G.Must(Linear(xt, p["w"], p["b"]))
			if h != nil {
				y = G.Must(G.Add(y, G.Must(G.Mul(h, p["a"]))))
			}
			h = G.Must(G.Tanh(y))
			hs[t] = G.Must(G.Reshape(h, []int{u[0], 1, 3}))
		}
		z := hs[0]
		if len(hs) > 1 {
			z = G.Must(G.Concat(1, hs...))
		}
		return Nodes{stage.PortZ: z, stage.PortLDJ: G.Must(G.Sum(z, 2))}, nil, nil
	})
	describe := sp.Describe
	sp.Describe = func(cfg stage.Config) (*Description, error) {
		d, err := describe(cfg)
		if err == nil && perToken {
			d.PerToken = []string{stage.PortX}
		}
		return d, err
	}
	return sp
}

// TestPerToken: an input handed over token by token gives, bit for bit, the
// outputs and gradients of the same graph slicing the whole input, and passes
// the contract kit (finite differences).
func TestPerToken(t *testing.T) {
	ctx := context.Background()
	flat := func(s *Stage) []float32 {
		x := tensor.New(2, 7, 5)
		for i := range x.Data {
			x.Data[i] = float32(i%13-6) / 9
		}
		req := &stage.ForwardRequest{NeedGrad: true, Params: tensor.Map{
			"w": tensor.From([]float32{.1, .2, .3, .4, .5, -.1, -.2, -.3, -.4, -.5, .3, .1, -.2, .4, 0}, 3, 5),
			"b": tensor.From([]float32{.1, -.1, .2}, 3), "a": tensor.From([]float32{0.8}), "frozen": tensor.New(3)},
			Inputs: tensor.Map{stage.PortX: x, "u": tensor.New(2, 7)}}
		res, err := s.Forward(ctx, toyConfig(), req)
		if err != nil {
			t.Fatal(err)
		}
		dz := tensor.New(2, 7, 3)
		for i := range dz.Data {
			dz.Data[i] = float32(i%7 - 3)
		}
		g, err := s.Backward(ctx, res.Handle, tensor.Map{stage.PortZ: dz})
		if err != nil {
			t.Fatal(err)
		}
		return flatten(res.Outputs, g.InputGrads, g.ParamGrads)
	}
	got, want := flat(New(perTokenSpec(true))), flat(New(perTokenSpec(false)))
	if len(got) != len(want) {
		t.Fatalf("%d values, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("value %d: per token %v, sliced %v", i, got[i], want[i])
		}
	}
	stagetest.Run(t, New(perTokenSpec(true)), stagetest.Config{Dims: toyConfig().Dims, B: 2, S: 4, Seed: 6,
		Inputs: tensor.Map{"u": tensor.New(2, 4)}})
}
