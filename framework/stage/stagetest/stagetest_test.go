package stagetest

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// fake is a small stateful stage: a running sum of squashed inputs,
//
//	acc_t = acc_{t−1} + tanh(w ⊙ e_t),  y_t = acc_t,  c = acc_S,
//
// acc_{−1} = input "h" on the first chunk, else the carried state "acc". Its
// faults are switched on one at a time to check that the kit catches them.
type fake struct {
	stage.Handles
	modifiesInput bool // Forward writes into input e
	wrongGrad     bool // the gradient of w is off by a factor
	leaks         bool // Backward keeps a handle alive
	ignoresState  bool // Forward checks the carried state but restarts from input h
	panicsOnNil   bool // Forward dereferences a nil request
	vagueErrors   bool // errors about input e do not say which tensor is wrong
	dropsGrad     bool // Backward returns no gradient for input h
}

type fakeSaved struct {
	B, S, H int
	w, e    []float32
}

func (f *fake) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	H, err := cfg.Dim("hidden_size")
	if err != nil {
		return nil, err
	}
	return &stage.Description{
		Kind: "liquid", Name: "fake", Version: "0",
		Params:  []stage.ParamSpec{{Name: "w", Shape: []int{H}, Init: "ones"}},
		State:   []stage.StateSpec{{Name: "acc", Shape: []int{-1, H}}},
		Inputs:  []string{stage.PortE, stage.PortH},
		Outputs: []string{stage.PortY, stage.PortC},
	}, nil
}

func (f *fake) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil && !f.panicsOnNil {
		return nil, fmt.Errorf("fake: nil request")
	}
	H := cfg.Dims["hidden_size"]
	e, err := req.Inputs.Need(stage.PortE, -1, -1, H)
	if err != nil && f.vagueErrors {
		return nil, fmt.Errorf("fake: bad input")
	}
	if err != nil {
		return nil, err
	}
	B, S := e.Shape[0], e.Shape[1]
	w, err := req.Params.Need("w", H)
	if err != nil {
		return nil, err
	}
	h, err := req.Inputs.Need(stage.PortH, B, H)
	if err != nil {
		return nil, err
	}
	acc := append([]float32(nil), h.Data...)
	if _, ok := req.State["acc"]; ok {
		st, err := req.State.Need("acc", B, H)
		if err != nil {
			return nil, err
		}
		if !f.ignoresState {
			copy(acc, st.Data)
		}
	}
	y := make([]float32, B*S*H)
	for b := 0; b < B; b++ {
		for t := 0; t < S; t++ {
			for j := 0; j < H; j++ {
				i := (b*S+t)*H + j
				acc[b*H+j] += float32(math.Tanh(float64(w.Data[j] * e.Data[i])))
				y[i] = acc[b*H+j]
			}
		}
	}
	if f.modifiesInput {
		e.Data[0] = y[0]
	}
	res := &stage.ForwardResult{
		Outputs: tensor.Map{stage.PortY: tensor.From(y, B, S, H), stage.PortC: tensor.From(append([]float32(nil), acc...), B, H)},
		State:   tensor.Map{"acc": tensor.From(acc, B, H)},
	}
	if req.NeedGrad {
		res.Handle = f.Put(&fakeSaved{B: B, S: S, H: H, w: append([]float32(nil), w.Data...), e: e.Data})
	}
	return res, nil
}

func (f *fake) Backward(ctx context.Context, handle uint64, g tensor.Map) (*stage.BackwardResult, error) {
	v, err := f.Take(handle)
	if err != nil {
		return nil, err
	}
	if f.leaks {
		f.Put(v)
	}
	sv := v.(*fakeSaved)
	B, S, H := sv.B, sv.S, sv.H
	dy, err := g.Need(stage.PortY, B, S, H)
	if err != nil {
		return nil, err
	}
	dc, err := g.Need(stage.PortC, B, H)
	if err != nil {
		return nil, err
	}
	de, dh, dw := tensor.New(B, S, H), tensor.New(B, H), tensor.New(H)
	for b := 0; b < B; b++ {
		for j := 0; j < H; j++ {
			ga := dc.Data[b*H+j]
			for t := S - 1; t >= 0; t-- {
				i := (b*S+t)*H + j
				ga += dy.Data[i]
				th := math.Tanh(float64(sv.w[j] * sv.e[i]))
				d := ga * float32(1-th*th)
				de.Data[i] = d * sv.w[j]
				dw.Data[j] += d * sv.e[i]
			}
			dh.Data[b*H+j] = ga
		}
	}
	if f.wrongGrad {
		for j := range dw.Data {
			dw.Data[j] *= 1.1
		}
	}
	res := &stage.BackwardResult{
		InputGrads: tensor.Map{stage.PortE: de, stage.PortH: dh},
		ParamGrads: tensor.Map{"w": dw},
	}
	if f.dropsGrad {
		delete(res.InputGrads, stage.PortH)
	}
	return res, nil
}

