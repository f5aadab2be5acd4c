package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"liquidlab/framework/config"
	"liquidlab/framework/corpus"
	"liquidlab/framework/data"
	"liquidlab/framework/model"
	"liquidlab/framework/num"
	"liquidlab/framework/results"
	"liquidlab/framework/stage"
	"liquidlab/framework/tasks"
	"liquidlab/framework/tokenizer"
)

// TaskGoRoot is the evaluation task of next-token loss on long documents of
// the Go source tree (bits per byte, loss by position bucket).
const TaskGoRoot = "goroot"

// SourceTaskPrefix starts a data.source that trains on a generated task.
const SourceTaskPrefix = "task:"

// EvalFile is the file beside metrics.json that holds every evaluation row.
const EvalFile = "eval.json"

// DefaultEvalChunk is the chunk size of the evaluation when run.chunk_size
// is 0: evaluation always runs chunk by chunk, so memory does not grow with
// the length.
const DefaultEvalChunk = 1024

// EvalOptions say what EvalTasks measures; EvalOptionsFor fills them from an
// experiment.
type EvalOptions struct {
	Tasks         []string
	Lengths       []int
	Depths        []float64 // passkey, fractions in [0, 1]
	Samples       int
	KeyDigits     int
	Filler        string // passkey filler text ("" = built-in)
	FillerFile    string // where Filler came from, for the results
	MQARPairs     []int
	CopyTokens    int
	ChunkSize     int
	Seed          uint64
	ValidFraction float64      // goroot: the held-out files
	PIDs          func() []int // plugin processes whose memory counts too
	Progress      Progress
	Log           io.Writer
	// trainKeyDigits is data.key_digits, for a task:passkey training corpus.
	trainKeyDigits [2]int
}

