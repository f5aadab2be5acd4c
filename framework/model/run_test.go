package model_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// errInjected is the error a fake stage returns at its chosen call.
var errInjected = errors.New("injected failure")

// fault names the call at which a fake stage misbehaves: the n-th (from 1) call
// of op on the stage of a kind. op is "Forward" or "Backward" (the call returns
// errInjected), "Output" (Forward leaves out an output) or "Grad" (Backward
// leaves out the input gradient).
type fault struct {
	kind, op string
	n        int
}

func (f fault) String() string {
	if f.kind == "" {
		return "none"
	}
	return fmt.Sprintf("%s.%s#%d", f.kind, f.op, f.n)
}

// ledger is the handle accounting shared by the four fake stages of a model.
type ledger struct {
	fault  fault
	fired  bool
	calls  map[string]int    // "kind.op" → calls so far
	next   uint64            // last handle issued
	live   map[uint64]string // handle → kind, issued and not yet released
	shape  map[uint64][2]int // handle → B, chunk size
	issued int
	misuse []string // Backward or Release of a handle not live
}

func newLedger(f fault) *ledger {
	return &ledger{fault: f, calls: map[string]int{}, live: map[uint64]string{}, shape: map[uint64][2]int{}}
}

// hit counts a call and reports whether it is the faulty one.
func (l *ledger) hit(kind, op string) bool {
	l.calls[kind+"."+op]++
	if l.fault.kind == kind && l.fault.op == op && l.fault.n == l.calls[kind+"."+op] {
		l.fired = true
		return true
	}
	return false
}

// consume ends a handle's life; a second end (or a made-up handle) is misuse.
func (l *ledger) consume(kind, op string, h uint64) {
	if l.live[h] != kind {
		l.misuse = append(l.misuse, fmt.Sprintf("%s.%s of handle %d, which is not a live %s handle", kind, op, h, kind))
		return
	}
	delete(l.live, h)
	delete(l.shape, h)
}

// fakeStage is a stage of one kind whose outputs and gradients are zeros of
// the right shapes; perToken makes a liquid stage read e and write y, and an
// attention stage write y.
type fakeStage struct {
	kind     string
	perToken bool
	l        *ledger
	dims     map[string]int // from Describe
}

func (s *fakeStage) ports() (in, out []string) {
	switch s.kind {
	case stage.KindFlows:
		return []string{stage.PortX}, []string{stage.PortZ, stage.PortLDJ}
	case stage.KindODE:
		return []string{stage.PortZ, stage.PortTSpan}, []string{stage.PortE}
	case stage.KindAttention:
		out = []string{stage.PortC, stage.PortW}
		if s.perToken {
			out = append(out, stage.PortY)
		}
		return []string{stage.PortE, stage.PortTimestamps, stage.PortH}, out
	default:
		if s.perToken {
			return []string{stage.PortE, stage.PortTimestamps, stage.PortH}, []string{stage.PortY, stage.PortH}
		}
		return []string{stage.PortC, stage.PortH}, []string{stage.PortH}
	}
}

func (s *fakeStage) Describe(_ context.Context, cfg stage.Config) (*stage.Description, error) {
	s.dims = cfg.Dims
	in, out := s.ports()
	return &stage.Description{Kind: s.kind, Name: "fake", Version: "0", Inputs: in, Outputs: out,
		Params: []stage.ParamSpec{{Name: "w", Shape: []int{1}, Init: "zeros"}}}, nil
}

func (s *fakeStage) Forward(_ context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if s.l.hit(s.kind, "Forward") {
		return nil, errInjected
	}
	L, H := cfg.Dims["latent_dim"], cfg.Dims["hidden_size"]
	var first *tensor.Tensor // an input [B,size,·]
	for _, p := range []string{stage.PortX, stage.PortZ, stage.PortE} {
		if t := req.Inputs[p]; t != nil {
			first = t
			break
		}
	}
	if first == nil { // the seed's liquid cell: c [B,H]
		first = req.Inputs[stage.PortC]
	}
	B, size := first.Shape[0], 0
	if len(first.Shape) == 3 {
		size = first.Shape[1]
	}
	out := tensor.Map{}
	_, names := s.ports()
	for _, p := range names {
		switch p {
		case stage.PortZ:
			out[p] = tensor.New(B, size, L)
		case stage.PortE, stage.PortY:
			out[p] = tensor.New(B, size, H)
		case stage.PortLDJ, stage.PortW:
			out[p] = tensor.New(B, size)
		case stage.PortC, stage.PortH:
			out[p] = tensor.New(B, H)
		}
	}
	if s.l.hit(s.kind, "Output") {
		delete(out, names[0])
	}
	r := &stage.ForwardResult{Outputs: out}
	if req.NeedGrad {
		s.l.next++
		r.Handle = s.l.next
		s.l.live[r.Handle] = s.kind
		s.l.shape[r.Handle] = [2]int{B, size}
		s.l.issued++
	}
	return r, nil
}

