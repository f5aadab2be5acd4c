package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

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
checkpoint.safetensors), encodes the prompt (-prompt, or -prompt-file) with the
experiment's tokenizer and samples -tokens new tokens one at a time:
temperature, then top-k, then top-p (nucleus; the first token over the
threshold is kept), as the seed does. The stages run in process.

Two ways to run the model (-stream):
  stream   when every stage is per-token and carries its state (the liquid
           "scan", with the "causal" window attention or the seed's attention,
           which then does not reach the logits): the prompt is fed in chunks of
           run.chunk_size tokens (1024 when it is 0), then each new token alone,
           with every stage's state carried from one token to the next. The work
           per token does not grow with the sequence. Timestamps are evenly
           spaced over the final length: token i (from 0) of the prompt and the
           generated text gets (i+1)/T, T = prompt + tokens − 1.
  re-run   the seed's way: each new token runs the whole sequence again (in
           chunks of run.chunk_size), with timestamps (i+1)/S evenly spaced over
           the S tokens of that step. The seed's model ("ltc" liquid cell, which
           computes its state once from the whole sequence) can only re-run.
-stream=auto streams when the model allows it and re-runs otherwise; on streams
or fails saying why the model cannot; off always re-runs.

At the end, stderr gets the prompt's length and time, the generation speed in
tokens/s (wall time from the end of the prompt, or for re-run from the start,
to the last token) and the process's peak resident memory.

The seed's own model cannot continue a prompt: it is trained to copy the
current token and its logits never see another token. Compare a cell trained
with train.objective = "next_token" and components.liquid.impl = "scan"
(experiments/fix-context.toml) with one using the seed's "ltc".

