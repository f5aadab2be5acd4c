package model_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/num/bf16"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
	"liquidlab/framework/train"
)

// euler keeps the tiny models' solvers fixed-step (fast and deterministic).
var euler = map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindLiquid: {"method": "euler"}}

func headDims(prec string) model.Dims {
	return model.Dims{Vocab: 997, D: 16, L: 8, H: 64, F: 8, K: 1, HeadPrecision: prec}
}

func needBF16(t *testing.T) {
	t.Helper()
	if !bf16.Available() {
		t.Skip("bf16 head unavailable; this CPU has ", bf16.CPU())
	}
}

// TestHeadPrecisionErrors: an unknown precision is refused, and bf16 on a CPU
// without AVX512_BF16 is a clear error at construction, never a fallback.
func TestHeadPrecisionErrors(t *testing.T) {
	if err := headDims("fp16").Validate(); err == nil || !strings.Contains(err.Error(), "head_precision") {
		t.Errorf("head_precision fp16: %v, want an error naming head_precision", err)
	}
	for _, p := range []string{"", "fp32"} {
		if err := headDims(p).Validate(); err != nil {
			t.Errorf("head_precision %q: %v", p, err)
		}
	}
	_, err := model.New(context.Background(), headDims("bf16"), seedStages(t), euler)
	if bf16.Available() {
		if err != nil {
			t.Errorf("bf16 head on a CPU with AVX512_BF16: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "needs AVX512_BF16; this CPU has") {
		t.Errorf("bf16 head without AVX512_BF16: %v, want the clear error", err)
	}
}

// headLogits runs a forward pass and returns every logit in position order.
func headLogits(t *testing.T, m *model.Model, b *model.Batch) []float32 {
	t.Helper()
	out, _ := collect(t, m, b, 0)
	return out
}

// TestHeadBF16Logits compares the bf16 head's logits with the float32 head's
// on the same model. bf16 keeps 8 significant bits: each product h_k·w_k is
// off by at most about 2^-8 of its size, so a logit is off by at most
// 2^-8·Σ_k|h_k·w_k| (plus float32 rounding). Measured here: 0.012 at most,
// with logits up to 4.8. The test demands every logit within 0.03 and at most
// 2% of the rows to change their argmax (near-ties only).
func TestHeadBF16Logits(t *testing.T) {
	needBF16(t)
	fp := seedModel(t, headDims("fp32"), euler)
	bm := seedModel(t, headDims("bf16"), euler)
	b := randomBatch(fp.Dims, 2, 37, 3)
	want, got := headLogits(t, fp, b), headLogits(t, bm, b)
	v := fp.Dims.Vocab
	var maxErr, maxAbs float64
	flips := 0
	for r := 0; r < len(want)/v; r++ {
		wr, gr := want[r*v:(r+1)*v], got[r*v:(r+1)*v]
		aw, ag := 0, 0
		for j := range wr {
			maxErr = max(maxErr, math.Abs(float64(wr[j]-gr[j])))
			maxAbs = max(maxAbs, math.Abs(float64(wr[j])))
			if wr[j] > wr[aw] {
				aw = j
			}
			if gr[j] > gr[ag] {
				ag = j
			}
		}
		if aw != ag {
			flips++
		}
	}
	t.Logf("largest |bf16 − fp32| logit error %.3g (largest |logit| %.3g), argmax changed in %d of %d rows", maxErr, maxAbs, flips, len(want)/v)
	if maxErr == 0 {
		t.Error("the bf16 head gave exactly the float32 logits: it did not run in bf16")
	}
	if maxErr > 0.03 {
		t.Errorf("largest logit error %g > 0.03", maxErr)
	}
	if flips > len(want)/v/50 {
		t.Errorf("argmax changed in %d of %d rows", flips, len(want)/v)
	}
}

// trainSteps trains m for n steps of AdamW on fixed batches and returns the
// loss of each step.
func trainSteps(t *testing.T, m *model.Model, n int, lr float64) []float64 {
	t.Helper()
	opt := train.NewAdamW(lr, 0)
	var losses []float64
	for i := 0; i < n; i++ {
		b := randomBatch(m.Dims, 2, 24, uint64(10+i%2))
		var loss float64
		m.Params.ZeroGrad()
		if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true}, model.CrossEntropy(b.IDs, -1, b.B*b.S, &loss, nil)); err != nil {
			t.Fatal(err)
		}
		opt.Step(&m.Params, lr)
		losses = append(losses, loss)
	}
	return losses
}

