package runner_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"liquidlab/framework/config"
	"liquidlab/framework/registry"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/singlequery"
	"liquidlab/plugins/flows/coupling"
	"liquidlab/plugins/liquid/ltc"
	"liquidlab/plugins/ode/odefunc"
)

// fault selects how the "flaky" flows component fails: faultNone passes
// coupling's outputs through, faultNaN makes them NaN (the loss diverges),
// faultError makes Forward fail.
const (
	faultNone int32 = iota
	faultNaN
	faultError
	faultHang // Forward waits for its context to end
)

var flakyFault atomic.Int32

// flaky is the coupling flows stage with an injectable fault.
type flaky struct{ stage.Stage }

func (f flaky) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	switch flakyFault.Load() {
	case faultError:
		return nil, errInjected
	case faultHang:
		<-ctx.Done()
		return nil, ctx.Err()
	case faultNaN:
		res, err := f.Stage.Forward(ctx, cfg, req)
		if err != nil {
			return nil, err
		}
		for _, t := range res.Outputs {
			for i := range t.Data {
				t.Data[i] = float32(math.NaN())
			}
		}
		return res, nil
	}
	return f.Stage.Forward(ctx, cfg, req)
}

type injected struct{}

func (injected) Error() string { return "injected flows failure" }

var errInjected error = injected{}

var testComponents = []registry.Component{
	{Kind: stage.KindFlows, Name: "coupling", New: func() stage.Stage { return coupling.New() }},
	{Kind: stage.KindFlows, Name: "flaky", New: func() stage.Stage { return flaky{coupling.New()} }},
	{Kind: stage.KindODE, Name: "odefunc", New: func() stage.Stage { return odefunc.New() }},
	{Kind: stage.KindAttention, Name: "singlequery", New: func() stage.Stage { return singlequery.New() }},
	{Kind: stage.KindLiquid, Name: "ltc", New: func() stage.Stage { return ltc.New() }},
}

// tinyExperiment is a two-cell grid (the seed's coupling flows and the flaky
// ones) that trains for a few steps in process.
const tinyExperiment = `
name = "tiny"
seed = 3
[model]
vocab_size = 2000
embedding_dim = 16
latent_dim = 4
hidden_size = 8
hidden_dim = 8
num_flows = 2
[components.ode]
options = { method = "euler" }
[components.liquid]
options = { method = "euler" }
[data]
seq_len = 32
[train]
steps = 3
batch = 2
lr = 1e-3
warmup_steps = 1
[eval]
batches = 1
[run]
mode = "inprocess"
[grid]
"components.flows.impl" = ["coupling", "flaky"]
`

// env is a started fx app holding a Runner that writes under its own results
// directory.
type env struct {
	r   *runner.Runner
	out *bytes.Buffer
	exp *config.Experiment
	res string
}

// newEnv loads the experiment text with overrides and builds the runner
// through fx as the liquidlab command does; the app stops when the test ends.
func newEnv(t *testing.T, text string, res string, overrides ...string) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	exp, err := config.Load(path, overrides)
	if err != nil {
		t.Fatal(err)
	}
	ev := &env{out: &bytes.Buffer{}, exp: exp, res: res}
	opts := []fx.Option{
		fx.NopLogger,
		fx.Supply(results.Store{Root: res}, runner.Streams{Out: ev.out, Log: ev.out}),
		registry.Module,
		runner.Module,
		fx.Populate(&ev.r),
	}
	for _, c := range testComponents {
		opts = append(opts, registry.Provide(c))
	}
	app := fxtest.New(t, opts...).RequireStart()
	t.Cleanup(func() { app.RequireStop() })
	return ev
}

// run runs the experiment once with the given fault and returns the outcomes
// by flows implementation.
func (ev *env) run(t *testing.T, fault int32, o runner.Options) map[string]runner.CellOutcome {
	t.Helper()
	flakyFault.Store(fault)
	defer flakyFault.Store(faultNone)
	ev.out.Reset()
	out, err := ev.r.Run(context.Background(), ev.exp, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, ev.out)
	}
	m := map[string]runner.CellOutcome{}
	for _, oc := range out {
		m[oc.Cell.Exp.Components[stage.KindFlows].Impl] = oc
	}
	if len(m) != 2 {
		t.Fatalf("want 2 cells, got %d:\n%s", len(out), ev.out)
	}
	return m
}

