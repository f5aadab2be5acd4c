package runner

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"liquidlab/framework/config"
	"liquidlab/framework/data"
	"liquidlab/framework/model"
	"liquidlab/framework/results"
	"liquidlab/framework/stage"
	"liquidlab/framework/tokenizer"
	"liquidlab/framework/train"
)

// BuildModel makes the model of an experiment on resolved stages and
// initialises it from the experiment's seed.
func BuildModel(ctx context.Context, e *config.Experiment, stages map[string]stage.Stage) (*model.Model, error) {
	dims := model.Dims{Vocab: e.Model.VocabSize, D: e.Model.EmbeddingDim, L: e.Model.LatentDim,
		H: e.Model.HiddenSize, F: e.Model.HiddenDim, K: e.Model.NumFlows, Tie: e.Model.TieOutput,
		HeadPrecision: e.Model.HeadPrecision, Block: e.Model.Block}
	opts := map[string]map[string]string{}
	for _, k := range stage.Kinds {
		opts[k] = e.StageConfig(k).Options
	}
	m, err := model.New(ctx, dims, stages, opts)
	if err != nil {
		return nil, err
	}
	if err := m.Init(uint64(e.Seed)); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadTokenizer returns the experiment's tokenizer: the built-in one, or the
// files in data.tokenizer.
func LoadTokenizer(e *config.Experiment) (*tokenizer.Tokenizer, error) {
	if e.Data.Tokenizer == "" {
		return tokenizer.Default(), nil
	}
	t, err := tokenizer.LoadDir(e.Data.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("data.tokenizer: %w", err)
	}
	return t, nil
}

type encoder struct{ t *tokenizer.Tokenizer }

func (e encoder) Encode(text string) ([]int64, error) {
	ids := e.t.Encode(text)
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out, nil
}

// padID is the id the loss ignores: the tokenizer's <pad>, or -1.
func padID(t *tokenizer.Tokenizer) int64 {
	if id, ok := t.TokenID(tokenizer.PadToken); ok {
		return int64(id)
	}
	return -1
}

// Progress receives progress of long work; implementations print it or not.
type Progress interface {
	Update(format string, args ...any)
}

// TrainResult holds the training and evaluation metrics of one repeat.
type TrainResult map[string]float64

// StepSink receives every StepRecord of a training run; nil discards them.
type StepSink func(results.StepRecord) error

// TrainEval trains a freshly built model for e.Train.Steps and evaluates it on
// e.Eval.Batches validation batches.
func TrainEval(ctx context.Context, e *config.Experiment, m *model.Model, corpus *data.Corpus, pad int64, seed uint64, log io.Writer, prog Progress) (TrainResult, error) {
	return TrainEvalSteps(ctx, e, m, corpus, pad, seed, log, prog, nil)
}

// TrainEvalSteps is TrainEval that also hands every step's metrics to steps
// (and validates every e.Eval.Every steps).
func TrainEvalSteps(ctx context.Context, e *config.Experiment, m *model.Model, corpus *data.Corpus, pad int64, seed uint64, log io.Writer, prog Progress, steps StepSink) (TrainResult, error) {
	out := TrainResult{"params": float64(m.Params.Count())}
	rng := rand.New(rand.NewPCG(seed, 0x7a1))
	B, S := e.Train.Batch, corpus.SeqLen
	opt := train.NewAdamW(e.Train.LR, e.Train.WeightDecay)
	sched := train.Schedule{LR: e.Train.LR, Warmup: e.Train.WarmupSteps, StepEvery: e.Train.LRStepEvery, Gamma: e.Train.LRGamma}
	tspan := []float32{0, 0.25, 0.5, 0.75, 1}
	batch := &model.Batch{B: B, S: S, IDs: make([]int64, B*S), Timestamps: make([]float32, B*S), TSpan: tspan}
	picked := make([]int, B)
	fill := func(seqs [][]int64, pick func(i int) int) {
		for i := 0; i < B; i++ {
			picked[i] = pick(i)
			copy(batch.IDs[i*S:(i+1)*S], seqs[picked[i]])
		}
		data.Timestamps(rng, batch.Timestamps, B, S)
	}
	// full gives batch back its seq_len (validation's) after a step of
	// another length.
	full := func() *model.Batch {
		batch.S, batch.IDs, batch.Timestamps = S, batch.IDs[:B*S], batch.Timestamps[:B*S]
		return batch
	}
	type finalValid struct {
		loss, acc float64
		total     int
	}
	var final *finalValid // the last step's validation, when the stream asked for it
	start := time.Now()
	var lossTail []float64
	var nfe float64
	budget := time.Duration(e.Train.Minutes * float64(time.Minute))
	done := 0   // steps taken
	tokens := 0 // tokens trained on
	for step := 0; step < e.Train.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var labels []int64
		var err error
		if corpus.TrainAt != nil {
			// A length for this step, fresh samples of it.
			batch.S = corpus.MinSeqLen + rng.IntN(S-corpus.MinSeqLen+1)
			batch.IDs, batch.Timestamps = batch.IDs[:B*batch.S], batch.Timestamps[:B*batch.S]
			labels = make([]int64, B*batch.S)
			for i := 0; i < B; i++ {
				ids, labs, err := corpus.TrainAt(batch.S, step*B+i)
				if err != nil {
					return out, err
				}
				copy(batch.IDs[i*batch.S:], ids)
				copy(labels[i*batch.S:], labs)
			}
			data.Timestamps(rng, batch.Timestamps, B, batch.S)
		} else {
			fill(corpus.Train, func(int) int { return rng.IntN(len(corpus.Train)) })
			if labels, err = corpus.BatchLabels(e.Train.Objective, false, picked, batch.IDs, B, S, pad); err != nil {
				return out, err
			}
		}
		count := countLabels(labels, pad)
		var loss float64
		m.Params.ZeroGrad()
		res, err := m.Run(ctx, batch, model.RunOptions{ChunkSize: e.Run.ChunkSize, Train: true}, watch(ctx, model.CrossEntropy(labels, pad, count, &loss, nil)))
		if err != nil {
			return out, fmt.Errorf("training step %d: %w", step+1, err)
		}
		nfe += res.Stats["ode.nfe"]
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return out, fmt.Errorf("training step %d: loss is %v (diverged; lower train.lr?)", step+1, loss)
		}
		norm := train.ClipGradNorm(&m.Params, e.Train.ClipGradNorm)
		lr := sched.At(step)
		opt.Step(&m.Params, lr)
		lossTail = append(lossTail, loss)
		tokens += B * batch.S
		if len(lossTail) > max(1, e.Train.Steps/10) {
			lossTail = lossTail[1:]
		}
		el := time.Since(start)
		done = step + 1
		over := budget > 0 && el >= budget // train.minutes spent: this step is the last
		if steps != nil {
			rec := results.StepRecord{Step: step + 1, Loss: results.Num(loss), LR: results.Num(lr), GradNorm: results.Num(norm),
				TokensPerS: results.Num(float64(tokens) / el.Seconds()), ElapsedS: results.Num(el.Seconds())}
			last := step+1 == e.Train.Steps || over
			if e.Eval.Batches > 0 && len(corpus.Valid) > 0 && (last || (e.Eval.Every > 0 && (step+1)%e.Eval.Every == 0)) {
				vl, va, total, err := validate(ctx, e, m, corpus, full(), seed, pad)
				if err != nil {
					return out, err
				}
				rec.ValidLoss, rec.ValidAcc = &vl, &va
				if last {
					final = &finalValid{vl, va, total}
				}
			}
			if err := steps(rec); err != nil {
				return out, fmt.Errorf("metrics stream: %w", err)
			}
		}
		eta := time.Duration(float64(el) / float64(step+1) * float64(e.Train.Steps-step-1))
		if budget > 0 {
			eta = min(eta, max(0, budget-el))
		}
		prog.Update("step %d/%d loss %.4f lr %.2e |g| %.3g ETA %s", step+1, e.Train.Steps, loss, lr, norm, eta.Round(time.Second))
		if log != nil && (step == 0 || (step+1)%max(1, e.Train.Steps/20) == 0 || step+1 == e.Train.Steps) {
			fmt.Fprintf(log, "step %d/%d loss %.5f lr %.3e grad_norm %.4g elapsed %.1fs\n", step+1, e.Train.Steps, loss, lr, norm, el.Seconds())
		}
		if over {
			if log != nil {
				fmt.Fprintf(log, "train.minutes = %g spent after step %d of %d: training stops here\n", e.Train.Minutes, step+1, e.Train.Steps)
			}
			break
		}
	}
	if done > 0 {
		el := time.Since(start).Seconds()
		out["train_loss"] = mean(lossTail)
		out["train_time_s"] = el
		out["train_tokens_per_s"] = float64(tokens) / el
		out["ode_nfe_per_step"] = nfe / float64(done)
		if budget > 0 {
			out["train_steps"] = float64(done)
		}
	}
	// Evaluation on held-out sequences, in order.
	if e.Eval.Batches > 0 && len(corpus.Valid) > 0 {
		if final == nil {
			vl, va, total, err := validate(ctx, e, m, corpus, full(), seed, pad)
			if err != nil {
				return out, err
			}
			final = &finalValid{vl, va, total}
		}
		vl, va, total := final.loss, final.acc, final.total
		out["valid_loss"] = vl
		out["valid_ppl"] = math.Exp(vl)
		out["valid_bits_per_token"] = vl / math.Ln2
		out["valid_acc"] = va
		if log != nil {
			fmt.Fprintf(log, "eval: %d tokens loss %.5f ppl %.3f acc %.4f\n", total, out["valid_loss"], out["valid_ppl"], out["valid_acc"])
		}
	}
	return out, nil
}