func (f *fake) Release(ctx context.Context, handle uint64) error {
	f.Drop(handle)
	return nil
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB // nil: the kit uses only the methods below
	mu         sync.Mutex
	errs, logs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

// record runs the kit against a recorder, on its own goroutine so Fatalf can
// stop it.
func record(s stage.Stage, cfg Config) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(r, s, cfg)
	}()
	<-done
	return r
}

var fakeConfig = Config{Dims: map[string]int{"hidden_size": 3}, B: 2, S: 7, Seed: 1}

func TestFakePasses(t *testing.T) {
	Run(t, &fake{}, fakeConfig)
	if r := record(&fake{}, fakeConfig); len(r.errs) != 0 {
		t.Errorf("the recorder saw failures of a correct stage: %q", r.errs)
	}
}

func TestKitCatchesBrokenStages(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *fake
		want string
	}{
		{"modifies its input", &fake{modifiesInput: true}, `input "e" was modified`},
		{"wrong gradient", &fake{wrongGrad: true}, "gradients: parameter w: directional derivative"},
		{"leaks a handle", &fake{leaks: true}, "1 live handles, want 0"},
		{"ignores carried state", &fake{ignoresState: true}, `chunked = unchunked: output "y"`},
		{"panics on a nil request", &fake{panicsOnNil: true}, "Forward(nil request): panicked"},
		{"drops a gradient", &fake{dropsGrad: true}, "gradients: input h: no gradient returned, but the loss depends on it"},
		{"vague errors", &fake{vagueErrors: true}, `error "fake: bad input" does not name "e"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := record(tc.f, fakeConfig)
			found := false
			for _, e := range r.errs {
				found = found || strings.Contains(e, tc.want)
			}
			if !found {
				t.Errorf("no failure mentions %q; failures: %q", tc.want, r.errs)
			}
		})
	}
}

func TestKitOptions(t *testing.T) {
	// A skipped chunk check is logged, not failed; an exempt output is not compared.
	cfg := fakeConfig
	cfg.SkipChunked = "test"
	if r := record(&fake{ignoresState: true}, cfg); len(r.errs) != 0 || !strings.Contains(strings.Join(r.logs, "\n"), "skipped: test") {
		t.Errorf("SkipChunked: failures %q, logs %q", r.errs, r.logs)
	}
	cfg = fakeConfig
	cfg.ChunkExempt = map[string]string{stage.PortY: "test"}
	r := record(&fake{ignoresState: true}, cfg)
	for _, e := range r.errs {
		if strings.Contains(e, `"y"`) {
			t.Errorf("exempt output compared: %s", e)
		}
	}
	if len(r.errs) == 0 {
		t.Error("output c, not exempt, was not caught")
	}
	// An input declared optional must be optional.
	cfg = fakeConfig
	cfg.Optional = []string{stage.PortH}
	if r := record(&fake{}, cfg); !strings.Contains(strings.Join(r.errs, "\n"), `Forward without input "h" (Config.Optional)`) {
		t.Errorf("required input declared optional: %q", r.errs)
	}
	// A declared NoGrad input that has a gradient is reported.
	cfg = fakeConfig
	cfg.NoGrad = []string{stage.PortH}
	if r := record(&fake{}, cfg); !strings.Contains(strings.Join(r.errs, "\n"), `gradient for input "h"`) {
		t.Errorf("NoGrad input with a gradient: %q", r.errs)
	}
	// Bad configurations stop the kit with a reason.
	cfg = fakeConfig
	cfg.Inputs = tensor.Map{"q": tensor.New(1)}
	if r := record(&fake{}, cfg); len(r.errs) != 1 || !strings.Contains(r.errs[0], `Config.Inputs["q"]`) {
		t.Errorf("unknown input in Config.Inputs: %q", r.errs)
	}
	if r := record(&fake{}, Config{}); len(r.errs) != 1 || !strings.Contains(r.errs[0], "hidden_size") {
		t.Errorf("missing dimension: %q", r.errs)
	}
}

func TestHelpers(t *testing.T) {
	x := tensor.From([]float32{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}, 2, 3, 2)
	a, b := sliceTokens(x, 0, 1), sliceTokens(x, 1, 3)
	if fmt.Sprint(a.Data, b.Data) != "[0 1 10 11] [2 3 4 5 12 13 14 15]" {
		t.Errorf("sliceTokens: %v %v", a.Data, b.Data)
	}
	if got := concatTokens([]*tensor.Tensor{a, b}); fmt.Sprint(got.Shape, got.Data) != fmt.Sprint(x.Shape, x.Data) {
		t.Errorf("concatTokens: %v %v", got.Shape, got.Data)
	}
	for S := 3; S < 20; S++ {
		sum := 0
		for _, n := range chunkLengths(S) {
			sum += n
		}
		if sum != S {
			t.Errorf("chunkLengths(%d) = %v", S, chunkLengths(S))
		}
	}
}