func status(t *testing.T, oc runner.CellOutcome) string {
	t.Helper()
	rec, err := results.Store{Root: filepath.Dir(filepath.Dir(oc.Dir))}.Cell("tiny", oc.ID).Load()
	if err != nil {
		t.Fatal(err)
	}
	return rec.Status
}

func begins(t *testing.T, oc runner.CellOutcome) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(oc.Dir, results.LogFile))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "--- begin cell")
}

var train = runner.Options{Train: true}

func TestRunCells(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir())
	oc := ev.run(t, faultNone, train)
	for impl, c := range oc {
		if c.Err != nil || c.Skipped {
			t.Fatalf("%s: err %v skipped %v\n%s", impl, c.Err, c.Skipped, ev.out)
		}
		if s := status(t, c); s != results.StatusDone {
			t.Errorf("%s: status %q, want done", impl, s)
		}
		for _, k := range []string{"train_loss", "valid_loss", "params"} {
			if v, ok := c.Metrics.Values[k]; !ok || math.IsNaN(v) {
				t.Errorf("%s: metric %s = %v, %v", impl, k, v, ok)
			}
		}
		for _, f := range []string{results.ConfigTOML, results.PluginsFile, results.RunFile, results.MetricsFile, results.LogFile, "checkpoint.safetensors"} {
			if _, err := os.Stat(filepath.Join(c.Dir, f)); err != nil {
				t.Errorf("%s: %v", impl, err)
			}
		}
	}
	if oc["coupling"].ID == oc["flaky"].ID {
		t.Errorf("both cells have id %s", oc["coupling"].ID)
	}
	if n := strings.Count(ev.out.String(), ": done "); n != 2 {
		t.Errorf("want two done lines:\n%s", ev.out)
	}
}

func TestRunFailedCells(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault int32
		want  string
	}{
		{"nan", faultNaN, "NaN"},
		{"error", faultError, "injected flows failure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEnv(t, tinyExperiment, t.TempDir())
			oc := ev.run(t, tc.fault, train)
			if c := oc["coupling"]; c.Err != nil {
				t.Fatalf("the healthy cell failed: %v", c.Err)
			}
			c := oc["flaky"]
			if c.Err == nil || !strings.Contains(c.Err.Error(), tc.want) {
				t.Fatalf("flaky cell: err %v, want %q", c.Err, tc.want)
			}
			if s := status(t, c); s != results.StatusFailed {
				t.Errorf("status %q, want failed", s)
			}
			rec, err := results.Store{Root: ev.res}.Cell("tiny", c.ID).Load()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(rec.Error, tc.want) {
				t.Errorf("run.json error %q, want %q", rec.Error, tc.want)
			}
			log, _ := os.ReadFile(filepath.Join(c.Dir, results.LogFile))
			if !strings.Contains(string(log), "FAILED: ") {
				t.Errorf("log has no FAILED line:\n%s", log)
			}
			if !strings.Contains(ev.out.String(), "FAILED: ") || !strings.Contains(ev.out.String(), ": done ") {
				t.Errorf("want one done and one FAILED line:\n%s", ev.out)
			}
			if runner.Failed(slice(oc)) != 1 {
				t.Errorf("Failed = %d, want 1", runner.Failed(slice(oc)))
			}
		})
	}
}

func slice(m map[string]runner.CellOutcome) []runner.CellOutcome {
	return []runner.CellOutcome{m["coupling"], m["flaky"]}
}

