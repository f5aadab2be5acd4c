package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"liquidlab/framework/config"
	"liquidlab/framework/model"
	"liquidlab/framework/num"
	"liquidlab/framework/runner"
)

func init() {
	register("generate", command{summary: "sample text from a trained cell's checkpoint", run: cmdGenerate})
}

const generateDoc = `generate [flags] CELL_DIR

Loads a trained cell (results/<experiment>/<cell-id>/: its config.toml and
checkpoint.safetensors), encodes the prompt with the experiment's tokenizer and
samples -tokens new tokens one at a time: temperature, then top-k, then top-p
(nucleus; the first token over the threshold is kept), as the seed does. Each
step runs the whole sequence again (as the seed does), with evenly spaced
timestamps. The stages run in process.

The seed's own model cannot continue a prompt: it is trained to copy the
current token and its logits never see another token. Compare a cell trained
with train.objective = "next_token" and components.liquid.impl = "scan"
(experiments/fix-context.toml) with one using the seed's "ltc".

Example:
  liquidlab generate -prompt "The quiet cat" results/fix-context/<cell-id>`

func cmdGenerate(e *env, args []string) error {
	fs := newFlags(e, "generate", generateDoc)
	prompt := fs.String("prompt", "The", "text to continue")
	n := fs.Int("tokens", 40, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "softmax temperature (> 0)")
	topK := fs.Int("top-k", 50, "keep the k most likely tokens (0 = all)")
	topP := fs.Float64("top-p", 0.95, "keep the smallest set of tokens whose probability reaches p (1 = all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("generate: want one cell directory: %w", errUsage)
	}
	if *temp <= 0 || *topP <= 0 || *topP > 1 || *topK < 0 || *n < 0 {
		return fmt.Errorf("generate: need temperature > 0, 0 < top-p ≤ 1, top-k ≥ 0, tokens ≥ 0: %w", errUsage)
	}
	dir := fs.Arg(0)
	raw, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		return fmt.Errorf("generate: %w (is %s a cell directory of liquidlab run?)", err, dir)
	}
	exp, err := config.Parse(filepath.Join(dir, "config.toml"), raw, []string{`run.mode="inprocess"`})
	if err != nil {
		return err
	}
	ctx := context.Background()
	l := &runner.Launcher{Registry: builtinRegistry()}
	if err := exp.Validate(l.Describer(ctx, exp)); err != nil {
		return err
	}
	for kind, comp := range exp.Components {
		if comp.IsPath() {
			return fmt.Errorf("generate: the cell's %s component is a plugin binary (%s); generate runs built-in components only", kind, comp.Impl)
		}
	}
	st, err := l.Resolve(ctx, exp)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := runner.BuildModel(ctx, exp, st.Map)
	if err != nil {
		return err
	}
	if err := m.LoadCheckpoint(filepath.Join(dir, "checkpoint.safetensors")); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	tok, err := runner.LoadTokenizer(exp)
	if err != nil {
		return err
	}
	ids := tok.Encode(*prompt)
	if len(ids) == 0 {
		return fmt.Errorf("generate: the prompt encodes to no tokens")
	}
	rng := rand.New(rand.NewPCG(*seed, 0x9e4))
	fmt.Fprint(e.stdout, *prompt)
	v := m.Dims.Vocab
	last := make([]float32, v)
	for step := 0; step < *n; step++ {
		s := len(ids)
		b := &model.Batch{B: 1, S: s, IDs: make([]int64, s), Timestamps: make([]float32, s), TSpan: []float32{0, 0.25, 0.5, 0.75, 1}}
		for i, id := range ids {
			b.IDs[i] = int64(id)
			b.Timestamps[i] = float32(i+1) / float32(s)
		}
		_, err := m.Run(ctx, b, model.RunOptions{ChunkSize: exp.Run.ChunkSize}, func(blk *model.Block) error {
			for i, p := range blk.Index {
				if p == s-1 {
					copy(last, blk.Logits[i*v:(i+1)*v])
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		next := sample(last[:tok.VocabSize()], *temp, *topK, *topP, rng)
		ids = append(ids, next)
		piece, err := tok.Decode([]int{next}, true)
		if err != nil {
			return err
		}
		fmt.Fprint(e.stdout, piece)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

// sample draws a token from logits with temperature, top-k and top-p.
func sample(logits []float32, temp float64, topK int, topP float64, rng *rand.Rand) int {
	type cand struct {
		id int
		p  float64
	}
	cs := make([]cand, len(logits))
	mx, _ := num.MaxArg(logits)
	var z float64
	for i, x := range logits {
		p := math.Exp((float64(x) - float64(mx)) / temp)
		cs[i] = cand{i, p}
		z += p
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].p > cs[j].p })
	if topK > 0 && topK < len(cs) {
		cs = cs[:topK]
		// top-p then applies to the renormalised top-k survivors.
		z = 0
		for _, c := range cs {
			z += c.p
		}
	}
	// Keep tokens while the cumulative probability before them is below top-p,
	// so the first token over the threshold stays (the usual shift).
	var cum float64
	keep := 0
	for keep < len(cs) && cum < topP*z {
		cum += cs[keep].p
		keep++
	}
	cs = cs[:max(1, keep)]
	var total float64
	for _, c := range cs {
		total += c.p
	}
	r := rng.Float64() * total
	for _, c := range cs {
		if r -= c.p; r <= 0 {
			return c.id
		}
	}
	return cs[len(cs)-1].id
}