func (s *fakeStage) Backward(_ context.Context, h uint64, _ tensor.Map) (*stage.BackwardResult, error) {
	sh := s.l.shape[h]
	B, size := sh[0], sh[1]
	// Backward releases the handle whether or not it succeeds.
	s.l.consume(s.kind, "Backward", h)
	if s.l.hit(s.kind, "Backward") {
		return nil, errInjected
	}
	D, L, H := s.dims["embedding_dim"], s.dims["latent_dim"], s.dims["hidden_size"]
	g := tensor.Map{}
	switch s.kind {
	case stage.KindFlows:
		g[stage.PortX] = tensor.New(B, size, D)
	case stage.KindODE:
		g[stage.PortZ] = tensor.New(B, size, L)
	case stage.KindAttention:
		g[stage.PortE] = tensor.New(B, size, H)
	default:
		if s.perToken {
			g[stage.PortE] = tensor.New(B, size, H)
		} else {
			g[stage.PortC] = tensor.New(B, H)
		}
	}
	if s.l.hit(s.kind, "Grad") {
		g = tensor.Map{}
	}
	return &stage.BackwardResult{InputGrads: g, ParamGrads: tensor.Map{"w": tensor.New(1)}}, nil
}

func (s *fakeStage) Release(_ context.Context, h uint64) error {
	s.l.consume(s.kind, "Release", h)
	return nil
}

var fakeDims = model.Dims{Vocab: 5, D: 4, L: 2, H: 3, F: 2, K: 1}

// fakeModel builds a model on fake stages sharing one ledger.
func fakeModel(t testing.TB, l *ledger, perTokenAttention, perTokenLiquid bool) *model.Model {
	t.Helper()
	return fakeModelDims(t, fakeDims, l, perTokenAttention, perTokenLiquid)
}

