package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"

	"github.com/mattn/go-isatty"

	"liquidlab/framework/config"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
)

func init() {
	register("eval", command{summary: "long-context evaluation of a trained cell: passkey, MQAR, selective copy, Go source", run: cmdEval})
}

const evalDoc = `eval [flags] CELL_DIR

Loads a trained cell (results/<experiment>/<cell-id>/: its config.toml and
checkpoint.safetensors), runs the long-context tasks on it at each length, one
sequence at a time and chunk by chunk, prints a table (one column per length,
one line per task row), writes every row to CELL_DIR/eval.json and adds a
summary per task × length to CELL_DIR/metrics.json ("eval.<task>@<length>":
the mean accuracy over the task's rows; "eval.goroot_bpb@<length>"; and
"eval.peak_rss_mb@<length>"), so 'liquidlab table' shows them. The stages run
in process. liquidlab run does the same at the end of each cell when the
experiment sets eval.tasks.

Tasks (eval.tasks, -tasks):
  passkey         the LongLoRA / landmark-attention protocol: an instruction,
                  filler text, the line "The pass key is NNNNN. Remember it.
                  NNNNN is the pass key." at each depth (eval.depths, % of the
                  filler: 0 = right after the instruction, 100 = right before
                  the question), and "What is the pass key? The pass key is"
                  followed by the key. Accuracy: the fraction of samples whose
                  key tokens are all right, scored under teacher forcing with
                  the argmax at each key position (identical to greedy decoding
                  of the key). One line per depth.
  mqar            multi-query associative recall (Zoology): key–value pairs,
                  noise, then every key again in random order; accuracy per
                  query. One line per number of pairs (eval.mqar_pairs).
  selective_copy  (Mamba) eval.copy_tokens content tokens at random positions
                  among noise, a marker, then the content in order; accuracy
                  per copied token.
  goroot          held-out package documents of the Go source tree (the files
                  of one package concatenated in name order, split by file as
                  data.source = "goroot" is): bits per byte (nats / ln 2 / UTF-8
                  bytes of the scored text) and loss per token by position
                  bucket (0-1k, 1k-4k, 4k-16k, 16k-32k).

The token-level tasks (mqar, selective_copy) use ids past the tokenizer's
special tokens. Samples are seeded (the experiment's seed) and never those the
cell trained on with data.source = "task:…". Every sample has exactly the
given length. Time and peak resident memory (this process, VmHWM reset before
each task × length) are reported per task × length.

Flags set the eval.* settings (as -set eval.KEY=VALUE would); -set changes any
setting of the cell's experiment (e.g. -set run.chunk_size=512).

Examples:
  liquidlab eval -tasks passkey -lengths 4096,32768 results/long-context-smoke/<cell-id>
  liquidlab eval -tasks passkey -depths 10,90 -key-digits 7 -filler essay.txt CELL_DIR
  liquidlab eval -tasks goroot,mqar -samples 4 CELL_DIR`