// validate runs the e.Eval.Batches held-out batches, in order, and returns the
// mean loss and accuracy over their labelled tokens. Their timestamps come from
// a generator of their own, seeded from the repeat's seed, so every validation
// of a run sees the same batches and validating more often (eval.every) does
// not change the training stream.
func validate(ctx context.Context, e *config.Experiment, m *model.Model, corpus *data.Corpus, batch *model.Batch, seed uint64, pad int64) (loss, acc float64, total int, err error) {
	rng := rand.New(rand.NewPCG(seed, 0x7a1e))
	picked := make([]int, batch.B)
	fill := func(seqs [][]int64, pick func(i int) int) {
		for i := 0; i < batch.B; i++ {
			picked[i] = pick(i)
			copy(batch.IDs[i*batch.S:(i+1)*batch.S], seqs[picked[i]])
		}
		data.Timestamps(rng, batch.Timestamps, batch.B, batch.S)
	}
	B, S := batch.B, batch.S
	var lossSum float64
	var correct int
	for bi := 0; bi < e.Eval.Batches; bi++ {
		fill(corpus.Valid, func(i int) int { return (bi*B + i) % len(corpus.Valid) })
		labels, err := corpus.BatchLabels(e.Train.Objective, true, picked, batch.IDs, B, S, pad)
		if err != nil {
			return 0, 0, 0, err
		}
		count := countLabels(labels, pad)
		var l float64
		if _, err := m.Run(ctx, batch, model.RunOptions{ChunkSize: e.Run.ChunkSize}, watch(ctx, model.CrossEntropy(labels, pad, count, &l, &correct))); err != nil {
			return 0, 0, 0, fmt.Errorf("evaluation batch %d: %w", bi+1, err)
		}
		lossSum += l * float64(count)
		total += count
	}
	if total == 0 {
		return math.NaN(), math.NaN(), 0, nil
	}
	return lossSum / float64(total), float64(correct) / float64(total), total, nil
}

func countLabels(labels []int64, pad int64) int {
	n := 0
	for _, l := range labels {
		if l != pad {
			n++
		}
	}
	return max(n, 1)
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