// TestHeadBF16Training trains the same tiny model with each head: the bf16
// one learns (its loss falls) and its losses stay within 1% of float32's.
func TestHeadBF16Training(t *testing.T) {
	needBF16(t)
	fp := seedModel(t, headDims("fp32"), euler)
	bm := seedModel(t, headDims("bf16"), euler)
	lf, lb := trainSteps(t, fp, 8, 3e-3), trainSteps(t, bm, 8, 3e-3)
	t.Logf("fp32 losses %.5f\nbf16 losses %.5f", lf, lb)
	if !(lb[len(lb)-1] < lb[0]-0.05) {
		t.Errorf("bf16 training did not lower the loss: %v", lb)
	}
	for i := range lf {
		if math.Abs(lb[i]-lf[i]) > 0.01*lf[i] {
			t.Errorf("step %d: bf16 loss %g, fp32 %g: more than 1%% apart", i, lb[i], lf[i])
		}
	}
}

// fresh builds a new model (of m's head precision) holding m's current parameter values.
func fresh(t *testing.T, m *model.Model) *model.Model {
	t.Helper()
	n, err := model.New(context.Background(), m.Dims, seedStages(t), euler)
	if err != nil {
		t.Fatal(err)
	}
	sd := map[string]*tensor.Tensor{}
	for k, v := range m.Params.StateDict() {
		sd[k] = tensor.From(append([]float32(nil), v.Data...), v.Shape...)
	}
	if err := n.Params.LoadStateDict(sd); err != nil {
		t.Fatal(err)
	}
	return n
}

func same(a, b []float32) bool {
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return len(a) == len(b)
}

// TestHeadRepacks: the packed head weights — the bf16 head's, and the fp32
// head's [W_o | b_o] — follow the parameters: after an optimiser step, after
// LoadStateDict and after Params.Changed, a forward pass gives exactly what a
// freshly built model with the same values gives.
func TestHeadRepacks(t *testing.T) {
	for _, prec := range []string{"fp32", "bf16"} {
		t.Run(prec, func(t *testing.T) {
			if prec == "bf16" {
				needBF16(t)
			}
			m := seedModel(t, headDims(prec), euler)
			b := randomBatch(m.Dims, 1, 19, 5)
			before := headLogits(t, m, b) // packs the initial weights
			if !same(headLogits(t, m, b), before) {
				t.Fatal("a second forward pass gave other logits")
			}
			trainSteps(t, m, 1, 1e-2)
			after := headLogits(t, m, b)
			if same(after, before) {
				t.Fatal("an optimiser step did not change the logits")
			}
			if want := headLogits(t, fresh(t, m), b); !same(after, want) {
				t.Error("after an optimiser step the head used stale packed weights")
			}
			// Written directly, then announced with Changed.
			w := m.Params.Get("output_proj.weight").Value.Data
			for i := range w {
				w[i] *= -1
			}
			bo := m.Params.Get("output_proj.bias").Value.Data
			for i := range bo {
				bo[i] += 0.5
			}
			m.Params.Changed()
			if want := headLogits(t, fresh(t, m), b); !same(headLogits(t, m, b), want) {
				t.Error("after Params.Changed the head used stale packed weights")
			}
			// Loaded from another model's values.
			other := seedModel(t, headDims(prec), euler)
			other.Init(99)
			if err := m.Params.LoadStateDict(other.Params.StateDict()); err != nil {
				t.Fatal(err)
			}
			if want := headLogits(t, other, b); !same(headLogits(t, m, b), want) {
				t.Error("after LoadStateDict the head used stale packed weights")
			}
		})
	}
}

// TestHeadFP32Spelled: "fp32" spelled out is the default head, bit for bit.
func TestHeadFP32Spelled(t *testing.T) {
	a := seedModel(t, headDims(""), euler)
	c := seedModel(t, headDims("fp32"), euler)
	b := randomBatch(a.Dims, 1, 11, 6)
	if !same(headLogits(t, a, b), headLogits(t, c, b)) {
		t.Error(`head_precision "fp32" differs from the default`)
	}
}