func cmdEval(e *env, args []string) error {
	fs := newFlags(e, "eval", evalDoc)
	var sets setFlags
	fs.Var(&sets, "set", "override a setting of the cell's experiment, key.path=value (repeatable)")
	tasksF := fs.String("tasks", "", "comma-separated tasks: passkey, mqar, selective_copy, goroot (default eval.tasks)")
	lengths := fs.String("lengths", "", "comma-separated lengths in tokens (default eval.lengths, else 4096,8192,16384,32768)")
	depths := fs.String("depths", "", "comma-separated passkey depths in % (default eval.depths, else 0,25,50,75,100)")
	samples := fs.Int("samples", 0, "samples per task × length × row (default eval.samples, else 10)")
	digits := fs.Int("key-digits", 0, "passkey digits (default eval.key_digits, else 5)")
	filler := fs.String("filler", "", "passkey filler text file (default eval.filler, else the built-in filler)")
	pairs := fs.String("mqar-pairs", "", "comma-separated MQAR pair counts (default eval.mqar_pairs, else 4,16,64)")
	chunk := fs.Int("chunk", 0, "tokens per chunk (default run.chunk_size, else 1024)")
	noWrite := fs.Bool("no-write", false, "print only; leave eval.json and metrics.json alone")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the evaluation to this file (go tool pprof)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("eval: want one cell directory: %w", errUsage)
	}
	over := []string{`run.mode="inprocess"`}
	over = append(over, sets...)
	list := func(key, v string, quote bool) error {
		if v == "" {
			return nil
		}
		var parts []string
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if quote {
				p = strconv.Quote(p)
			} else if _, err := strconv.ParseFloat(p, 64); err != nil {
				return fmt.Errorf("eval: -%s %q: %q is not a number: %w", strings.ReplaceAll(strings.TrimPrefix(key, "eval."), "_", "-"), v, p, errUsage)
			}
			parts = append(parts, p)
		}
		over = append(over, key+"=["+strings.Join(parts, ", ")+"]")
		return nil
	}
	for _, l := range []struct {
		key, v string
		quote  bool
	}{{"eval.tasks", *tasksF, true}, {"eval.lengths", *lengths, false}, {"eval.depths", *depths, false}, {"eval.mqar_pairs", *pairs, false}} {
		if err := list(l.key, l.v, l.quote); err != nil {
			return err
		}
	}
	if *samples != 0 {
		over = append(over, fmt.Sprintf("eval.samples=%d", *samples))
	}
	if *digits != 0 {
		over = append(over, fmt.Sprintf("eval.key_digits=%d", *digits))
	}
	if *filler != "" {
		over = append(over, "eval.filler="+strconv.Quote(*filler))
	}
	if *chunk != 0 {
		over = append(over, fmt.Sprintf("run.chunk_size=%d", *chunk))
	}
	dir := fs.Arg(0)
	raw, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		return fmt.Errorf("eval: %w (is %s a cell directory of liquidlab run?)", err, dir)
	}
	exp, err := config.Parse(filepath.Join(dir, "config.toml"), raw, over)
	if err != nil {
		return err
	}
	if len(exp.Eval.Tasks) == 0 {
		return fmt.Errorf("eval: no tasks: give -tasks (passkey, mqar, selective_copy, goroot) or set eval.tasks: %w", errUsage)
	}
	ctx, stop := signalContext()
	defer stop()
	l := &runner.Launcher{Registry: builtinRegistry()}
	if err := exp.Validate(l.Describer(ctx, exp)); err != nil {
		return err
	}
	for kind, comp := range exp.Components {
		if comp.IsPath() {
			return fmt.Errorf("eval: the cell's %s component is a plugin binary (%s); eval runs built-in components only", kind, comp.Impl)
		}
	}
	o, err := runner.EvalOptionsFor(exp)
	if err != nil {
		return fmt.Errorf("eval: %w", err)
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
		return fmt.Errorf("eval: %w", err)
	}
	tok, err := runner.LoadTokenizer(exp)
	if err != nil {
		return err
	}
	o.Progress = &lineProgress{e: e}
	rows, err := runner.EvalTasks(ctx, m, tok, o)
	o.Progress.(*lineProgress).clear()
	if len(rows) > 0 {
		fmt.Fprintf(e.stdout, "%s: %d samples per row, chunks of %d tokens, filler %s\n", dir, o.Samples, o.ChunkSize, orDefault(o.FillerFile, "built-in"))
		runner.EvalTable(e.stdout, rows)
		if !*noWrite {
			if werr := writeEvalResults(dir, o, rows); werr != nil && err == nil {
				err = werr
			}
		}
	}
	return err
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// writeEvalResults writes eval.json and adds the summary to metrics.json.
func writeEvalResults(dir string, o runner.EvalOptions, rows []runner.EvalRow) error {
	if err := runner.WriteEval(dir, o, rows); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	path := filepath.Join(dir, results.MetricsFile)
	var m results.Metrics
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("eval: %s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return fmt.Errorf("eval: %w", err)
	}
	if m.Values == nil {
		m.Values = map[string]float64{}
	}
	for k, v := range runner.EvalMetrics(rows) {
		m.Values[k] = v
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return results.WriteFileAtomic(path, append(b, '\n'))
}

// evalMetricNames are the eval.* metrics of the records.
func evalMetricNames(recs []*results.Record) []string {
	var out []string
	for _, r := range recs {
		if r == nil || r.Metrics == nil {
			continue
		}
		for k := range r.Metrics.Values {
			if strings.HasPrefix(k, "eval.") && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	// By task, then by length as a number (512 before 2048).
	slices.SortFunc(out, func(a, b string) int {
		ta, la, _ := strings.Cut(a, "@")
		tb, lb, _ := strings.Cut(b, "@")
		if c := strings.Compare(ta, tb); c != 0 {
			return c
		}
		na, _ := strconv.Atoi(la)
		nb, _ := strconv.Atoi(lb)
		return na - nb
	})
	return out
}

// lineProgress rewrites one status line on stderr.
type lineProgress struct {
	e     *env
	shown bool
}

func (p *lineProgress) Update(format string, args ...any) {
	if f, ok := p.e.stderr.(*os.File); !ok || !isatty.IsTerminal(f.Fd()) {
		return
	}
	fmt.Fprintf(p.e.stderr, "\r\033[K%s", fmt.Sprintf(format, args...))
	p.shown = true
}

func (p *lineProgress) clear() {
	if p.shown {
		fmt.Fprint(p.e.stderr, "\r\033[K")
	}
}
