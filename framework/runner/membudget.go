package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/config"
	"liquidlab/framework/model"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
)

// The memory budget: before a cell allocates its model, the host estimates the
// cell's peak resident memory from the resolved configuration and refuses the
// cell, with the estimate and the limit, when it exceeds the memory available
// (MemAvailable, the cgroup's limit) or run.max_memory. The estimate follows the
// memory layout of a batch run (framework/model: run.go's allocate, chunk.go):
// parameters, their gradients and AdamW's two moments; the host's per-chunk
// buffers and the head's block of logits; each stage's activations from its
// Description's MemoryHint (a generic formula for a stage without one); the
// batch, the data, and a fixed overhead per process. Measured against bench
// peaks it is an estimate, not a bound (see the bench table's estimate column).

// Fixed overheads, calibrated on bench peaks of the quickstart model (Go
// runtime, binary, OpenBLAS's buffers): in process it peaked at 37–56 MB,
// with its four plugins at 150–194 MB (two sittings).
const (
	hostBaseBytes   = 48 << 20 // the liquidlab host process
	pluginBaseBytes = 30 << 20 // one plugin process (four in plugin mode)
	// gcHeadroom is the garbage the Go heap holds beyond its live data between
	// collections: liquidlab runs with GOGC = 25 (cmd/liquidlab/main.go).
	gcHeadroom = 1.25
)

// MemoryPart is one named share of an estimate.
type MemoryPart struct {
	Name  string
	Bytes int64
}

// MemoryEstimate is the estimated peak resident memory of one pass of a cell
// (a training step, an evaluation, one bench row), host and plugins together.
type MemoryEstimate struct {
	Pass  string // "train 8×128", "bench train 4096", ...
	Parts []MemoryPart
	Total int64
}

// maxPart caps every part of an estimate (64 PiB), so a hostile size or hint
// cannot overflow the sum: it is refused as "more than the limit" instead.
const maxPart = 1 << 56

// clampBytes converts a byte count computed in float64 to int64, at most maxPart.
func clampBytes(f float64) int64 {
	if !(f < maxPart) { // NaN too
		return maxPart
	}
	return int64(max(f, 0))
}

func (m *MemoryEstimate) add(name string, bytes int64) {
	bytes = min(bytes, maxPart)
	if bytes > 0 {
		m.Parts = append(m.Parts, MemoryPart{name, bytes})
	}
}