// TestHeadKernels: the float32 head on package packed's kernel and on
// OpenBLAS's sgemm (LIQUIDLAB_HEAD_KERNEL) give the same logits within
// float32 rounding, also after an optimiser step; a bad value of the
// variable is an error at construction.
func TestHeadKernels(t *testing.T) {
	t.Setenv(model.HeadKernelEnv, "bogus")
	if _, err := model.New(context.Background(), headDims("fp32"), seedStages(t), euler); err == nil || !strings.Contains(err.Error(), model.HeadKernelEnv) {
		t.Fatalf("%s=bogus: err %v, want one naming the variable", model.HeadKernelEnv, err)
	}
	if !packed.Available() {
		t.Setenv(model.HeadKernelEnv, "packed")
		if _, err := model.New(context.Background(), headDims("fp32"), seedStages(t), euler); err == nil {
			t.Fatalf("%s=packed without AVX-512F: no error", model.HeadKernelEnv)
		}
		t.Skip("no packed kernel here: ", packed.Path())
	}
	t.Setenv(model.HeadKernelEnv, "packed")
	m := seedModel(t, headDims("fp32"), euler)
	if got := m.Dims.HeadPath(); got != packed.Path() {
		t.Errorf("HeadPath = %q, want %q", got, packed.Path())
	}
	b := randomBatch(m.Dims, 2, 23, 7)
	for step := 0; step < 2; step++ {
		t.Setenv(model.HeadKernelEnv, "packed")
		pk := headLogits(t, m, b)
		t.Setenv(model.HeadKernelEnv, "sgemm")
		sg := headLogits(t, m, b)
		var worst float64
		for i := range pk {
			d := math.Abs(float64(pk[i]-sg[i])) / math.Max(1, math.Abs(float64(sg[i])))
			worst = math.Max(worst, d)
		}
		// H = 64 products: float32 rounding bounds the difference by ~64·2^-24
		// relative to Σ|h·w|, which is ≤ a few times the logits here.
		if worst > 2e-5 {
			t.Fatalf("step %d: packed and sgemm logits differ by %.3g (relative)", step, worst)
		}
		t.Setenv(model.HeadKernelEnv, "packed")
		trainSteps(t, m, 1, 1e-2)
	}
	// The backward's dlogits·W_o (K = 997 here, two K blocks of 512) on the
	// packed kernel: every gradient as with sgemm, within float32 rounding,
	// for either head.
	for _, prec := range []string{"fp32", "bf16"} {
		if prec == "bf16" && !bf16.Available() {
			continue
		}
		m := seedModel(t, headDims(prec), euler)
		b := randomBatch(m.Dims, 2, 29, 8)
		grads := func(kernel string) map[string][]float32 {
			t.Setenv(model.HeadKernelEnv, kernel)
			m.Params.ZeroGrad()
			var loss float64
			if _, err := m.Run(context.Background(), b, model.RunOptions{Train: true}, model.CrossEntropy(b.IDs, -1, b.B*b.S, &loss, nil)); err != nil {
				t.Fatal(err)
			}
			g := map[string][]float32{}
			for name := range m.Params.StateDict() {
				if p := m.Params.Get(name); p.Grad != nil {
					g[name] = append([]float32(nil), p.Grad.Data...)
				}
			}
			return g
		}
		pk, sg := grads("packed"), grads("sgemm")
		if len(pk) == 0 || len(pk) != len(sg) {
			t.Fatalf("%s: %d and %d gradients", prec, len(pk), len(sg))
		}
		for name, want := range sg {
			var scale, worst float64
			for i, w := range want {
				scale = math.Max(scale, math.Abs(float64(w)))
				worst = math.Max(worst, math.Abs(float64(pk[name][i]-w)))
			}
			if worst > 1e-4*math.Max(scale, 1e-6) {
				t.Errorf("%s head: gradient %s differs by %.3g (largest |g| %.3g) between the packed and the sgemm backward", prec, name, worst, scale)
			}
		}
	}
}