// TestRunResumes runs the grid with the flaky cell failing, then again: the
// finished cell is skipped, the failed one is redone (and now succeeds); a
// third run skips both, and Force redoes both.
func TestRunResumes(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir())
	first := ev.run(t, faultNaN, train)
	if first["coupling"].Err != nil || first["flaky"].Err == nil {
		t.Fatalf("first run: coupling %v, flaky %v", first["coupling"].Err, first["flaky"].Err)
	}
	second := ev.run(t, faultNone, train)
	if c := second["coupling"]; !c.Skipped || c.ID != first["coupling"].ID {
		t.Errorf("finished cell not skipped: %+v", c)
	}
	if c := second["flaky"]; c.Skipped || c.Err != nil || c.ID != first["flaky"].ID {
		t.Fatalf("failed cell not redone: skipped %v err %v\n%s", c.Skipped, c.Err, ev.out)
	}
	if s := status(t, second["flaky"]); s != results.StatusDone {
		t.Errorf("redone cell: status %q", s)
	}
	if n := begins(t, second["flaky"]); n != 2 {
		t.Errorf("redone cell's log has %d begin markers, want 2", n)
	}
	if n := begins(t, second["coupling"]); n != 1 {
		t.Errorf("skipped cell's log has %d begin markers, want 1", n)
	}
	third := ev.run(t, faultNone, train)
	if !third["coupling"].Skipped || !third["flaky"].Skipped {
		t.Errorf("third run did not skip both cells:\n%s", ev.out)
	}
	forced := ev.run(t, faultNone, runner.Options{Train: true, Force: true})
	if forced["coupling"].Skipped || forced["flaky"].Skipped {
		t.Errorf("Force skipped a cell:\n%s", ev.out)
	}
}

// temporaries lists the temporary files in a cell directory.
func temporaries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{".*.tmp-*", "*.tmp"} {
		m, err := filepath.Glob(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}

// TestCheckpointWriteFails makes the checkpoint write fail (a non-empty
// directory stands where the file goes, so the rename fails after the data
// is written): the cell fails with the reason, leaves no temporary file, and
// a rerun redoes it once the obstacle is gone.
func TestCheckpointWriteFails(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir())
	first := ev.run(t, faultNone, train)
	c := first["coupling"]
	ckpt := filepath.Join(c.Dir, results.CheckpointFile)
	if err := os.Remove(ckpt); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ckpt, "obstacle"), 0o755); err != nil {
		t.Fatal(err)
	}
	second := ev.run(t, faultNone, runner.Options{Train: true, Force: true})
	c = second["coupling"]
	if c.Err == nil || !strings.Contains(c.Err.Error(), "checkpoint") {
		t.Fatalf("a failed checkpoint write did not fail the cell: err %v\n%s", c.Err, ev.out)
	}
	if s := status(t, c); s != results.StatusFailed {
		t.Errorf("status %q, want failed", s)
	}
	if tmp := temporaries(t, c.Dir); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if err := os.RemoveAll(ckpt); err != nil {
		t.Fatal(err)
	}
	third := ev.run(t, faultNone, train)
	if c := third["coupling"]; c.Skipped || c.Err != nil {
		t.Fatalf("rerun: skipped %v err %v", c.Skipped, c.Err)
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Error(err)
	}
	if !third["flaky"].Skipped {
		t.Errorf("the intact cell was not skipped")
	}
}

// TestBrokenDoneCellIsRedone: a cell recorded as done whose checkpoint is
// missing, or whose metrics.json is corrupt, is redone, with the reason in
// its log; a leftover temporary file is removed by the redo.
func TestBrokenDoneCellIsRedone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breakf func(dir string) error
		reason string
	}{
		{"missing checkpoint", func(dir string) error {
			return os.Remove(filepath.Join(dir, results.CheckpointFile))
		}, results.CheckpointFile},
		{"corrupt metrics", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, results.MetricsFile), []byte(`{"values": {"train_loss": 1`), 0o644)
		}, results.MetricsFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEnv(t, tinyExperiment, t.TempDir())
			first := ev.run(t, faultNone, train)
			dir := first["coupling"].Dir
			if err := tc.breakf(dir); err != nil {
				t.Fatal(err)
			}
			leftover := filepath.Join(dir, results.CheckpointFile+".tmp")
			if err := os.WriteFile(leftover, []byte("partial"), 0o644); err != nil {
				t.Fatal(err)
			}
			second := ev.run(t, faultNone, train)
			if c := second["coupling"]; c.Skipped || c.Err != nil {
				t.Fatalf("broken cell: skipped %v err %v\n%s", c.Skipped, c.Err, ev.out)
			}
			if !second["flaky"].Skipped {
				t.Error("the intact cell was not skipped")
			}
			log, _ := os.ReadFile(filepath.Join(dir, results.LogFile))
			if !strings.Contains(string(log), "redoing a cell recorded as done") || !strings.Contains(string(log), tc.reason) {
				t.Errorf("log does not say why the cell was redone:\n%s", log)
			}
			if err := (results.Store{Root: ev.res}).Cell("tiny", first["coupling"].ID).Done(results.CheckpointFile); err != nil {
				t.Errorf("after the redo: %v", err)
			}
			if tmp := temporaries(t, dir); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestRunRejects: a negative job count and a grid whose cells repeat are
