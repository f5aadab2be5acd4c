package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/stage"
)

// streamModel builds an initialised model of the built-in stages with the
// output branches opened (the causal attention's out projection starts at zero,
// which would hide it from the logits).
func streamModel(t *testing.T, d model.Dims, attention, liquid, method string) *model.Model {
	t.Helper()
	opts := map[string]map[string]string{stage.KindODE: {"method": method}, stage.KindLiquid: {}}
	if attention == "causal" {
		opts[stage.KindAttention] = map[string]string{"window": "5"}
	}
	m, err := model.New(context.Background(), d, stages(t, attention, liquid), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(11); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params.List {
		for i := range p.Value.Data {
			p.Value.Data[i] += 0.05
		}
	}
	return m
}

// feedAll feeds batch b to a new stream in pieces of the given sizes (cycled),
// and returns, for every piece, where it ended and the logits the stream gave.
func feedAll(t *testing.T, m *model.Model, b *model.Batch, sizes []int) (ends []int, logits [][]float32) {
	t.Helper()
	st, err := m.NewStream(context.Background(), b.B, b.TSpan)
	if err != nil {
		t.Fatal(err)
	}
	for s0, i := 0, 0; s0 < b.S; i++ {
		n := min(sizes[i%len(sizes)], b.S-s0)
		ids := make([]int64, 0, b.B*n)
		ts := make([]float32, 0, b.B*n)
		for r := 0; r < b.B; r++ {
			ids = append(ids, b.IDs[r*b.S+s0:r*b.S+s0+n]...)
			ts = append(ts, b.Timestamps[r*b.S+s0:r*b.S+s0+n]...)
		}
		got, err := st.Feed(ids, ts)
		if err != nil {
			t.Fatalf("Feed of %d tokens at %d: %v", n, s0, err)
		}
		s0 += n
		ends = append(ends, s0)
		logits = append(logits, append([]float32(nil), got...))
		if st.Pos() != s0 {
			t.Fatalf("Pos() = %d after %d tokens", st.Pos(), s0)
		}
	}
	return ends, logits
}

// TestStreamMatchesRun: feeding a sequence token by token, and in random chunk
// sizes, gives the logits of one Run over the whole sequence at every position
// fed last, for the per-token pipelines: the scan (next to the seed's attention,
// which does not reach the logits), and the scan with the causal window
// attention (window 5, so the cache wraps many times). With the fixed-step
// embedding ODE the kernels agree to float32 rounding; with dopri5 the step size
// is chosen per chunk, so the match is to about the solver's tolerance (1e-3).
func TestStreamMatchesRun(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 6, F: 5, K: 2}
	rng := rand.New(rand.NewPCG(5, 5))
	random := make([]int, 50)
	for i := range random {
		random[i] = 1 + rng.IntN(9)
	}
	for _, c := range []struct {
		attention, method string
		tol               float64
	}{
		{"singlequery", "rk4", 1e-5},
		{"causal", "rk4", 1e-5},
		{"causal", "euler", 1e-5},
		{"causal", "dopri5", 5e-3},
	} {
		m := streamModel(t, d, c.attention, "scan", c.method)
		b := randomBatch(d, 2, 37, 9)
		whole, _ := collect(t, m, b, 0)
		v := d.Vocab
		for _, sizes := range [][]int{{1}, random, {37}} {
			ends, got := feedAll(t, m, b, sizes)
			worst := 0.0
			for i, end := range ends {
				for r := 0; r < b.B; r++ {
					want := whole[(r*b.S+end-1)*v : (r*b.S+end)*v]
					row := got[i][r*v : (r+1)*v]
					scale := 0.0
					for _, x := range want {
						scale = max(scale, math.Abs(float64(x)))
					}
					for j := range want {
						worst = max(worst, math.Abs(float64(row[j]-want[j]))/scale)
					}
				}
			}
			if worst > c.tol {
				t.Errorf("%s + scan, ode %s, feeds %v…: logits differ from Run's by %.3g relative (tolerance %g)",
					c.attention, c.method, sizes[:min(5, len(sizes))], worst, c.tol)
			}
			t.Logf("%s + scan, ode %s, feeds %v…: max relative difference %.3g", c.attention, c.method, sizes[:min(5, len(sizes))], worst)
		}
	}
}

