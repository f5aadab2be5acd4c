package model_test

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/causal"
	"liquidlab/plugins/attention/singlequery"
	"liquidlab/plugins/flows/coupling"
	"liquidlab/plugins/liquid/ltc"
	"liquidlab/plugins/liquid/scan"
	"liquidlab/plugins/ode/odefunc"
)

// stages returns new in-process instances of the built-in components: the
// seed's flows and ode, and the named attention ("singlequery", "causal") and
// liquid ("ltc", "scan") implementations.
func stages(t testing.TB, attention, liquid string) map[string]stage.Stage {
	t.Helper()
	st := map[string]stage.Stage{stage.KindFlows: coupling.New(), stage.KindODE: odefunc.New()}
	switch attention {
	case "singlequery":
		st[stage.KindAttention] = singlequery.New()
	case "causal":
		st[stage.KindAttention] = causal.New()
	default:
		t.Fatalf("no built-in attention %q", attention)
	}
	switch liquid {
	case "ltc":
		st[stage.KindLiquid] = ltc.New()
	case "scan":
		st[stage.KindLiquid] = scan.New()
	default:
		t.Fatalf("no built-in liquid %q", liquid)
	}
	return st
}

// seedStages are the seed's implementations of every kind.
func seedStages(t testing.TB) map[string]stage.Stage { return stages(t, "singlequery", "ltc") }