// refused before any cell starts.
func TestRunRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		o    runner.Options
		want string
	}{
		{"negative jobs", nil, runner.Options{Train: true, Jobs: -1}, "-1 jobs: want at least 1"},
		{"repeated value", []string{"grid.model.num_flows=[0, 2, 0]"}, train, "cells 1 [components.flows.impl=coupling model.num_flows=0] and 3 [components.flows.impl=coupling model.num_flows=0] are the same experiment"},
		{"same value spelt twice", []string{"grid.train.lr=[1e-3, 0.001]"}, train, "cells 1 [components.flows.impl=coupling train.lr=0.001] and 2 [components.flows.impl=coupling train.lr=0.001] are the same experiment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEnv(t, tinyExperiment, t.TempDir(), tc.set...)
			out, err := ev.r.Run(context.Background(), ev.exp, tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if len(out) != 0 {
				t.Errorf("%d cells ran", len(out))
			}
			if _, err := os.Stat(filepath.Join(ev.res, "tiny")); !os.IsNotExist(err) {
				t.Errorf("results written: %v", err)
			}
		})
	}
}

// A run whose output is not a terminal prints progress lines every
// run.progress_every between the cells' result lines.
func TestRunHeartbeat(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir(), "run.progress_every=1ms", "train.steps=20")
	ev.run(t, faultNone, train)
	got := ev.out.String()
	if !strings.Contains(got, "progress: ") || !strings.Contains(got, "/40 steps") {
		t.Errorf("run output has no progress line over the 40 training steps:\n%s", got)
	}
}