Example:
  liquidlab generate -prompt "The quiet cat" results/fix-context/<cell-id>
  liquidlab generate -prompt-file long.txt -tokens 64 -stream=off results/fix-attention/<cell-id>`

// Stream modes (flag -stream).
const (
	streamAuto = "auto"
	streamOn   = "on"
	streamOff  = "off"
)

// defaultPromptChunk is the prompt's chunk size in stream mode when
// run.chunk_size is 0 (the whole sequence).
const defaultPromptChunk = 1024

func cmdGenerate(e *env, args []string) error {
	fs := newFlags(e, "generate", generateDoc)
	prompt := fs.String("prompt", "The", "text to continue")
	promptFile := fs.String("prompt-file", "", "read the text to continue from `FILE` (instead of -prompt; not echoed)")
	n := fs.Int("tokens", 40, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "softmax temperature (> 0)")
	topK := fs.Int("top-k", 50, "keep the k most likely tokens (0 = all)")
	topP := fs.Float64("top-p", 0.95, "keep the smallest set of tokens whose probability reaches p (1 = all)")
	seed := fs.Uint64("seed", 1, "sampling seed")
	mode := fs.String("stream", streamAuto, "auto: stream when every stage is per-token and carries state, else re-run the sequence per token; on: stream or fail; off: always re-run")
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
	if *mode != streamAuto && *mode != streamOn && *mode != streamOff {
		return fmt.Errorf("generate: -stream=%q, want auto, on or off: %w", *mode, errUsage)
	}
	text := *prompt
	if *promptFile != "" {
		both := false
		fs.Visit(func(f *flag.Flag) { both = both || f.Name == "prompt" })
		if both {
			return fmt.Errorf("generate: -prompt and -prompt-file both given; pick one: %w", errUsage)
		}
		raw, err := os.ReadFile(*promptFile)
		if err != nil {
			return fmt.Errorf("generate: -prompt-file: %w", err)
		}
		text = string(raw)
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
	ids := tok.Encode(text)
	if len(ids) == 0 {
		return fmt.Errorf("generate: the prompt encodes to no tokens")
	}
	stream := *mode != streamOff
	if why := m.CanStream(); why != nil && stream {
		if *mode == streamOn {
			return fmt.Errorf("generate: -stream=on: the model cannot stream: %w", why)
		}
		stream = false
	}
	rng := rand.New(rand.NewPCG(*seed, 0x9e4))
	if *promptFile == "" {
		fmt.Fprint(e.stdout, text)
	}
	g := &generation{m: m, ids: ids, tokens: *n, chunk: exp.Run.ChunkSize,
		next: func(logits []float32) (int, error) {
			next := sample(logits[:tok.VocabSize()], *temp, *topK, *topP, rng)
			piece, err := tok.Decode([]int{next}, true)
			if err != nil {
				return 0, err
			}
			fmt.Fprint(e.stdout, piece)
			return next, nil
		}}
	if stream {
		err = g.stream(ctx, evenTimeline(len(ids)+max(*n-1, 0)))
	} else {
		err = g.rerun(ctx, evenOverStep)
	}
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	fmt.Fprintln(e.stdout)
	g.report(e.stderr, stream)
	return nil
}

// timeline gives token i's timestamp when the sequence has s tokens.
type timeline func(i, s int) float32

// evenOverStep spaces the timestamps evenly over the sequence of each step,
// (i+1)/s: the re-run path's timeline, as generate has always done.
func evenOverStep(i, s int) float32 { return float32(i+1) / float32(s) }

// evenTimeline spaces the timestamps evenly over a fixed final length T,
// whatever the sequence's length now: (i+1)/T. A stream cannot re-time tokens it
// has fed, so it uses this one.
func evenTimeline(T int) timeline {
	return func(i, _ int) float32 { return float32(i+1) / float32(T) }
}

// generation is one prompt continued by a number of tokens, and how long it took.
type generation struct {
	m      *model.Model
	ids    []int // the prompt, then each generated token
	tokens int   // tokens to generate
	chunk  int   // run.chunk_size
	// next draws the token after the given logits (V values) and shows it.
	next func(logits []float32) (int, error)

	prompt      int           // prompt length
	promptTime  time.Duration // stream: feeding the prompt
	genTime     time.Duration // from the end of the prompt (re-run: the start) to the last token
	promptChunk int           // stream: tokens per chunk of the prompt
	generated   int
}

// stream feeds the prompt in chunks, then each new token alone.
func (g *generation) stream(ctx context.Context, ts timeline) error {
	g.prompt = len(g.ids)
	s, err := g.m.NewStream(ctx, 1, model.DefaultTSpan)
	if err != nil {
		return err
	}
	g.promptChunk = g.chunk
	if g.promptChunk <= 0 {
		g.promptChunk = defaultPromptChunk
	}
	t0 := time.Now()
	var logits []float32
	feed := func(from, to int) error {
		ids := make([]int64, to-from)
		times := make([]float32, to-from)
		for i := from; i < to; i++ {
			ids[i-from], times[i-from] = int64(g.ids[i]), ts(i, 0)
		}
		logits, err = s.Feed(ids, times)
		return err
	}
	for s0 := 0; s0 < g.prompt; s0 += g.promptChunk {
		if err := feed(s0, min(s0+g.promptChunk, g.prompt)); err != nil {
			return err
		}
	}
	t1 := time.Now()
	g.promptTime = t1.Sub(t0)
	for step := 0; step < g.tokens; step++ {
		if step > 0 {
			if err := feed(len(g.ids)-1, len(g.ids)); err != nil {
				return err
			}
		}
		next, err := g.next(logits)
		if err != nil {
			return err
		}
		g.ids = append(g.ids, next)
		g.generated++
	}
	g.genTime = time.Since(t1)
	return nil
}

// rerun runs the whole sequence again for every new token.
func (g *generation) rerun(ctx context.Context, ts timeline) error {
	g.prompt = len(g.ids)
	v := g.m.Dims.Vocab
	last := make([]float32, v)
	t0 := time.Now()
	for step := 0; step < g.tokens; step++ {
		s := len(g.ids)
		b := &model.Batch{B: 1, S: s, IDs: make([]int64, s), Timestamps: make([]float32, s), TSpan: model.DefaultTSpan}
		for i, id := range g.ids {
			b.IDs[i] = int64(id)
			b.Timestamps[i] = ts(i, s)
		}
		// Only the last position's logits are read: the head (and a per-token
		// attention) skip the other blocks (RunOptions.Rows).
		read := make([]bool, s)
		read[s-1] = true
		_, err := g.m.Run(ctx, b, model.RunOptions{ChunkSize: g.chunk, Rows: read}, func(blk *model.Block) error {
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
		next, err := g.next(last)
		if err != nil {
			return err
		}
		g.ids = append(g.ids, next)
		g.generated++
	}
	g.genTime = time.Since(t0)
	return nil
}

// report writes how the tokens were generated, how fast and the peak memory.
func (g *generation) report(w io.Writer, stream bool) {
	rate := func(n int, d time.Duration) string {
		if n == 0 || d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.4g", float64(n)/d.Seconds())
	}
	how := "re-running the whole sequence for each token"
	if stream {
		how = fmt.Sprintf("streaming (prompt fed in chunks of %d tokens in %.3gs)", g.promptChunk, g.promptTime.Seconds())
	}
	peak := ""
	if kb := peakRSSKB(); kb > 0 {
		peak = fmt.Sprintf(", peak RSS %.0f MB", float64(kb)/1024)
	}
	fmt.Fprintf(w, "generate: %d tokens after a prompt of %d tokens, %s: %.3gs, %s tokens/s%s\n",
		g.generated, g.prompt, how, g.genTime.Seconds(), rate(g.generated, g.genTime), peak)
}

// peakRSSKB is the process's peak resident memory (VmHWM) in KiB, 0 where
// /proc does not tell.
func peakRSSKB() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb
			}
		}
	}
	return 0
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