// String lists the estimate's total and its largest parts.
func (m MemoryEstimate) String() string {
	parts := append([]MemoryPart(nil), m.Parts...)
	sort.SliceStable(parts, func(i, j int) bool { return parts[i].Bytes > parts[j].Bytes })
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s:", FormatBytes(m.Total), m.Pass)
	for i, p := range parts {
		if i == 4 {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s %s", p.Name, FormatBytes(p.Bytes))
	}
	b.WriteString(")")
	return b.String()
}

// FormatBytes writes a byte count in MiB or GiB.
func FormatBytes(b int64) string {
	if b >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// pass is one batch run to estimate.
type pass struct {
	name     string
	b, s     int
	chunk    int // 0: the whole sequence
	train    bool
	dataSize int64 // bytes of the loaded data (training only)
}

// genericHint is the activations assumed for a stage that gives no
// MemoryHint: per token 16 vectors of the stage's widest dimension kept for
// the backward and 8 while it runs, no state that grows with the sequence.
func genericHint(e *config.Experiment) *stage.MemoryHint {
	w := int64(max(e.Model.EmbeddingDim, e.Model.HiddenSize, e.Model.LatentDim, e.Model.HiddenDim))
	return &stage.MemoryHint{Saved: 16 * w, Work: 8 * w}
}

// paramFloats counts the model's parameters: the host's tensors and every
// stage's ParamSpecs.
func paramFloats(e *config.Experiment, descs map[string]*stage.Description) (host, stages int64) {
	m := e.Model
	v, d, h := int64(m.VocabSize), int64(m.EmbeddingDim), int64(m.HiddenSize)
	host = v*d + v
	if !m.TieOutput {
		host += v * h
	}
	for _, k := range stage.Kinds {
		if descs[k] == nil {
			continue
		}
		var sum float64
		for _, p := range descs[k].Params {
			n := 1.0
			for _, x := range p.Shape {
				n *= float64(x)
			}
			sum += n
		}
		stages += min(clampBytes(sum), maxPart/4)
	}
	return host, min(stages, maxPart/4)
}

// estimatePass estimates the peak of one batch run.
func estimatePass(e *config.Experiment, descs map[string]*stage.Description, p pass) MemoryEstimate {
	const f4 = 4 // bytes per float32
	m := e.Model
	V, D, L, H := int64(m.VocabSize), int64(m.EmbeddingDim), int64(m.LatentDim), int64(m.HiddenSize)
	B, S := int64(p.b), int64(p.s)
	c := int64(p.chunk)
	if c <= 0 || c > S {
		c = S
	}
	n := B * c // rows of one chunk
	plugins := e.Run.Mode != config.ModeInProcess
	est := MemoryEstimate{Pass: p.name}

	hostP, stageP := paramFloats(e, descs)
	P := hostP + stageP
	est.add("parameters", f4*P)
	if p.train {
		est.add("gradients", f4*P)
		est.add("AdamW moments", 2*f4*P)
	}
	if plugins {
		// Each call ships a stage's parameters through shared memory, and the
		// plugin returns their gradients the same way.
		k := int64(1)
		if p.train {
			k = 2
		}
		est.add("parameters in shared memory", k*f4*stageP)
	}

	// The host's buffers (model/run.go allocate) and the head.
	ha := H + 1
	headRows := min(int64(model.HeadRowsFor(int(V))), max(n, 1)) // model.RunOptions' default block
	buf := n*D + n + n*H + headRows*V                            // chunk buffers and one block of logits (training overwrites them with dlogits)
	bf := m.HeadPrecision == "bf16"
	pk := model.FP32HeadPacked()                               // the head's float32 products on package packed's kernels
	hp := (H + packed.Panel - 1) / packed.Panel * packed.Panel // H padded to whole panels
	sgemm := !pk && (!bf || p.train)
	if sgemm || p.train {
		buf += headRows * ha // [e | 1] of one block
	}
	if sgemm {
		buf += V * ha // [W_o | b_o]
	}
	if bf {
		buf += V * ha / 2 // the bf16 copy
	} else if pk {
		buf += V * hp // W_o in panels
	}
	if p.train && pk {
		// W_o in panels for dlogits·W_o, one block's e in panels, and the
		// kernel's strips of dlogits (malloc'd per core, outside Go's heap).
		buf += V*hp + headRows*hp + int64(runtime.GOMAXPROCS(0))*96*headRows
	}
	if p.train {
		buf += V*ha + n*H // dW_o|b_o, de
	}
	est.add("head and chunk buffers", f4*buf)
	// The batch (int64 ids, timestamps), the log-det-Jacobian and the chunk's
	// tensors between stages (z, e, y and, training, their gradients): in
	// plugin mode in shared memory, which both sides touch.
	io := n*(L+2*H+D) + B*H
	if p.train {
		io *= 2
	}
	if plugins {
		io *= 2
	}
	est.add("batch and stage inputs/outputs", f4*(3*B*S+B*S+io))

	// The stages' activations.
	var saved, state, row, work, maxWork float64
	fn, fB, fS := float64(n), float64(B), float64(S)
	generic := genericHint(e)
	for _, k := range stage.Kinds {
		h := generic
		if d := descs[k]; d != nil && d.Memory != nil {
			h = d.Memory
		}
		if p.train {
			saved += float64(h.Saved) * fn
		}
		state += float64(h.State) * fB * fS
		row += float64(h.Row) * fB
		work += float64(h.Work) * fn
		maxWork = max(maxWork, float64(h.Work)*fn)
	}
	if !plugins {
		// In one process the stages run one after another and share a heap.
		work = maxWork
	}
	est.add("stage activations (saved for the backward)", clampBytes(f4*saved))
	est.add("stage working memory", clampBytes(f4*work))
	est.add("stage state growing with the sequence", clampBytes(f4*state))
	est.add("stage state per sequence", clampBytes(f4*row))
	est.add("data", p.dataSize)

	var dyn int64
	for _, part := range est.Parts {
		dyn += part.Bytes
	}
	est.Total = int64(float64(dyn) * gcHeadroom)
	est.add("Go heap headroom (GOGC 25)", est.Total-dyn)
	est.add("host process", hostBaseBytes)
	est.Total += hostBaseBytes
	if plugins {
		est.add("plugin processes", int64(len(stage.Kinds))*pluginBaseBytes)
		est.Total += int64(len(stage.Kinds)) * pluginBaseBytes
	}
	return est
}

// dataBytes estimates the memory of a cell's loaded data: for a file source,
// its text (bounded by data.max_bytes) and the token ids made of it, held
// whole and again as sequences (int64 ids of at least about 2 bytes of text
// each: 6× the text); a generated or built-in source is small and not counted.
func dataBytes(e *config.Experiment) int64 {
	src := e.Data.Source
	if src == "" || src == "builtin" || strings.HasPrefix(src, SourceTaskPrefix) {
		return 0
	}
	fi, err := os.Stat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	size := fi.Size()
	limit := e.Data.MaxBytes
	if limit <= 0 {
		limit = config.DefaultMaxBytes
	}
	return 6 * min(size, limit)
}

// Phases says which parts of a cell run: training (with its evaluation and the
// long-context tasks) and the benchmark.
type Phases struct{ Train, Bench bool }

// EstimateMemory estimates every pass a cell runs and returns them with the
// largest, the cell's estimated peak. descs are the cell's stage descriptions
// (a nil one, or one without a MemoryHint, gets the generic formula).
func EstimateMemory(e *config.Experiment, descs map[string]*stage.Description, ph Phases) (peak MemoryEstimate, passes []MemoryEstimate) {
	if ph.Train {
		if e.Train.Steps > 0 {
			passes = append(passes, estimatePass(e, descs, pass{name: fmt.Sprintf("train %d×%d", e.Train.Batch, e.Data.SeqLen),
				b: e.Train.Batch, s: e.Data.SeqLen, chunk: e.Run.ChunkSize, train: true, dataSize: dataBytes(e)}))
		}
		if e.Eval.Batches > 0 {
			passes = append(passes, estimatePass(e, descs, pass{name: fmt.Sprintf("eval %d×%d", e.Train.Batch, e.Data.SeqLen),
				b: e.Train.Batch, s: e.Data.SeqLen, chunk: e.Run.ChunkSize, dataSize: dataBytes(e)}))
		}
		if len(e.Eval.Tasks) > 0 {
			if o, err := EvalOptionsFor(e); err == nil {
				for _, l := range o.Lengths {
					passes = append(passes, estimatePass(e, descs, pass{name: fmt.Sprintf("eval tasks %d", l), b: 1, s: l, chunk: o.ChunkSize}))
				}
			}
		}
	}
	if ph.Bench {
		for _, mode := range e.Bench.Modes {
			for _, l := range e.Bench.Lengths {
				passes = append(passes, BenchEstimate(e, descs, mode, l))
			}
		}
	}
	for _, p := range passes {
		if p.Total > peak.Total {
			peak = p
		}
	}
	return peak, passes
}

// BenchEstimate estimates one bench row: mode (forward, eval, train) at
// length l with bench.batch and run.chunk_size.
func BenchEstimate(e *config.Experiment, descs map[string]*stage.Description, mode string, l int) MemoryEstimate {
	return estimatePass(e, descs, pass{name: fmt.Sprintf("bench %s %d", mode, l), b: e.Bench.Batch, s: l,
		chunk: e.Run.ChunkSize, train: mode == config.BenchTrain})
}

// MemoryLimit is the memory a cell may use and where that limit comes from:
// the smallest of run.max_memory, MemAvailable (/proc/meminfo) and what the
// cgroup's limit leaves. 0 means no limit is known.
func MemoryLimit(e *config.Experiment) (int64, string) {
	var limit int64
	var from string
	take := func(v int64, what string) {
		if v > 0 && (limit == 0 || v < limit) {
			limit, from = v, what
		}
	}
	if v, err := config.ParseBytes(e.Run.MaxMemory); err == nil && v > 0 {
		take(v, fmt.Sprintf("run.max_memory = %q", e.Run.MaxMemory))
	}
	if v := memAvailable("/proc/meminfo"); v > 0 {
		take(v, "the available memory (MemAvailable in /proc/meminfo)")
	}
	if v, what := cgroupRoom(); v > 0 {
		take(v, what)
	}
	return limit, from
}

// memAvailable reads MemAvailable from a meminfo file, in bytes; 0 if absent.
func memAvailable(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	return parseMemAvailable(f)
}

func parseMemAvailable(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			fs := strings.Fields(v)
			if len(fs) >= 1 {
				kb, err := strconv.ParseInt(fs[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// cgroupRoom is what this process's cgroup may still use: its memory limit
// less its current use (cgroup v2 memory.max and memory.current, or v1
// memory.limit_in_bytes and memory.usage_in_bytes); 0 when there is no limit.
func cgroupRoom() (int64, string) {
	read := func(p string) int64 {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0 // "max": no limit
		}
		return v
	}
	for _, pair := range [][2]string{
		{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
		{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
	} {
		lim, cur := read(pair[0]), read(pair[1])
		if lim > 0 && lim < 1<<60 {
			return max(lim-cur, 1), fmt.Sprintf("the cgroup's memory limit %s less its use %s (%s)", FormatBytes(lim), FormatBytes(cur), pair[0])
		}
	}
	return 0, ""
}

// BudgetError is a cell refused by the memory budget.
type BudgetError struct {
	Estimate MemoryEstimate
	Limit    int64
	From     string
}

func (b *BudgetError) Error() string {
	return fmt.Sprintf("refused by the memory budget: the estimated peak is %s, more than %s, %s; lower the batch, the sequence length, run.chunk_size or the model's sizes, or raise run.max_memory",
		b.Estimate, FormatBytes(b.Limit), b.From)
}

// CheckMemory refuses a cell whose estimated peak exceeds MemoryLimit.
func CheckMemory(e *config.Experiment, descs map[string]*stage.Description, ph Phases) (MemoryEstimate, error) {
	peak, _ := EstimateMemory(e, descs, ph)
	limit, from := MemoryLimit(e)
	if limit > 0 && peak.Total > limit {
		return peak, &BudgetError{Estimate: peak, Limit: limit, From: from}
	}
	return peak, nil
}

// Descriptions returns the stage descriptions of an experiment with their
// memory hints, without starting a plugin for a built-in component (plugin
// binaries given by path are asked through describe; one built before the
// protocol carried the hint gets the generic formula).
func (l *Launcher) Descriptions(ctx context.Context, e *config.Experiment, describe config.Describer) (map[string]*stage.Description, error) {
	out := map[string]*stage.Description{}
	for _, kind := range stage.Kinds {
		comp := e.Components[kind]
		cfg := e.StageConfig(kind)
		var d *stage.Description
		var err error
		if comp.IsPath() {
			if describe == nil {
				continue
			}
			d, err = describe(kind, comp.Impl, cfg.Options)
		} else {
			var st stage.Stage
			if st, err = l.Registry.New(kind, comp.Impl); err == nil {
				d, err = st.Describe(ctx, cfg)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s component %q: %w", kind, comp.Impl, err)
		}
		out[kind] = d
	}
	return out, nil
}

// checkBudget estimates a started cell's peak memory, writes it to the cell's
// log and refuses the cell when it exceeds MemoryLimit. The descriptions are
// those the stages gave; a built-in whose description lacks the hint (a plugin
// binary built before the protocol carried it) gets it from the same component
// in process.
func (r *Runner) checkBudget(ctx context.Context, cr *cellRun) error {
	if cr.st == nil {
		return nil
	}
	e := cr.cell.Exp
	descs := map[string]*stage.Description{}
	for k, d := range cr.st.Descs {
		descs[k] = d
		if d == nil || d.Memory != nil || e.Components[k].IsPath() {
			continue
		}
		if st, err := r.Launcher.Registry.New(k, e.Components[k].Impl); err == nil {
			if local, err := st.Describe(ctx, e.StageConfig(k)); err == nil && local.Memory != nil {
				dd := *d
				dd.Memory = local.Memory
				descs[k] = &dd
			}
		}
	}
	cr.descs = descs
	peak, err := CheckMemory(e, descs, Phases{Train: cr.o.Train, Bench: cr.o.Bench && len(e.Bench.Lengths) > 0})
	if peak.Total > 0 {
		fmt.Fprintf(cr.log, "memory estimate: %s\n", peak)
	}
	return err
}