func fakeModelDims(t testing.TB, d model.Dims, l *ledger, perTokenAttention, perTokenLiquid bool) *model.Model {
	t.Helper()
	st := map[string]stage.Stage{
		stage.KindFlows:     &fakeStage{kind: stage.KindFlows, l: l},
		stage.KindODE:       &fakeStage{kind: stage.KindODE, l: l},
		stage.KindAttention: &fakeStage{kind: stage.KindAttention, perToken: perTokenAttention, l: l},
		stage.KindLiquid:    &fakeStage{kind: stage.KindLiquid, perToken: perTokenLiquid, l: l},
	}
	m, err := model.New(context.Background(), d, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(1); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunReleasesEveryHandleOnce fails each stage at each of its calls (and
// the consumer at each block) on a 3-chunk training batch, in each routing of
// the head's input, and checks that Run reports the failure and that every
// handle a stage issued was ended exactly once, by Backward or by Release.
func TestRunReleasesEveryHandleOnce(t *testing.T) {
	b := randomBatch(fakeDims, 2, 5, 1)
	routings := []struct {
		name                  string
		perTokenAttn, perTokL bool
	}{{"seed", false, false}, {"liquid-per-token", false, true}, {"both-per-token", true, true}, {"attention-per-token", true, false}}
	faults := []fault{{}} // no fault: a clean run
	for _, kind := range stage.Kinds {
		for _, op := range []string{"Forward", "Output", "Backward", "Grad"} {
			for n := 1; n <= 3; n++ {
				faults = append(faults, fault{kind, op, n})
			}
		}
	}
	for n := 1; n <= 4; n++ {
		faults = append(faults, fault{"consumer", "block", n})
	}
	for _, rt := range routings {
		for _, f := range faults {
			t.Run(rt.name+"/"+f.String(), func(t *testing.T) {
				l := newLedger(f)
				m := fakeModel(t, l, rt.perTokenAttn, rt.perTokL)
				consume := func(*model.Block) error {
					if l.hit("consumer", "block") {
						return errInjected
					}
					return nil
				}
				_, err := m.Run(context.Background(), b, model.RunOptions{ChunkSize: 2, HeadRows: 3, Train: true}, consume)
				switch {
				case !l.fired && err != nil:
					t.Fatalf("Run failed without a fault: %v", err)
				case l.fired && err == nil:
					t.Fatalf("%v fired but Run succeeded", f)
				case l.fired && (f.op == "Forward" || f.op == "Backward" || f.op == "block") && !errors.Is(err, errInjected):
					t.Fatalf("Run's error %q does not wrap the injected one", err)
				case l.fired && f.kind != "consumer" && !strings.Contains(err.Error(), f.kind+" stage"):
					t.Fatalf("Run's error %q does not name the %s stage", err, f.kind)
				}
				if l.issued == 0 && f != (fault{stage.KindFlows, "Forward", 1}) {
					t.Fatal("no handle issued")
				}
				for _, msg := range l.misuse {
					t.Error(msg)
				}
				if len(l.live) != 0 {
					t.Errorf("%d of %d handles never released: %v", len(l.live), l.issued, l.live)
				}
			})
		}
	}
}

// TestRunBackwardTakesEveryHandle: a clean training run hands every handle
// but the unused attention's to Backward (none is merely released), and the
// stages see one Backward per chunk each.
func TestRunBackwardTakesEveryHandle(t *testing.T) {
	b := randomBatch(fakeDims, 2, 5, 1)
	for _, tc := range []struct {
		perTokenAttn, perTokL bool
		backward              map[string]int // Backward calls by kind over 3 chunks
	}{
		// The seed's cell runs after the last chunk only; before it the
		// attention's context feeds nothing, so its handle is released.
		{false, false, map[string]int{stage.KindFlows: 3, stage.KindODE: 3, stage.KindAttention: 1, stage.KindLiquid: 1}},
		{false, true, map[string]int{stage.KindFlows: 3, stage.KindODE: 3, stage.KindAttention: 0, stage.KindLiquid: 3}},
		{true, true, map[string]int{stage.KindFlows: 3, stage.KindODE: 3, stage.KindAttention: 3, stage.KindLiquid: 3}},
	} {
		l := newLedger(fault{})
		m := fakeModel(t, l, tc.perTokenAttn, tc.perTokL)
		if _, err := m.Run(context.Background(), b, model.RunOptions{ChunkSize: 2, Train: true}, func(*model.Block) error { return nil }); err != nil {
			t.Fatal(err)
		}
		for kind, want := range tc.backward {
			if got := l.calls[kind+".Backward"]; got != want {
				t.Errorf("attention per-token %v, liquid per-token %v: %s Backward called %d times, want %d", tc.perTokenAttn, tc.perTokL, kind, got, want)
			}
		}
		if len(l.live) != 0 || len(l.misuse) != 0 {
			t.Errorf("handles left %v, misuse %v", l.live, l.misuse)
		}
	}
}

// TestRunWithoutTrainHoldsNoHandle: without Train no stage is asked to save
// anything, and nothing is released or run backward.
func TestRunWithoutTrainHoldsNoHandle(t *testing.T) {
	l := newLedger(fault{})
	m := fakeModel(t, l, true, true)
	res, err := m.Run(context.Background(), randomBatch(fakeDims, 2, 5, 1), model.RunOptions{ChunkSize: 2}, func(*model.Block) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if l.issued != 0 || l.calls[stage.KindODE+".Backward"] != 0 || len(l.misuse) != 0 {
		t.Errorf("%d handles issued, misuse %v", l.issued, l.misuse)
	}
	if l.calls[stage.KindODE+".Forward"] != 3 || len(res.H) != 2*fakeDims.H {
		t.Errorf("ode Forward called %d times over 3 chunks, h has %d values", l.calls[stage.KindODE+".Forward"], len(res.H))
	}
}

// BenchmarkRunHost measures what Run itself costs around the stages: the
// embedding, the head and the bookkeeping of 16 chunks, on fake stages that
// only allocate zeros.
func BenchmarkRunHost(b *testing.B) {
	d := model.Dims{Vocab: 512, D: 64, L: 16, H: 32, F: 2, K: 1}
	bt := randomBatch(d, 1, 4096, 1)
	for _, train := range []bool{false, true} {
		b.Run(fmt.Sprintf("train=%v", train), func(b *testing.B) {
			m := fakeModelDims(b, d, newLedger(fault{}), true, true)
			opt := model.RunOptions{ChunkSize: 256, Train: train}
			drop := func(*model.Block) error { return nil }
			for b.Loop() {
				if _, err := m.Run(context.Background(), bt, opt, drop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHeadRowsFor: the default block of logits is DefaultHeadRows rows until
// a block would pass 128 MiB, then fewer, never below 64.
func TestHeadRowsFor(t *testing.T) {
	for _, c := range []struct{ vocab, want int }{
		{10, model.DefaultHeadRows}, {32000, 1024}, {50265, 667}, {256000, 131}, {1 << 30, 64}, {0, model.DefaultHeadRows},
	} {
		if got := model.HeadRowsFor(c.vocab); got != c.want {
			t.Errorf("HeadRowsFor(%d) = %d, want %d", c.vocab, got, c.want)
		}
	}
}