// TestStreamRefusesWholeSequenceModels: the seed's cell (ltc) computes h from the
// whole sequence, so its model cannot stream; neither can a per-token stage that
// declares no state to carry.
func TestStreamRefusesWholeSequenceModels(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 6, F: 5, K: 2}
	for _, att := range []string{"singlequery", "causal"} {
		m := streamModel(t, d, att, "ltc", "rk4")
		err := m.CanStream()
		if err == nil || !strings.Contains(err.Error(), "ltc") || !strings.Contains(err.Error(), "not per-token") {
			t.Errorf("%s + ltc: CanStream() = %v, want a refusal naming ltc", att, err)
		}
		if _, err := m.NewStream(context.Background(), 1, nil); err == nil {
			t.Errorf("%s + ltc: NewStream succeeded", att)
		}
	}
	for _, perTokenAttention := range []bool{false, true} {
		m := fakeModel(t, newLedger(fault{}), perTokenAttention, true)
		want := "liquid stage \"fake\" writes per-token"
		if err := m.CanStream(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fake per-token stages without state: CanStream() = %v, want %q", err, want)
		}
	}
}

// TestStreamBadInput: bad feeds are errors that leave the stream usable, and
// the stream then continues as if they had not happened.
func TestStreamBadInput(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 6, F: 5, K: 2}
	m := streamModel(t, d, "causal", "scan", "rk4")
	b := randomBatch(d, 1, 12, 4)
	whole, _ := collect(t, m, b, 0)
	ctx := context.Background()
	if _, err := m.NewStream(ctx, 0, nil); err == nil {
		t.Error("NewStream with B = 0 succeeded")
	}
	if _, err := m.NewStream(ctx, 1, []float32{0}); err == nil {
		t.Error("NewStream with a t_span of one time succeeded")
	}
	st, err := m.NewStream(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, feed := range map[string]func() error{
		"odd count":    func() error { _, err := st.Feed([]int64{1, 2, 3}, []float32{.1, .2, .3}); return err },
		"none":         func() error { _, err := st.Feed(nil, nil); return err },
		"bad id":       func() error { _, err := st.Feed([]int64{1, 40}, []float32{.1, .1}); return err },
		"timestamps":   func() error { _, err := st.Feed([]int64{1, 2}, []float32{.1}); return err },
		"step back":    func() error { _, err := st.Feed([]int64{1, 2, 3, 4}, []float32{.5, .1, .1, .2}); return err },
		"negative id":  func() error { _, err := st.Feed([]int64{-1, 2}, []float32{.1, .1}); return err },
		"infinite ts.": func() error { _, err := st.Feed([]int64{1, 2}, []float32{float32(math.Inf(1)), .1}); return err },
	} {
		if err := feed(); err == nil {
			t.Errorf("Feed with %s succeeded", name)
		}
		if st.Pos() != 0 {
			t.Fatalf("after a failed Feed (%s), Pos() = %d", name, st.Pos())
		}
	}
	// The failed feeds left nothing behind: feeding b's row now matches Run.
	st, err = m.NewStream(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := d.Vocab
	for i := 0; i < b.S; i++ {
		if i == 6 {
			if _, err := st.Feed([]int64{3}, []float32{-1}); err == nil {
				t.Fatal("Feed stepping back in time succeeded")
			}
		}
		got, err := st.Feed(b.IDs[i:i+1], b.Timestamps[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < v; j++ {
			if w := whole[i*v+j]; math.Abs(float64(got[j]-w)) > 1e-5*(1+math.Abs(float64(w))) {
				t.Fatalf("token %d: logit %d = %v, Run %v", i, j, got[j], w)
			}
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	st, _ = m.NewStream(cctx, 1, nil)
	cancel()
	if _, err := st.Feed([]int64{1}, []float32{.1}); err == nil {
		t.Error("Feed on a cancelled context succeeded")
	}
}

// BenchmarkStreamToken is one token fed to a stream that has seen 1000, at the
// size of experiments/fix-attention.toml (causal window 64 + scan, euler).
func BenchmarkStreamToken(b *testing.B) {
	d := model.Dims{Vocab: 2000, D: 64, L: 32, H: 64, F: 32, K: 2}
	opts := map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindAttention: {"window": "64"}}
	m, err := model.New(context.Background(), d, stages(b, "causal", "scan"), opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Init(1); err != nil {
		b.Fatal(err)
	}
	st, err := m.NewStream(context.Background(), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	prompt := randomBatch(d, 1, 1000, 1)
	for i := range prompt.Timestamps {
		prompt.Timestamps[i] = float32(i+1) / 1e6
	}
	if _, err := st.Feed(prompt.IDs, prompt.Timestamps); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.Feed([]int64{int64(i % d.Vocab)}, []float32{float32(1000+i) / 1e6}); err != nil {
			b.Fatal(err)
		}
	}
}