func seedModel(t testing.TB, d model.Dims, opts map[string]map[string]string) *model.Model {
	t.Helper()
	m, err := model.New(context.Background(), d, seedStages(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(7); err != nil {
		t.Fatal(err)
	}
	return m
}

func randomBatch(d model.Dims, b, s int, seed uint64) *model.Batch {
	rng := rand.New(rand.NewPCG(seed, 1))
	bt := &model.Batch{B: b, S: s, IDs: make([]int64, b*s), Timestamps: make([]float32, b*s), TSpan: []float32{0, 0.25, 0.5, 0.75, 1}}
	for i := range bt.IDs {
		bt.IDs[i] = rng.Int64N(int64(d.Vocab))
	}
	for i := 0; i < b; i++ {
		acc := float32(0)
		for j := 0; j < s; j++ {
			acc += rng.Float32()
			bt.Timestamps[i*s+j] = acc
		}
		for j := 0; j < s; j++ {
			bt.Timestamps[i*s+j] /= acc
		}
	}
	return bt
}

func collect(t testing.TB, m *model.Model, b *model.Batch, chunk int) ([]float32, *model.Result) {
	t.Helper()
	logits := make([]float32, b.B*b.S*m.Dims.Vocab)
	v := m.Dims.Vocab
	res, err := m.Run(context.Background(), b, model.RunOptions{ChunkSize: chunk, HeadRows: 7}, func(blk *model.Block) error {
		for i, p := range blk.Index {
			copy(logits[p*v:(p+1)*v], blk.Logits[i*v:(i+1)*v])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return logits, res
}

// TestChunkedMatchesWhole: with a fixed-step solver the model is per-token up to
// the attention, whose online softmax is exact over chunks, so streaming the
// sequence in uneven chunks must give the unchunked logits, h and ldj.
func TestChunkedMatchesWhole(t *testing.T) {
	d := model.Dims{Vocab: 50, D: 8, L: 4, H: 6, F: 5, K: 2}
	for _, liq := range []string{"ltc", "scan", "scan-sequential"} {
		opts := map[string]map[string]string{stage.KindODE: {"method": "rk4"}, stage.KindLiquid: {}}
		if liq == "ltc" {
			opts[stage.KindLiquid]["method"] = "rk4"
		}
		m := seedModel(t, d, opts)
		if liq != "ltc" {
			d := d
			if liq == "scan-sequential" {
				d.Block = model.BlockSequential
			}
			// The fixed pipeline: causal attention and the liquid scan both feed
			// the head, both carry state across chunks.
			var err error
			opts[stage.KindAttention] = map[string]string{"window": "5"}
			if m, err = model.New(context.Background(), d, stages(t, "causal", "scan"), opts); err != nil {
				t.Fatal(err)
			}
			if err := m.Init(7); err != nil {
				t.Fatal(err)
			}
			for _, p := range m.Params.List { // open the zero-initialised output branch
				for i := range p.Value.Data {
					p.Value.Data[i] += 0.05
				}
			}
		}
		b := randomBatch(d, 2, 23, 3)
		whole, rw := collect(t, m, b, 0)
		for _, chunk := range []int{23, 10, 4, 1} {
			got, rc := collect(t, m, b, chunk)
			for name, pair := range map[string][2][]float32{"logits": {whole, got}, "h": {rw.H, rc.H}, "ldj": {rw.LDJ, rc.LDJ}} {
				for i := range pair[0] {
					if math.Abs(float64(pair[0][i]-pair[1][i])) > 2e-5*(1+math.Abs(float64(pair[0][i]))) {
						t.Fatalf("%s chunk %d: %s[%d] = %v, unchunked %v", liq, chunk, name, i, pair[1][i], pair[0][i])
					}
				}
			}
		}
	}
}

// TestTrainOutputsArena: a training Forward's outputs come from the stage's
// reusable arena (stage.OutputBuf), which its next Forward reuses. Three
// batches of three chunks each on one model give the third batch's gradients
// bit for bit as a fresh model's single batch, whose first calls find no slab
// and make their outputs — they would not if a chunk's outputs were
// overwritten before every Backward of the chunk had read them — for the
// seed's pipeline and the causal attention → liquid scan ones, and the flows'
// and ODE's arenas have slabs by then.
func TestTrainOutputsArena(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 6, F: 5, K: 2}
	for _, pipe := range []string{"seed", "scan", "scan-sequential"} {
		newModel := func() *model.Model {
			opts := map[string]map[string]string{stage.KindODE: {"method": "rk4"}, stage.KindLiquid: {"method": "rk4"}}
			if pipe == "seed" {
				return seedModel(t, d, opts)
			}
			d := d
			if pipe == "scan-sequential" {
				d.Block = model.BlockSequential
			}
			opts[stage.KindAttention], opts[stage.KindLiquid] = map[string]string{"window": "5"}, map[string]string{}
			m, err := model.New(context.Background(), d, stages(t, "causal", "scan"), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Init(7); err != nil {
				t.Fatal(err)
			}
			return m
		}
		grads := func(m *model.Model, seeds ...uint64) map[string][]float32 {
			t.Helper()
			for _, seed := range seeds {
				b := randomBatch(d, 2, 9, seed)
				m.Params.ZeroGrad()
				var loss float64
				if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true, ChunkSize: 4},
					model.CrossEntropy(b.IDs, -1, len(b.IDs), &loss, nil)); err != nil {
					t.Fatal(err)
				}
			}
			g := map[string][]float32{}
			for _, p := range m.Params.List {
				if p.Grad != nil {
					g[p.Name] = append([]float32(nil), p.Grad.Data...)
				}
			}
			return g
		}
		m := newModel()
		got, want := grads(m, 1, 2, 3), grads(newModel(), 3)
		for name, w := range want {
			for i := range w {
				if got[name][i] != w[i] {
					t.Fatalf("%s: %s[%d] = %v after three batches, a fresh model's %v", pipe, name, i, got[name][i], w[i])
				}
			}
		}
		for _, kind := range []string{stage.KindFlows, stage.KindODE} {
			if model.ForwardArenaLen(m, kind) == 0 {
				t.Errorf("%s: %s has no Forward slab after three batches", pipe, kind)
			}
		}
	}
}

// TestCheckpointRoundTrip saves a model and loads it into a fresh one; the
// fixture (PyTorch state_dict names with a "param." prefix) loads as well.
func TestCheckpointRoundTrip(t *testing.T) {
	d := model.Dims{Vocab: 97, D: 16, L: 4, H: 8, F: 12, K: 4}
	a := seedModel(t, d, nil)
	p := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := a.SaveCheckpoint(p, nil); err != nil {
		t.Fatal(err)
	}
	b := seedModel(t, d, nil)
	if err := b.Params.Init(99); err != nil {
		t.Fatal(err)
	}
	if err := b.LoadCheckpoint(p); err != nil {
		t.Fatal(err)
	}
	for i, pa := range a.Params.List {
		pb := b.Params.List[i]
		for j := range pa.Value.Data {
			if pa.Value.Data[j] != pb.Value.Data[j] {
				t.Fatalf("%s differs after the round trip", pa.Name)
			}
		}
	}
	if err := b.LoadCheckpoint("../../testdata/fixtures/seed_rk4.safetensors"); err != nil {
		t.Fatalf("PyTorch state_dict: %v", err)
	}
	c := seedModel(t, model.Dims{Vocab: 97, D: 16, L: 4, H: 8, F: 12, K: 3}, nil)
	if err := c.LoadCheckpoint(p); err == nil {
		t.Error("a checkpoint with four flows loaded into a model with three")
	}
}

// TestTiedOutput: with tie_output the head's weight is the embedding matrix
// (one parameter, both names in the state_dict) and receives its gradient.
func TestTiedOutput(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 8, F: 5, K: 1, Tie: true}
	m := seedModel(t, d, map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindLiquid: {"method": "euler"}})
	untied := seedModel(t, model.Dims{Vocab: 40, D: 8, L: 4, H: 8, F: 5, K: 1}, map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindLiquid: {"method": "euler"}})
	if got, want := m.Params.Count(), untied.Params.Count()-40*8; got != want {
		t.Errorf("tied model has %d parameters, want %d", got, want)
	}
	if m.Params.Get("output_proj.weight") != m.Params.Get("liquid_embedding.embedding.weight") {
		t.Fatal("output_proj.weight is not the embedding")
	}
	b := randomBatch(d, 1, 6, 2)
	var loss float64
	m.Params.ZeroGrad()
	if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true}, model.CrossEntropy(b.IDs, -1, 6, &loss, nil)); err != nil {
		t.Fatal(err)
	}
	g := m.Params.Get("output_proj.weight").Grad.Data
	nonzero := 0
	for _, v := range g {
		if v != 0 {
			nonzero++
		}
	}
	// The head's gradient touches every row, not only the 6 looked-up ones.
	if nonzero < 30*8 {
		t.Errorf("only %d gradient entries of the tied matrix are non-zero", nonzero)
	}
}