// Cells are named by their axis values with the hash as suffix, and repeats
// are runs inside a cell: raising them runs only the new ones, lowering them
// reruns nothing.
func TestRepeatsInsideCell(t *testing.T) {
	res := t.TempDir()
	ev := newEnv(t, tinyExperiment, res, "repeats=2")
	first := ev.run(t, faultNone, train)
	c := first["coupling"]
	if !regexp.MustCompile(`^impl=coupling-[0-9a-f]{8}$`).MatchString(c.ID) {
		t.Errorf("cell id %q: want impl=coupling-<hash8>", c.ID)
	}
	before := c.Metrics.Samples["train_loss"]
	if len(before) != 2 {
		t.Fatalf("samples %v, want 2", before)
	}

	ev = newEnv(t, tinyExperiment, res, "repeats=3")
	again := ev.run(t, faultNone, train)["coupling"]
	if again.ID != c.ID || again.Skipped || again.Err != nil {
		t.Fatalf("raised repeats: id %s (was %s) skipped %v err %v", again.ID, c.ID, again.Skipped, again.Err)
	}
	after := again.Metrics.Samples["train_loss"]
	if len(after) != 3 || after[0] != before[0] || after[1] != before[1] {
		t.Errorf("samples after raising to 3: %v, want the first two %v kept and a third", after, before)
	}
	log, _ := os.ReadFile(filepath.Join(again.Dir, results.LogFile))
	if !strings.Contains(string(log), "repeats 1–2 already done, kept") || strings.Count(string(log), "repeat 1/") != 1 {
		t.Errorf("log does not show repeats 1–2 kept and only repeat 3 run:\n%s", log)
	}
	steps, err := results.ReadSteps(filepath.Join(again.Dir, results.StepsFile))
	if err != nil {
		t.Fatal(err)
	}
	perRepeat := map[int]int{}
	for _, s := range steps {
		perRepeat[s.Repeat]++
	}
	if len(perRepeat) != 3 || perRepeat[1] != 3 || perRepeat[3] != 3 {
		t.Errorf("metrics.jsonl steps per repeat %v, want 3 for each of repeats 1–3", perRepeat)
	}
	recs, err := results.Store{Root: res}.Cell("tiny", c.ID).Repeats()
	if err != nil || len(recs) != 3 || recs[2].Seed != 5 {
		t.Errorf("repeats.json %v, %v: want 3 repeats, the third of seed 5", recs, err)
	}

	// Lowered: nothing reruns, and the metrics show the first repeat.
	ev = newEnv(t, tinyExperiment, res, "repeats=1")
	if low := ev.run(t, faultNone, train)["coupling"]; !low.Skipped || low.ID != c.ID {
		t.Errorf("lowered repeats: skipped %v id %s, want the cell skipped", low.Skipped, low.ID)
	}
	rec, err := results.Store{Root: res}.Cell("tiny", c.ID).Load()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Metrics.Samples != nil || rec.Metrics.Values["train_loss"] != before[0] || rec.Status != results.StatusDone {
		t.Errorf("lowered to 1: metrics %+v status %s, want repeat 1's train_loss %v and no samples", rec.Metrics, rec.Status, before[0])
	}
	// Raised again: still nothing reruns, and all three show.
	ev = newEnv(t, tinyExperiment, res, "repeats=3")
	if up := ev.run(t, faultNone, train)["coupling"]; !up.Skipped {
		t.Errorf("raised back to 3: the cell was not skipped")
	}
	rec, err = results.Store{Root: res}.Cell("tiny", c.ID).Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Metrics.Samples["train_loss"]; len(got) != 3 || got[0] != before[0] || got[1] != before[1] {
		t.Errorf("raised back to 3: samples %v, want the three repeats", got)
	}
}

// Built-in components are identified by name and version, plugins given by
// path by their binary's sha256.
func TestIdentities(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir())
	ids, err := ev.r.Launcher.Identities(context.Background(), ev.exp)
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != "flows:coupling:version "+coupling.Version {
		t.Errorf("identities %v: want the flows component as coupling and its version", ids)
	}
	bin := filepath.Join(t.TempDir(), "myflows")
	if err := os.WriteFile(bin, []byte("not really a plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := *ev.exp
	e.Components = maps.Clone(e.Components)
	e.Components[stage.KindFlows] = config.Component{Impl: bin}
	ids, err = ev.r.Launcher.Identities(context.Background(), &e)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("not really a plugin"))
	if ids[0] != "flows:"+bin+":"+hex.EncodeToString(sum[:]) {
		t.Errorf("identity %q: want the plugin's path and sha256", ids[0])
	}
}

// Repeat 2 of seed 3 is the run of -set seed=4: the repeats share the data
// (data seed 3) and -set seed changes the model seed only.
func TestRepeatSeedIsSetSeed(t *testing.T) {
	two := newEnv(t, tinyExperiment, t.TempDir(), "repeats=2").run(t, faultNone, train)["coupling"]
	one := newEnv(t, tinyExperiment, t.TempDir(), "seed=4").run(t, faultNone, train)["coupling"]
	got, want := two.Metrics.Samples["valid_loss"], one.Metrics.Values["valid_loss"]
	if len(got) != 2 || got[1] != want || got[0] == want {
		t.Errorf("valid_loss of repeats (seeds 3, 4) %v; of -set seed=4 %v: want the second repeat's", got, want)
	}
	rec, err := results.Store{Root: filepath.Dir(filepath.Dir(one.Dir))}.Cell("tiny", one.ID).Load()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Info.Seed != 4 || rec.Info.DataSeed != 3 {
		t.Errorf("run.json of -set seed=4: seed %d data seed %d, want 4 and 3", rec.Info.Seed, rec.Info.DataSeed)
	}
}

