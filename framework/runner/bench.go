package runner

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"liquidlab/framework/data"
	"liquidlab/framework/model"
	"liquidlab/framework/results"
	"liquidlab/framework/train"
)

// BenchOptions say what to measure.
type BenchOptions struct {
	Lengths   []int
	Batch     int
	Modes     []string // forward, eval, train
	Warmup    int
	Repeats   int
	ChunkSize int
	Seed      uint64
	PIDs      func() []int // plugin processes whose memory counts too
	Progress  Progress
	// Estimate is the memory budget's estimate of a row's peak in bytes
	// (BenchEstimate); nil: none.
	Estimate func(mode string, length int) int64
}

// Bench measures the model at every length and mode: time per batch (median
// over repeats after warm-up, with the spread max−min), tokens per second, and
// the peak resident memory of this process plus the plugin processes during the
// measurement (VmHWM, reset before each configuration through clear_refs).
func Bench(ctx context.Context, m *model.Model, o BenchOptions) ([]results.BenchRow, error) {
	var rows []results.BenchRow
	rng := rand.New(rand.NewPCG(o.Seed, 0xbe4c))
	var opt *train.AdamW
	for _, mode := range o.Modes {
		for _, S := range o.Lengths {
			B := o.Batch
			b := &model.Batch{B: B, S: S, IDs: make([]int64, B*S), Timestamps: make([]float32, B*S), TSpan: []float32{0, 0.25, 0.5, 0.75, 1}}
			// Like the peer, avoid ids 0 and 1 (<s>, <pad>) when there are others.
			first := int64(min(2, m.Dims.Vocab-1))
			for i := range b.IDs {
				b.IDs[i] = first + rng.Int64N(int64(m.Dims.Vocab)-first)
			}
			data.Timestamps(rng, b.Timestamps, B, S)
			if mode == "train" && opt == nil {
				opt = train.NewAdamW(1e-4, 5e-3)
			}
			step := func() (map[string]float64, error) {
				switch mode {
				case "forward":
					res, err := m.Run(ctx, b, model.RunOptions{ChunkSize: o.ChunkSize}, watch(ctx, func(*model.Block) error { return nil }))
					if err != nil {
						return nil, err
					}
					return headStats(res), nil
				case "eval":
					var loss float64
					var correct int
					res, err := m.Run(ctx, b, model.RunOptions{ChunkSize: o.ChunkSize}, watch(ctx, model.CrossEntropy(b.IDs, -1, B*S, &loss, &correct)))
					if err != nil {
						return nil, err
					}
					return headStats(res), nil
				case "train":
					var loss float64
					m.Params.ZeroGrad()
					res, err := m.Run(ctx, b, model.RunOptions{ChunkSize: o.ChunkSize, Train: true}, watch(ctx, model.CrossEntropy(b.IDs, -1, B*S, &loss, nil)))
					if err != nil {
						return nil, err
					}
					pprof.Do(ctx, pprof.Labels("step", "clip"), func(context.Context) { train.ClipGradNorm(&m.Params, 1) })
					pprof.Do(ctx, pprof.Labels("step", "adamw"), func(context.Context) { opt.Step(&m.Params, 1e-4) })
					return headStats(res), nil
				}
				return nil, fmt.Errorf("unknown bench mode %q (forward, eval, train)", mode)
			}
			m.DropScratch()
			runtime.GC()
			debug.FreeOSMemory()
			pids := []int{os.Getpid()}
			if o.PIDs != nil {
				pids = append(pids, o.PIDs()...)
			}
			for _, p := range pids {
				resetPeak(p)
			}
			row := results.BenchRow{Mode: mode, SeqLen: S, Batch: B, ChunkSize: o.ChunkSize}
			var stats map[string]float64      // the last repeat's
			var runStats []map[string]float64 // every measured repeat's
			for i := 0; i < o.Warmup+o.Repeats; i++ {
				if o.Progress != nil {
					o.Progress.Update("bench %s %d tokens: run %d/%d", mode, S, i+1, o.Warmup+o.Repeats)
				}
				t0 := time.Now()
				st, err := step()
				if err != nil {
					return rows, fmt.Errorf("bench %s at %d tokens: %w", mode, S, err)
				}
				if i >= o.Warmup {
					row.TimesS = append(row.TimesS, time.Since(t0).Seconds())
					runStats = append(runStats, st)
				}
				stats = st
			}
			row.MedianS = median(row.TimesS)
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, t := range row.TimesS {
				lo, hi = math.Min(lo, t), math.Max(hi, t)
			}
			row.SpreadS = hi - lo
			row.TokensPerS = float64(B*S) / row.MedianS
			var kb int64
			for _, p := range pids {
				kb += peakKB(p)
			}
			row.PeakMemGB = float64(kb) / (1 << 20)
			if o.Estimate != nil {
				row.EstMemGB = float64(o.Estimate(mode, S)) / (1 << 30)
			}
			if f := stats["attention.flops"]; f > 0 {
				if mode == "train" {
					f += stats["attention.flops_backward"]
				}
				tok := float64(B * S)
				row.Notes = append(row.Notes, fmt.Sprintf("attention %.3g MFLOP/token (%s): %.1f GFLOP/s measured over the whole pass's time",
					f/tok/1e6, map[bool]string{true: "forward + backward", false: "forward"}[mode == "train"], f/row.MedianS/1e9))
			}
			if n := stats["ode.nfe"]; n > 0 {
				row.Notes = append(row.Notes, fmt.Sprintf("ode nfe %g (accepted %g, rejected %g)", n, stats["ode.accepted"], stats["ode.rejected"]))
			}
			// Times by step are medians over the measured runs, as the
			// batch's time is: one run's split swings with the machine.
			med := medianStats(runStats)
			runs := fmt.Sprintf("median of %d runs", len(runStats))
			if hs := med[statHeadS]; hs > 0 && row.MedianS > 0 {
				row.Notes = append(row.Notes, fmt.Sprintf("head %s: %.3f s of %.3f s (%s, %.0f%%)%s",
					m.Dims.HeadPath(), hs, row.MedianS, runs, 100*hs/row.MedianS, headBackNote(med[statHeadBackS], mode)))
			}
			if n := stepNote(med); n != "" && row.MedianS > 0 {
				row.Notes = append(row.Notes, fmt.Sprintf("wall time by step (%s; the batch %.3f s): %s", runs, row.MedianS, n))
			}
			if o.ChunkSize > 0 && o.ChunkSize < S && strings.Contains(stats2methods(m), "adaptive") {
				row.Notes = append(row.Notes, fmt.Sprintf("chunked by %d: the adaptive ODE chooses its step sizes per chunk, so results differ slightly from one whole-sequence solve", o.ChunkSize))
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// Keys under which Bench keeps the head's times among a run's stats.
const (
	statHeadS     = "host.head_seconds"
	statHeadBackS = "host.head_backward_seconds"
)

// headStats returns a Run's stage statistics with the head's times added.
func headStats(res *model.Result) map[string]float64 {
	st := map[string]float64{statHeadS: res.HeadS, statHeadBackS: res.HeadBackS}
	for k, v := range res.Stats {
		st[k] = v
	}
	return st
}

// medianStats is, for every key of the runs' statistics, the median of its
// values (a run without the key counts as 0).
func medianStats(runs []map[string]float64) map[string]float64 {
	keys := map[string]bool{}
	for _, st := range runs {
		for k := range st {
			keys[k] = true
		}
	}
	med := make(map[string]float64, len(keys))
	vs := make([]float64, len(runs))
	for k := range keys {
		for i, st := range runs {
			vs[i] = st[k]
		}
		med[k] = median(vs)
	}
	return med
}

// stepNote lists a run's wall time by step (model.StepSeconds), longest
// first: "head 0.201 s, flows 0.031 s, …".
func stepNote(stats map[string]float64) string {
	type step struct {
		name string
		s    float64
	}
	var steps []step
	for k, v := range stats {
		if name, ok := strings.CutPrefix(k, model.StepSeconds); ok && v > 0 {
			steps = append(steps, step{name, v})
		}
	}
	sort.Slice(steps, func(i, j int) bool {
		if steps[i].s != steps[j].s {
			return steps[i].s > steps[j].s
		}
		return steps[i].name < steps[j].name
	})
	parts := make([]string, len(steps))
	for i, s := range steps {
		parts[i] = fmt.Sprintf("%s %.3f s", s.name, s.s)
	}
	return strings.Join(parts, ", ")
}

// headBackNote says which part of a training run's head time is its float32
// backward.
func headBackNote(back float64, mode string) string {
	if mode != "train" {
		return ""
	}
	return fmt.Sprintf(", of which %.3f s the float32 backward", back)
}

// resetPeak resets a process's peak RSS (VmHWM) so the next reading covers only
// what follows; it is best effort (another user's process cannot be reset).
func resetPeak(pid int) {
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/clear_refs", []byte("5"), 0)
}

// peakKB reads a process's peak resident set size in KiB.
func peakKB(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// stats2methods says whether any stage integrates with an adaptive method.
func stats2methods(m *model.Model) string {
	for _, cfg := range m.Configs {
		switch cfg.Options["method"] {
		case "dopri5", "bosh3":
			return "adaptive"
		}
	}
	return ""
}