// EvalOptionsFor resolves the experiment's [eval] long-context settings,
// defaults filled in, and checks them.
func EvalOptionsFor(e *config.Experiment) (EvalOptions, error) {
	v := e.Eval
	o := EvalOptions{Tasks: v.Tasks, Lengths: v.Lengths, Samples: v.Samples, KeyDigits: v.KeyDigits,
		MQARPairs: v.MQARPairs, CopyTokens: v.CopyTokens, ChunkSize: e.Run.ChunkSize, Seed: uint64(e.Seed),
		ValidFraction: e.Data.ValidFraction}
	valid := append(slices.Clone(tasks.Names), TaskGoRoot)
	for _, t := range o.Tasks {
		if !slices.Contains(valid, t) {
			return o, fmt.Errorf("eval.tasks: unknown task %q; valid tasks: %s", t, strings.Join(valid, ", "))
		}
	}
	if len(o.Lengths) == 0 {
		o.Lengths = []int{4096, 8192, 16384, 32768}
	}
	for _, l := range o.Lengths {
		if l < 2 {
			return o, fmt.Errorf("eval.lengths = %v: every length must be ≥ 2 tokens", o.Lengths)
		}
	}
	for _, d := range v.Depths {
		if !(d >= 0 && d <= 100) {
			return o, fmt.Errorf("eval.depths = %v: a depth is a percentage in [0, 100]", v.Depths)
		}
		o.Depths = append(o.Depths, d/100)
	}
	if o.Samples < 0 || o.KeyDigits < 0 || o.CopyTokens < 0 {
		return o, fmt.Errorf("eval.samples, eval.key_digits and eval.copy_tokens must be ≥ 0 (0 takes the default)")
	}
	if o.Samples == 0 {
		o.Samples = 10
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultEvalChunk
	}
	if o.ValidFraction <= 0 {
		o.ValidFraction = 0.1
	}
	if v.Filler != "" {
		f, err := os.Open(v.Filler)
		if err != nil {
			return o, fmt.Errorf("eval.filler: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f, tasks.MaxFillerBytes))
		f.Close()
		if err != nil {
			return o, fmt.Errorf("eval.filler: %w", err)
		}
		if strings.TrimSpace(string(b)) == "" {
			return o, fmt.Errorf("eval.filler: %s has no text", v.Filler)
		}
		o.Filler, o.FillerFile = string(b), v.Filler
	}
	return o, nil
}

// EvalRow is one line of the evaluation: a task at a length, one row of it
// (a passkey depth, an MQAR pair count, …).
type EvalRow struct {
	Task    string `json:"task"`
	Length  int    `json:"length"`
	Row     string `json:"row"`
	Samples int    `json:"samples"`
	// Acc is the fraction of target groups right (passkey: whole keys, MQAR:
	// queries, selective copy: tokens); NaN for goroot.
	Acc float64 `json:"acc"`
	// Loss is the mean loss in nats per target token (per token for goroot).
	Loss float64 `json:"loss"`
	// BPB is goroot's bits per byte; Buckets its mean loss per position bucket.
	BPB     float64            `json:"bpb,omitempty"`
	Buckets map[string]float64 `json:"buckets,omitempty"`
	// Seconds and PeakRSSMB are those of the whole task × length (every row):
	// wall time, and the peak resident memory of this process plus the plugin
	// processes (VmHWM, reset before each task × length).
	Seconds   float64 `json:"seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb"`
}

// MarshalJSON writes NaN as null.
func (r EvalRow) MarshalJSON() ([]byte, error) {
	type plain EvalRow
	type out struct {
		plain
		Acc *float64 `json:"acc"`
	}
	o := out{plain: plain(r)}
	if !math.IsNaN(r.Acc) {
		o.Acc = &r.Acc
	}
	if math.IsNaN(o.plain.Loss) {
		o.plain.Loss = 0
	}
	if math.IsNaN(o.plain.BPB) {
		o.plain.BPB = 0
	}
	for k, v := range o.plain.Buckets {
		if math.IsNaN(v) {
			delete(o.plain.Buckets, k)
		}
	}
	return json.Marshal(o)
}

// MetricName is the metrics.json value of a task × length: the mean accuracy
// over its rows, or goroot's bits per byte.
func MetricName(task string, length int) string {
	if task == TaskGoRoot {
		return fmt.Sprintf("eval.goroot_bpb@%d", length)
	}
	return fmt.Sprintf("eval.%s@%d", task, length)
}

// taskEncoder encodes without <s> … </s>.
type taskEncoder struct{ t *tokenizer.Tokenizer }

func (e taskEncoder) Encode(text string) ([]int64, error) {
	enc, err := e.t.EncodeWith(text, tokenizer.Options{})
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(enc.IDs))
	for i, id := range enc.IDs {
		out[i] = int64(id)
	}
	return out, nil
}

// taskVocab is the id range of the token-level tasks: past the leading
// special tokens, inside both the model's and the tokenizer's vocabulary.
func taskVocab(tok *tokenizer.Tokenizer, modelVocab int) tasks.Vocab {
	sp := tok.Specials()
	lo := max(sp.BOS, sp.EOS, sp.Pad, sp.Unk) + 1
	hi := min(modelVocab, tok.VocabSize())
	if sp.Mask == hi-1 && sp.Mask >= lo {
		hi = sp.Mask
	}
	return tasks.Vocab{Lo: int64(lo), Hi: int64(hi)}
}

func newTask(name string, o EvalOptions, tok *tokenizer.Tokenizer, modelVocab int) (*tasks.Task, error) {
	return tasks.New(name, tasks.Options{Seed: o.Seed, Vocab: taskVocab(tok, modelVocab), Enc: taskEncoder{tok},
		KeyDigits: o.KeyDigits, TrainKeyDigits: o.trainKeyDigits, Filler: o.Filler, Depths: o.Depths, Pairs: o.MQARPairs, CopyTokens: o.CopyTokens})
}

// loadCorpus makes the training corpus of an experiment: data.Load, or for a
// "task:NAME" source sequences of the generated task with labels on the
// answers only.
func loadCorpus(e *config.Experiment, tok *tokenizer.Tokenizer) (*data.Corpus, error) {
	name, isTask := strings.CutPrefix(e.Data.Source, SourceTaskPrefix)
	if !isTask {
		return data.Load(encoder{tok}, data.Options{Source: e.Data.Source, SeqLen: e.Data.SeqLen,
			ValidFraction: e.Data.ValidFraction, Seed: uint64(e.DataSeed()), MaxBytes: e.Data.MaxBytes})
	}
	if e.Train.Objective != config.ObjectiveNextToken {
		return nil, fmt.Errorf("data.source = %q trains the model to predict the answers: set train.objective = %q", e.Data.Source, config.ObjectiveNextToken)
	}
	o, err := EvalOptionsFor(e)
	if err != nil {
		return nil, err
	}
	// eval.filler is for evaluation; training uses data.filler.
	if o.Filler, err = trainFiller(e.Data.Filler, o.ValidFraction); err != nil {
		return nil, err
	}
	if k := e.Data.KeyDigits; len(k) == 2 {
		o.trainKeyDigits = [2]int{k[0], k[1]}
	}
	t, err := newTask(name, o, tok, e.Model.VocabSize)
	if err != nil {
		return nil, fmt.Errorf("data.source = %q: %w", e.Data.Source, err)
	}
	S := e.Data.SeqLen
	// One fresh sequence per training row, bounded to 4M tokens.
	ntrain := min(max(1, e.Train.Steps*e.Train.Batch), max(64, (4<<20)/S))
	nvalid := max(1, e.Eval.Batches*e.Train.Batch)
	pad := padID(tok)
	c := &data.Corpus{SeqLen: S, Source: e.Data.Source}
	gen := func(first, n int) ([][]int64, [][]int64, error) {
		ids, labs := make([][]int64, n), make([][]int64, n)
		for i := range ids {
			s, err := t.TrainSample(S, first+i)
			if err != nil {
				return nil, nil, fmt.Errorf("data.source = %q: %w", e.Data.Source, err)
			}
			ids[i] = s.Tokens()
			labs[i] = make([]int64, S)
			s.Labels(labs[i], 0, pad)
		}
		return ids, labs, nil
	}
	if e.Data.MinSeqLen > 0 {
		// Fresh samples of every length; their indices never reach the
		// validation samples' (from ntrain at length S).
		ntrain = e.Train.Steps * e.Train.Batch
		c.MinSeqLen = e.Data.MinSeqLen
		c.TrainAt = func(length, index int) ([]int64, []int64, error) {
			if index >= ntrain && length == S {
				index += nvalid
			}
			s, err := t.TrainSample(length, index)
			if err != nil {
				return nil, nil, fmt.Errorf("data.source = %q: %w", e.Data.Source, err)
			}
			labs := make([]int64, length)
			s.Labels(labs, 0, pad)
			return s.Tokens(), labs, nil
		}
	} else if c.Train, c.TrainLabels, err = gen(0, ntrain); err != nil {
		return nil, err
	}
	if c.Valid, c.ValidLabels, err = gen(ntrain, nvalid); err != nil {
		return nil, err
	}
	return c, nil
}

// trainFiller is the passkey filler of data.filler: "" the built-in one,
// "goroot" the prose of the comments of the Go tree's training files (split
// as the goroot task splits it), else a file's text (at most
// tasks.MaxFillerBytes of either).
func trainFiller(src string, validFraction float64) (string, error) {
	switch src {
	case "":
		return "", nil
	case "goroot":
		root, err := corpus.Root()
		if err != nil {
			return "", fmt.Errorf("data.filler = %q: %w", src, err)
		}
		g, err := corpus.Open(root, validFraction)
		if err != nil {
			return "", fmt.Errorf("data.filler = %q: %w", src, err)
		}
		s, err := g.Comments("train", tasks.MaxFillerBytes)
		if err != nil {
			return "", fmt.Errorf("data.filler = %q: %w", src, err)
		}
		return s, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("data.filler: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, tasks.MaxFillerBytes))
	if err != nil {
		return "", fmt.Errorf("data.filler: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", fmt.Errorf("data.filler: %s has no text", src)
	}
	return string(b), nil
}

// EvalTasks evaluates m on every task × length × row, sample by sample
// (batch 1), chunk by chunk.
func EvalTasks(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, o EvalOptions) ([]EvalRow, error) {
	var rows []EvalRow
	for _, name := range o.Tasks {
		var err error
		var rs []EvalRow
		if name == TaskGoRoot {
			rs, err = evalGoRoot(ctx, m, tok, o)
		} else {
			rs, err = evalTask(ctx, m, tok, name, o)
		}
		rows = append(rows, rs...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// measure runs f with the peak memory reset and reports its time and peak.
func measure(o EvalOptions, m *model.Model, f func() error) (secs, peakMB float64, err error) {
	m.DropScratch()
	num.DropBufs()
	runtime.GC()
	debug.FreeOSMemory()
	pids := []int{os.Getpid()}
	if o.PIDs != nil {
		pids = append(pids, o.PIDs()...)
	}
	for _, p := range pids {
		resetPeak(p)
	}
	t0 := time.Now()
	err = f()
	secs = time.Since(t0).Seconds()
	var kb int64
	for _, p := range pids {
		kb += peakKB(p)
	}
	return secs, float64(kb) / 1024, err
}

func (o EvalOptions) update(format string, args ...any) {
	if o.Progress != nil {
		o.Progress.Update(format, args...)
	}
}

// runOne runs one sequence (batch 1) through the model and hands every row of
// logits to row(pos, logits).
// runOne runs one sequence and hands the logits of every position to row;
// with read (the positions row looks at), only the blocks of logits holding
// one, and the attention computes only those rows (model.RunOptions.Rows).
func runOne(ctx context.Context, m *model.Model, b *model.Batch, chunk int, read []bool, row func(pos int, logits []float32) error) error {
	v := m.Dims.Vocab
	_, err := m.Run(ctx, b, model.RunOptions{ChunkSize: chunk, Rows: read}, watch(ctx, func(blk *model.Block) error {
		for i, p := range blk.Index {
			if err := row(p, blk.Logits[i*v:(i+1)*v]); err != nil {
				return err
			}
		}
		return nil
	}))
	return err
}

func newBatch(S int, seed uint64, stream uint64) *model.Batch {
	b := &model.Batch{B: 1, S: S, IDs: make([]int64, S), Timestamps: make([]float32, S), TSpan: []float32{0, 0.25, 0.5, 0.75, 1}}
	data.Timestamps(rand.New(rand.NewPCG(seed, stream)), b.Timestamps, 1, S)
	return b
}

func evalTask(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, name string, o EvalOptions) ([]EvalRow, error) {
	t, err := newTask(name, o, tok, m.Dims.Vocab)
	if err != nil {
		return nil, fmt.Errorf("eval %s: %w", name, err)
	}
	var out []EvalRow
	for _, L := range o.Lengths {
		var rows []EvalRow
		secs, peak, err := measure(o, m, func() error {
			for ri, rname := range t.Rows() {
				var total tasks.Score
				for i := 0; i < o.Samples; i++ {
					o.update("eval %s %d tokens, %s: sample %d/%d", name, L, rname, i+1, o.Samples)
					s, err := t.Sample(L, ri, i)
					if err != nil {
						return err
					}
					b := newBatch(L, o.Seed, uint64(L)<<20|uint64(ri)<<10|uint64(i))
					// The generator streams; the model's batch holds the ids.
					if err := s.Chunks(o.ChunkSize, func(off int, ids []int64) error { copy(b.IDs[off:], ids); return nil }); err != nil {
						return err
					}
					sc := tasks.NewScorer(s)
					if err := runOne(ctx, m, b, o.ChunkSize, sc.Rows(L), sc.Row); err != nil {
						return err
					}
					got, err := sc.Score()
					if err != nil {
						return err
					}
					total.Add(got)
				}
				rows = append(rows, EvalRow{Task: name, Length: L, Row: rname, Samples: o.Samples, Acc: total.Acc(),
					Loss: total.NLL / float64(max(1, total.Targets))})
			}
			return nil
		})
		for i := range rows {
			rows[i].Seconds, rows[i].PeakRSSMB = secs, peak
		}
		out = append(out, rows...)
		if err != nil {
			return out, fmt.Errorf("eval %s at %d tokens: %w", name, L, err)
		}
		if o.Log != nil {
			for _, r := range rows {
				fmt.Fprintf(o.Log, "eval %s %d tokens %s: acc %.4f loss %.4f (%d samples, %.1fs, peak %.0f MB)\n", name, L, r.Row, r.Acc, r.Loss, r.Samples, secs, peak)
			}
		}
	}
	return out, nil
}

// byteLens is each token id's length in bytes (0 past the tokenizer's vocabulary).
func byteLens(tok *tokenizer.Tokenizer, vocab int) ([]int, error) {
	out := make([]int, vocab)
	for id := 0; id < min(vocab, tok.VocabSize()); id++ {
		s, err := tok.Decode([]int{id}, false)
		if err != nil {
			return nil, err
		}
		out[id] = len(s)
	}
	return out, nil
}

func evalGoRoot(ctx context.Context, m *model.Model, tok *tokenizer.Tokenizer, o EvalOptions) ([]EvalRow, error) {
	root, err := corpus.Root()
	if err != nil {
		return nil, fmt.Errorf("eval goroot: %w", err)
	}
	g, err := corpus.Open(root, o.ValidFraction)
	if err != nil {
		return nil, fmt.Errorf("eval goroot: %w", err)
	}
	maxL := slices.Max(o.Lengths)
	// Documents long enough for the longest length come first (largest
	// first); about one byte per token is a safe lower bound to try.
	docs, err := g.Docs("valid", int64(min(slices.Min(o.Lengths), 1024)))
	if err != nil {
		return nil, fmt.Errorf("eval goroot: %w", err)
	}
	var ids [][]int64
	var names []string
	for _, d := range docs {
		if len(ids) == o.Samples {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("eval goroot: %w", err)
		}
		text, err := g.Read(d)
		if err != nil {
			return nil, fmt.Errorf("eval goroot: %w", err)
		}
		enc, err := taskEncoder{tok}.Encode(text)
		if err != nil {
			return nil, fmt.Errorf("eval goroot: %w", err)
		}
		ids = append(ids, enc[:min(len(enc), maxL)])
		names = append(names, d.Pkg)
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "eval goroot: %d held-out package documents (%s)\n", len(ids), strings.Join(names, ", "))
	}
	bl, err := byteLens(tok, m.Dims.Vocab)
	if err != nil {
		return nil, fmt.Errorf("eval goroot: %w", err)
	}
	var out []EvalRow
	for _, L := range o.Lengths {
		mt := corpus.NewMeter(bl)
		n := 0
		secs, peak, err := measure(o, m, func() error {
			for di, doc := range ids {
				if len(doc) < L {
					continue
				}
				n++
				o.update("eval goroot %d tokens: document %d/%d", L, di+1, len(ids))
				b := newBatch(L, o.Seed, uint64(L)<<20|uint64(di))
				copy(b.IDs, doc[:L])
				err := runOne(ctx, m, b, o.ChunkSize, nil, func(pos int, logits []float32) error {
					if pos+1 >= L {
						return nil
					}
					return mt.Row(pos, logits, doc[pos+1])
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		r := EvalRow{Task: TaskGoRoot, Length: L, Row: "bits/byte", Samples: n, Acc: math.NaN(), Seconds: secs, PeakRSSMB: peak,
			Loss: mt.Nats / float64(max(1, mt.Tokens)), BPB: mt.BPB(), Buckets: map[string]float64{}}
		for i, bk := range corpus.Buckets {
			if bk.Lo < L {
				r.Buckets[bk.Name] = mt.BucketLoss(i)
			}
		}
		if n == 0 {
			r.Loss = math.NaN()
		}
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("eval goroot at %d tokens: %w", L, err)
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "eval goroot %d tokens: %.4f bits/byte, loss %.4f, by position %v (%d documents, %.1fs, peak %.0f MB)\n", L, r.BPB, r.Loss, r.Buckets, n, secs, peak)
		}
	}
	return out, nil
}

// EvalMetrics are the metrics.json values of the rows: per task × length the
// mean accuracy over rows (goroot: bits per byte), and the peak memory.
func EvalMetrics(rows []EvalRow) map[string]float64 {
	sum := map[string]float64{}
	cnt := map[string]int{}
	for _, r := range rows {
		k := MetricName(r.Task, r.Length)
		v := r.Acc
		if r.Task == TaskGoRoot {
			v = r.BPB
		}
		sum[k] += v
		cnt[k]++
		sum[fmt.Sprintf("eval.peak_rss_mb@%d", r.Length)] = math.Max(sum[fmt.Sprintf("eval.peak_rss_mb@%d", r.Length)], r.PeakRSSMB)
	}
	out := map[string]float64{}
	for k, v := range sum {
		if n := cnt[k]; n > 0 {
			v /= float64(n)
		}
		out[k] = v
	}
	return out
}

// evalFile is the content of eval.json.
type evalFile struct {
	Chunk   int       `json:"chunk_size"`
	Samples int       `json:"samples"`
	Filler  string    `json:"filler"`
	Rows    []EvalRow `json:"rows"`
}

// WriteEval writes eval.json into a cell directory.
func WriteEval(dir string, o EvalOptions, rows []EvalRow) error {
	f := evalFile{Chunk: o.ChunkSize, Samples: o.Samples, Filler: o.FillerFile, Rows: rows}
	if f.Filler == "" {
		f.Filler = "built-in"
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return results.WriteFileAtomic(filepath.Join(dir, EvalFile), append(b, '\n'))
}

// EvalTable writes the rows as a table: one column per task × length, one
// line per row of a task (passkey depths, MQAR pair counts), then time and
// peak memory per length.
func EvalTable(w io.Writer, rows []EvalRow) {
	var lengths []int
	for _, r := range rows {
		if !slices.Contains(lengths, r.Length) {
			lengths = append(lengths, r.Length)
		}
	}
	slices.Sort(lengths)
	type key struct {
		task, row string
		length    int
	}
	cell := map[key]EvalRow{}
	var order []key
	for _, r := range rows {
		k := key{r.Task, r.Row, 0}
		if !slices.Contains(order, k) {
			order = append(order, k)
		}
		k.length = r.Length
		cell[k] = r
	}
	fmt.Fprintf(w, "%-16s %-12s", "task", "row")
	for _, l := range lengths {
		fmt.Fprintf(w, " %10s", lengthName(l))
	}
	fmt.Fprintln(w)
	line := func(k key, what string, f func(EvalRow) string) {
		fmt.Fprintf(w, "%-16s %-12s", k.task, what)
		for _, l := range lengths {
			k.length = l
			s := "—"
			if r, ok := cell[k]; ok {
				s = f(r)
			}
			fmt.Fprintf(w, " %10s", s)
		}
		fmt.Fprintln(w)
	}
	tasksSeen := []string{}
	for _, k := range order {
		if k.task == TaskGoRoot {
			line(k, "bits/byte", func(r EvalRow) string { return fmt.Sprintf("%.4f", r.BPB) })
			for _, b := range corpus.Buckets {
				line(k, "loss "+b.Name, func(r EvalRow) string {
					if v, ok := r.Buckets[b.Name]; ok {
						return fmt.Sprintf("%.4f", v)
					}
					return "—"
				})
			}
		} else {
			line(k, k.row, func(r EvalRow) string { return fmt.Sprintf("%.3f", r.Acc) })
		}
		if !slices.Contains(tasksSeen, k.task) {
			tasksSeen = append(tasksSeen, k.task)
		}
	}
	for _, t := range tasksSeen {
		for _, k := range order {
			if k.task == t {
				line(k, "seconds", func(r EvalRow) string { return fmt.Sprintf("%.1f", r.Seconds) })
				line(k, "peak MB", func(r EvalRow) string { return fmt.Sprintf("%.0f", r.PeakRSSMB) })
				break
			}
		}
	}
}

func lengthName(l int) string {
	if l%1024 == 0 {
		return fmt.Sprintf("%dk", l/1024)
	}
	return fmt.Sprint(l)
}

// evalAfterTrain runs the experiment's long-context evaluation on the cell's
// trained checkpoint (a fresh model when nothing was trained), writes eval.json
// and adds the summary to the metrics.
func evalAfterTrain(ctx context.Context, e *config.Experiment, stages map[string]stage.Stage, pids func() []int, dir string, metrics *results.Metrics, log io.Writer, prog Progress) error {
	if len(e.Eval.Tasks) == 0 {
		return nil
	}
	o, err := EvalOptionsFor(e)
	if err != nil {
		return err
	}
	o.PIDs, o.Progress, o.Log = pids, prog, log
	tok, err := LoadTokenizer(e)
	if err != nil {
		return err
	}
	m, err := BuildModel(ctx, e, stages)
	if err != nil {
		return err
	}
	ckpt := filepath.Join(dir, "checkpoint.safetensors")
	if _, serr := os.Stat(ckpt); serr == nil {
		if err := m.LoadCheckpoint(ckpt); err != nil {
			return fmt.Errorf("eval: %w", err)
		}
	} else if e.Train.Steps > 0 {
		return fmt.Errorf("eval: the trained checkpoint %s is missing (see the log)", ckpt)
	}
	rows, err := EvalTasks(ctx, m, tok, o)
	if len(rows) > 0 {
		for k, v := range EvalMetrics(rows) {
			metrics.Values[k] = v
		}
		if werr := WriteEval(dir, o, rows); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