// Tolerances given to a fixed-step solver make cells that are the same run
// in effect: the warning names them, and only them.
func TestEffectiveDuplicates(t *testing.T) {
	text := strings.Replace(tinyExperiment, `"components.flows.impl" = ["coupling", "flaky"]`, `"components.ode.options.method" = ["euler", "dopri5"]
[[grid.paired]]
"components.ode.options.rtol" = [1e-3, 1e-6]
"components.ode.options.atol" = [1e-3, 1e-6]`, 1)
	ev := newEnv(t, text, t.TempDir())
	ctx := context.Background()
	describe := ev.r.Launcher.Describer(ctx, ev.exp)
	if err := ev.exp.Validate(describe); err != nil {
		t.Fatal(err)
	}
	cells, err := ev.exp.Cells()
	if err != nil {
		t.Fatal(err)
	}
	groups := runner.EffectiveDuplicates(cells, describe)
	if len(groups) != 1 || len(groups[0].Cells) != 2 {
		t.Fatalf("groups %+v: want one pair", groups)
	}
	for _, c := range groups[0].Cells {
		if m := c.Exp.Components[stage.KindODE].Options["method"]; m != "euler" {
			t.Errorf("duplicate cell %d has method %v, want euler", c.Index+1, m)
		}
	}
	var w bytes.Buffer
	runner.WarnDuplicates(&w, cells, describe)
	if got := w.String(); !strings.Contains(got, "warning: cells 1 [") || !strings.Contains(got, "ode odefunc rtol, atol: euler takes fixed steps") {
		t.Errorf("warning %q", got)
	}
	if runner.EffectiveDuplicates(cells, nil) != nil {
		t.Error("duplicates found without descriptions")
	}
}

// TestTrainMinutesBudget: a spent train.minutes budget stops training after
// the step that crossed it, validates there, and records the steps taken.
func TestTrainMinutesBudget(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir(), "train.steps=1000", "train.minutes=1e-9")
	for impl, c := range ev.run(t, faultNone, train) {
		if c.Err != nil {
			t.Fatalf("%s: %v\n%s", impl, c.Err, ev.out)
		}
		if got := c.Metrics.Values["train_steps"]; got != 1 {
			t.Errorf("%s: train_steps = %v, want 1 (the budget is spent after the first step)", impl, got)
		}
		if _, ok := c.Metrics.Values["valid_loss"]; !ok {
			t.Errorf("%s: no valid_loss after a budget-stopped training", impl)
		}
		log, err := os.ReadFile(filepath.Join(c.Dir, results.LogFile))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "train.minutes = 1e-09 spent after step 1 of 1000") {
			t.Errorf("%s: the cell's log does not say training stopped on the budget:\n%s", impl, log)
		}
	}
}

// TestMinSeqLen trains on passkey sequences whose length each step draws from
// data.min_seq_len to data.seq_len: the cell trains and validates, and the
// tokens it reports are fewer than steps × batch × seq_len.
func TestMinSeqLen(t *testing.T) {
	const steps, batch, minLen, maxLen = 4, 2, 150, 200
	ev := newEnv(t, tinyExperiment, t.TempDir(), "data.source=task:passkey", "train.objective=next_token",
		fmt.Sprintf("train.steps=%d", steps), fmt.Sprintf("train.batch=%d", batch),
		fmt.Sprintf("data.seq_len=%d", maxLen), fmt.Sprintf("data.min_seq_len=%d", minLen))
	for impl, c := range ev.run(t, faultNone, train) {
		if c.Err != nil {
			t.Fatalf("%s: %v\n%s", impl, c.Err, ev.out)
		}
		v := c.Metrics.Values
		if _, ok := v["valid_loss"]; !ok {
			t.Errorf("%s: no valid_loss", impl)
		}
		tokens := v["train_tokens_per_s"] * v["train_time_s"]
		if tokens < steps*batch*minLen-1 || tokens > steps*batch*maxLen-batch {
			t.Errorf("%s: %.1f tokens trained on, want steps × batch × a length in [%d, %d], not all %d", impl, tokens, minLen, maxLen, maxLen)
		}
	}
}
