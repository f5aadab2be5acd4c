package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/config"
	"liquidlab/framework/model"
	"liquidlab/framework/num"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/report"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
)

func init() {
	register("bench", command{summary: "measure memory, time per batch and tokens/s at long sequence lengths", run: cmdBench})
}

const benchDoc = `bench [flags] EXPERIMENT.toml

For every cell of the experiment and every configured length (bench.lengths,
default 4096, 8192, 16384, 32768) and mode (bench.modes: forward = logits for
every position, each block handed on and dropped; eval = forward plus loss and
accuracy; train = forward, backward and an AdamW step), measures after
bench.warmup runs the time per batch over bench.repeats runs (median, spread =
max − min), tokens per second, and the peak resident memory of this process and
its plugin processes together. Prints the table in the seed README's format with
the README's documented figures in their own columns, the machine, the BLAS, and
the share of this machine's sgemm peak the model's matrix products reach (the
peak: 2048³ products timed before and after the runs, the better reading;
where the float32 head runs on the AVX-512F packed-weight kernel, that kernel's
own 2048³ peak is reported beside it as a stricter yardstick).
The output head's float32 products (the fp32 head's forward, and in training
either head's backward) run on that kernel where the CPU has AVX-512F, whatever
OPENBLAS_CORETYPE says; LIQUIDLAB_HEAD_KERNEL=sgemm puts them on OpenBLAS's sgemm
(for comparison), =packed makes a CPU without the kernel an error.
Writes results/<experiment>.bench/<cell>/ and bench.json / bench.csv there.

Example:
  liquidlab bench experiments/seed-table.toml
  liquidlab bench -set bench.lengths=[4096] -set bench.modes=["forward"] experiments/seed-table.toml`

func cmdBench(e *env, args []string) error {
	fs := newFlags(e, "bench", benchDoc)
	var sets setFlags
	fs.Var(&sets, "set", "override a setting, key.path=value (repeatable)")
	lengths := fs.String("lengths", "", "comma-separated sequence lengths (overrides bench.lengths)")
	modes := fs.String("modes", "", "comma-separated modes: forward, eval, train (overrides bench.modes)")
	dir := fs.String("results", "results", "results directory")
	format := fs.String("format", "text", "table format: text, markdown, csv, json")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the host process to this file (go tool pprof)")
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
		return fmt.Errorf("bench: want one experiment file: %w", errUsage)
	}
	if *lengths != "" {
		sets = append(sets, "bench.lengths=["+*lengths+"]")
	}
	if *modes != "" {
		var q []string
		for _, m := range strings.Split(*modes, ",") {
			q = append(q, strconv.Quote(strings.TrimSpace(m)))
		}
		sets = append(sets, "bench.modes=["+strings.Join(q, ",")+"]")
	}
	a := experimentArgs{Path: fs.Arg(0), Overrides: sets}
	return withApp(e, a, *dir, func(ctx context.Context, exp *config.Experiment, r *runner.Runner) error {
		if err := exp.Validate(r.Launcher.Describer(ctx, exp)); err != nil {
			return err
		}
		if len(exp.Bench.Lengths) == 0 {
			return fmt.Errorf("bench: %s has no bench.lengths", exp.File)
		}
		if err := model.CheckHeadKernel(); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		fmt.Fprintf(e.stderr, "measuring sgemm peak...\n")
		// pprof labels tell the probe from the runs in a -cpuprofile
		// (`go tool pprof -tagfocus part=bench-run`); goroutines started
		// inside, such as num.Gemm's halves, inherit them.
		// The probe runs before and after the cells and the bound uses the
		// better reading: on a shared VM one probe read anywhere from 285 to
		// 378 GFLOP/s within minutes while the model's products ran at a
		// steady rate, and a low reading inflates the percentage.
		// Where the float32 head runs on package packed's kernel, that
		// kernel's own 2048³ rate (B packed beforehand, as the head's weight
		// is) is probed too: a stricter yardstick, since OpenBLAS's time
		// includes packing both operands on every call.
		var probes, pkProbes []float64
		probePacked := model.FP32HeadPacked()
		probe := func() {
			pprof.Do(ctx, pprof.Labels("part", "sgemm-peak"), func(context.Context) {
				probes = append(probes, num.SgemmPeak(num.PeakSize, 5))
				if probePacked {
					pkProbes = append(pkProbes, packed.Peak(num.PeakSize, 5))
				}
			})
		}
		probe()
		var out []runner.CellOutcome
		var err error
		pprof.Do(ctx, pprof.Labels("part", "bench-run"), func(ctx context.Context) {
			out, err = r.Run(ctx, exp, runner.Options{Bench: true, Force: true, Prefix: ".bench"})
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "measuring sgemm peak again...\n")
		probe()
		peak := max(probes[0], probes[1])
		peakNote := fmt.Sprintf("sgemm peak %.1f GFLOP/s (the better of %.1f before the runs and %.1f after", peak, probes[0], probes[1])
		var pkPeak float64
		if len(pkProbes) == 2 {
			pkPeak = max(pkProbes[0], pkProbes[1])
		}
		mach := describeMachine()
		if mach.BLASWarning != "" {
			fmt.Fprintf(e.stderr, "bench: warning: %s\n", mach.BLASWarning)
		}
		for _, oc := range out {
			if oc.Err != nil {
				continue
			}
			ce := oc.Cell.Exp
			dims := model.Dims{Vocab: ce.Model.VocabSize, D: ce.Model.EmbeddingDim, L: ce.Model.LatentDim, H: ce.Model.HiddenSize, F: ce.Model.HiddenDim, K: ce.Model.NumFlows, HeadPrecision: ce.Model.HeadPrecision, Block: ce.Model.Block}
			t := report.SeqTable(oc.Metrics.Bench, report.SeedREADME, mach.String())
			t.Title = fmt.Sprintf("%s cell %s (batch %d, chunk %d, %s/%s ode %v)", exp.Name, oc.ID, ce.Bench.Batch, ce.Run.ChunkSize, ce.Components["ode"].Impl, ce.Run.Mode, ce.Components["ode"].Options)
			for _, b := range oc.Metrics.Bench {
				flops := dims.MatmulFLOPs() * float64(b.SeqLen*b.Batch)
				if b.Mode == "train" {
					flops *= 3
				}
				gf := flops / b.MedianS / 1e9
				bfNote := ""
				if dims.HeadBF16() {
					bfNote = "; the head runs in bf16, which this fp32 bound does not limit"
				} else if pkPeak > 0 {
					bfNote = "; the head runs on the packed kernel, not on this sgemm"
				}
				t.Notes = append(t.Notes, fmt.Sprintf("%s %d: matrix products %.1f GFLOP/batch → %.1f GFLOP/s = %.0f%% of %s; %s)%s",
					b.Mode, b.SeqLen, flops/1e9, gf, 100*gf/peak, peakNote, num.Backend(), bfNote))
				if pkPeak > 0 && !dims.HeadBF16() {
					t.Notes = append(t.Notes, fmt.Sprintf("%s %d: = %.0f%% of the packed head kernel's 2048³ peak %.1f GFLOP/s (the better of %.1f and %.1f; B packed beforehand, so a stricter yardstick)",
						b.Mode, b.SeqLen, 100*gf/pkPeak, pkPeak, pkProbes[0], pkProbes[1]))
				}
			}
			t.Notes = append(t.Notes, growthNotes(oc.Metrics.Bench)...)
			t.Notes = append(t.Notes, "output head: "+dims.HeadPath())
			if mach.BLASWarning != "" {
				t.Notes = append(t.Notes, "warning: "+mach.BLASWarning)
			}
			if err := report.Render(e.stdout, t, *format); err != nil {
				return err
			}
			js, _ := json.MarshalIndent(map[string]any{"machine": mach, "blas": num.Backend(), "sgemm_peak_gflops": peak, "sgemm_peak_probes_gflops": probes,
				"packed_peak_gflops": pkPeak, "packed_peak_probes_gflops": pkProbes,
				"matmul_flops_per_token": dims.MatmulFLOPs(), "head_path": dims.HeadPath(), "rows": oc.Metrics.Bench, "documented_seed_readme": report.SeedREADME}, "", "  ")
			if err := results.WriteFileAtomic(filepath.Join(oc.Dir, "bench.json"), js); err != nil {
				return err
			}
			var sb strings.Builder
			if err := report.Render(&sb, t, "csv"); err != nil {
				return err
			}
			if err := results.WriteFileAtomic(filepath.Join(oc.Dir, "bench.csv"), []byte(sb.String())); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "written: %s\n\n", filepath.Join(oc.Dir, "bench.{json,csv}"))
		}
		if n := runner.Failed(out); n > 0 {
			return fmt.Errorf("%d of %d cells failed:\n%w", n, len(out), runner.FirstError(out))
		}
		return nil
	})
}