// TestModelGradientsFD checks the whole model's parameter gradients against
// central finite differences for pipelines whose per-token stages feed the head
// (the host's routing of the head gradient), on a tiny model with fixed-step
// solvers.
func TestModelGradientsFD(t *testing.T) {
	d := model.Dims{Vocab: 23, D: 6, L: 3, H: 4, F: 5, K: 2}
	for _, combo := range [][3]string{{"singlequery", "ltc"}, {"singlequery", "scan"}, {"causal", "ltc"}, {"causal", "scan"}, {"causal", "scan", model.BlockSequential}} {
		t.Run(combo[0]+"+"+combo[1]+"+"+combo[2], func(t *testing.T) {
			st := stages(t, combo[0], combo[1])
			d := d
			d.Block = combo[2]
			opts := map[string]map[string]string{stage.KindODE: {"method": "rk4"}, stage.KindLiquid: {}}
			if combo[1] == "ltc" {
				opts[stage.KindLiquid]["method"] = "rk4"
			}
			if combo[0] == "causal" {
				opts[stage.KindAttention] = map[string]string{"window": "3"}
			}
			m, err := model.New(context.Background(), d, st, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Init(3); err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(9, 9))
			for _, p := range m.Params.List { // every path open: gates, zero-initialised outputs
				for i := range p.Value.Data {
					p.Value.Data[i] += float32(0.3 * rng.NormFloat64())
				}
			}
			b := randomBatch(d, 2, 7, 5)
			// loss = mean cross-entropy + 0.01·Σh (h the final liquid state).
			lossAt := func(train bool) float64 {
				var loss float64
				m.Params.ZeroGrad()
				res, err := m.Run(context.Background(), b, model.RunOptions{Train: train, ChunkSize: 7, DH: func(h, dh []float32) {
					for i := range dh {
						dh[i] = 0.01
					}
				}}, model.CrossEntropy(b.IDs, -1, len(b.IDs), &loss, nil))
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range res.H {
					loss += 0.01 * float64(v)
				}
				return loss
			}
			lossAt(true)
			grads := map[string][]float32{}
			for _, p := range m.Params.List {
				if p.Grad != nil {
					grads[p.Name] = append([]float32(nil), p.Grad.Data...)
				}
			}
			checked := 0
			for _, p := range m.Params.List {
				if p.Grad == nil || p.Kind == "host" {
					continue
				}
				for _, i := range []int{0, len(p.Value.Data) / 2, len(p.Value.Data) - 1} {
					old := p.Value.Data[i]
					const h = 3e-3
					p.Value.Data[i] = old + h
					lp := lossAt(false)
					p.Value.Data[i] = old - h
					lm := lossAt(false)
					p.Value.Data[i] = old
					num := (lp - lm) / (2 * h)
					ana := float64(grads[p.Name][i])
					if math.Abs(num-ana) > 2e-3+5e-2*math.Max(math.Abs(num), math.Abs(ana)) {
						t.Errorf("%s[%d]: analytic %.5g, finite difference %.5g", p.Name, i, ana, num)
					}
					checked++
				}
			}
			if checked == 0 {
				t.Fatal("no parameter checked")
			}
		})
	}
}

// TestRowsSkipsOnlyUnreadRows: with RunOptions.Rows the logits of the marked
// positions, and the final state, are those of a full run, for the positional
// attention patterns in both blocks and any chunking; Rows with Train is an
// error.
func TestRowsSkipsOnlyUnreadRows(t *testing.T) {
	d := model.Dims{Vocab: 40, D: 8, L: 4, H: 8, F: 5, K: 2}
	for _, tc := range []struct{ block, pattern string }{{"", "full"}, {model.BlockSequential, "full"}, {model.BlockSequential, "window"}, {"", "global"}} {
		d := d
		d.Block = tc.block
		opts := map[string]map[string]string{stage.KindODE: {"method": "rk4"}, stage.KindLiquid: {},
			stage.KindAttention: {"pattern": tc.pattern, "heads": "2", "window": "70", "qscale": "log"}}
		m, err := model.New(context.Background(), d, stages(t, "causal", "scan"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Init(7); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.Params.List { // open the zero-initialised output branch
			for i := range p.Value.Data {
				p.Value.Data[i] += 0.05
			}
		}
		b := randomBatch(d, 2, 300, 3)
		whole, rw := collect(t, m, b, 0)
		read := make([]bool, b.B*b.S)
		for _, p := range []int{5, 150, 299, 300 + 70, 300 + 298} {
			read[p] = true
		}
		for _, chunk := range []int{0, 128, 77} {
			got := make([]float32, len(whole))
			v := d.Vocab
			res, err := m.Run(context.Background(), b, model.RunOptions{ChunkSize: chunk, Rows: read}, func(blk *model.Block) error {
				for i, p := range blk.Index {
					copy(got[p*v:(p+1)*v], blk.Logits[i*v:(i+1)*v])
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for p, r := range read {
				if !r {
					continue
				}
				for j := 0; j < v; j++ {
					if a, w := got[p*v+j], whole[p*v+j]; math.Abs(float64(a-w)) > 1e-5*(1+math.Abs(float64(w))) {
						t.Fatalf("block %q %s chunk %d: logit[%d][%d] = %v with Rows, %v without", tc.block, tc.pattern, chunk, p, j, a, w)
					}
				}
			}
			for i := range rw.H {
				if math.Abs(float64(res.H[i]-rw.H[i])) > 1e-5*(1+math.Abs(float64(rw.H[i]))) {
					t.Fatalf("block %q %s chunk %d: final state differs with Rows", tc.block, tc.pattern, chunk)
				}
			}
		}
		if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true, Rows: read}, model.CrossEntropy(b.IDs, -1, len(b.IDs), new(float64), nil)); err == nil {
			t.Errorf("Rows with Train: no error")
		}
	}
}

// TestEmbeddingGradRows: the embedding's gradient is cleared and summed by
// the rows the batch touched. Two training steps with ZeroGrad between them
// leave exactly the second batch's gradient (a fresh model's), the clipping
// norm is the one over every value, and a tied head (which writes every row)
// still has all of its gradient cleared.
func TestEmbeddingGradRows(t *testing.T) {
	opts := map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindLiquid: {"method": "euler"}}
	for _, tie := range []bool{false, true} {
		d := model.Dims{Vocab: 40, D: 8, L: 4, H: 8, F: 5, K: 1, Tie: tie}
		step := func(m *model.Model, seed uint64) {
			t.Helper()
			b := randomBatch(d, 2, 5, seed)
			var loss float64
			m.Params.ZeroGrad()
			if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true}, model.CrossEntropy(b.IDs, -1, 5, &loss, nil)); err != nil {
				t.Fatal(err)
			}
		}
		m, fresh := seedModel(t, d, opts), seedModel(t, d, opts)
		step(m, 1)
		step(m, 2)
		step(fresh, 2)
		emb := m.Params.Get("liquid_embedding.embedding.weight")
		want := fresh.Params.Get("liquid_embedding.embedding.weight").Grad.Data
		dense := 0.0
		for i, v := range emb.Grad.Data {
			if v != want[i] {
				t.Fatalf("tie %v: grad[%d] = %v after two steps, a fresh model's one step %v", tie, i, v, want[i])
			}
			dense += float64(v) * float64(v)
		}
		if got := emb.AddGradSumSquares(0); got != dense {
			t.Errorf("tie %v: AddGradSumSquares %v, over every value %v", tie, got, dense)
		}
		// across parameters: one running sum, as a loop over every value
		all, run := 0.0, 0.0
		for _, p := range m.Params.List {
			if p.Grad == nil {
				continue
			}
			for _, v := range p.Grad.Data {
				all += float64(v) * float64(v)
			}
			run = p.AddGradSumSquares(run)
		}
		if run != all {
			t.Errorf("tie %v: running sum over parameters %v, over every value %v", tie, run, all)
		}
		emb.ScaleGrad(0.5)
		for i, v := range emb.Grad.Data {
			if v != want[i]*0.5 {
				t.Fatalf("tie %v: scaled grad[%d] = %v, want %v", tie, i, v, want[i]*0.5)
			}
		}
		m.Params.ZeroGrad()
		for i, v := range emb.Grad.Data {
			if v != 0 {
				t.Fatalf("tie %v: grad[%d] = %v after ZeroGrad", tie, i, v)
			}
		}
	}
}