// describeMachine is results.DescribeMachine with what num knows of the BLAS:
// OpenBLAS's core and configuration, the CPU's vector features and the
// OPENBLAS_CORETYPE warning.
func describeMachine() results.Machine {
	info := num.Info()
	m := results.DescribeMachine(info.Backend)
	m.BLASCore, m.BLASConfig, m.CoreTypeEnv = info.Core, info.Config, info.CoreType
	m.CPUFeatures, m.BLASWarning = info.CPUFeatures, info.Warning
	return m
}

// growthNotes states, per bench mode, how the time per batch grows with the
// length: the slope of log time against log length over all lengths (least
// squares) and between the two longest, so a quadratic part shows as an
// exponent near 2 and a linear pass near 1.
func growthNotes(rows []results.BenchRow) []string {
	byMode := map[string][]results.BenchRow{}
	var modes []string
	for _, r := range rows {
		if r.MedianS <= 0 || r.SeqLen <= 0 {
			continue
		}
		if _, ok := byMode[r.Mode]; !ok {
			modes = append(modes, r.Mode)
		}
		byMode[r.Mode] = append(byMode[r.Mode], r)
	}
	var out []string
	for _, mode := range modes {
		rs := byMode[mode]
		if len(rs) < 2 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].SeqLen < rs[j].SeqLen })
		var sx, sy, sxx, sxy float64
		for _, r := range rs {
			x, y := math.Log(float64(r.SeqLen)), math.Log(r.MedianS)
			sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
		}
		n := float64(len(rs))
		all := (n*sxy - sx*sy) / (n*sxx - sx*sx)
		a, b := rs[len(rs)-2], rs[len(rs)-1]
		last := math.Log(b.MedianS/a.MedianS) / math.Log(float64(b.SeqLen)/float64(a.SeqLen))
		out = append(out, fmt.Sprintf("%s: time grows as length^%.2f over %d–%d tokens (least squares), ^%.2f between %d and %d",
			mode, all, rs[0].SeqLen, b.SeqLen, last, a.SeqLen, b.SeqLen))
	}
	return out
}
