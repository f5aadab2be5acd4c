package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/fx"
)

func TestAppValidates(t *testing.T) {
	var out bytes.Buffer
	opts := appOptions(&env{stdout: &out, stderr: &out}, experimentArgs{Path: "../../experiments/quickstart.toml"}, t.TempDir())
	if err := fx.ValidateApp(opts...); err != nil {
		t.Fatal(err)
	}
}

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
"model.num_flows" = [0, 2]
`

// TestRunSkipsFinishedCells runs a tiny two-cell grid in process, two cells side
// by side, checks each
// cell's files, and checks that a rerun skips both cells.
func TestRunSkipsFinishedCells(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "tiny.toml")
	if err := os.WriteFile(exp, []byte(tinyExperiment), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "results")
	var out bytes.Buffer
	if err := run(&env{stdout: &out, stderr: &out}, []string{"run", "-jobs", "2", "-results", res, exp}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), ": done "); n != 2 {
		t.Fatalf("want 2 cells done:\n%s", out.String())
	}
	cells, _ := filepath.Glob(filepath.Join(res, "tiny", "*", "metrics.json"))
	if len(cells) != 2 {
		t.Fatalf("metrics files: %v", cells)
	}
	for _, f := range []string{"config.toml", "plugins.json", "run.json", "log.txt"} {
		if _, err := os.Stat(filepath.Join(filepath.Dir(cells[0]), f)); err != nil {
			t.Error(err)
		}
	}
	out.Reset()
	if err := run(&env{stdout: &out, stderr: &out}, []string{"run", "-results", res, exp}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "already done, skipped"); n != 2 {
		t.Errorf("rerun did not skip both cells:\n%s", out.String())
	}
}

func TestRunBadExperiment(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "bad.toml")
	os.WriteFile(exp, []byte("[model]\nvocab_sise = 3\n"), 0o644)
	var out bytes.Buffer
	err := run(&env{stdout: &out, stderr: &out}, []string{"run", exp})
	if err == nil || !strings.Contains(err.Error(), "bad.toml:2") || !strings.Contains(err.Error(), "vocab_size") {
		t.Errorf("want file:line and the valid keys, got %v", err)
	}
}

// TestCompareTwoRuns runs the tiny grid twice with different learning rates
// (four repeats each) and compares them: every metric row, a geomean row.
func TestCompareTwoRuns(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "tiny.toml")
	os.WriteFile(exp, []byte(strings.Replace(tinyExperiment, "seed = 3", "seed = 3\nrepeats = 4", 1)), 0o644)
	var out bytes.Buffer
	for _, run1 := range []struct{ name, lr string }{{"a", "1e-3"}, {"b", "3e-3"}} {
		args := []string{"run", "-results", filepath.Join(dir, run1.name), "-set", "train.lr=" + run1.lr, exp}
		if err := run(&env{stdout: &out, stderr: &out}, args); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
	}
	out.Reset()
	err := run(&env{stdout: &out, stderr: &out}, []string{"compare", "-metrics", "train_loss,valid_loss", filepath.Join(dir, "a", "tiny"), filepath.Join(dir, "b", "tiny")})
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}
	for _, want := range []string{"train_loss", "valid_loss", "geomean", "n=4"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}

// TestBenchProbesPeakTwice: bench times the sgemm peak before and after the
// runs, divides by the better reading and says so, and bench.json keeps both.
func TestBenchProbesPeakTwice(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	out, err := runTiny(t, dir, "bench", "-lengths", "64", "-modes", "forward", "-set", "bench.repeats=1", "-set", "bench.warmup=0", "-set", "model.num_flows=0", "-results", res)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	if !strings.Contains(out, "(the better of ") || !strings.Contains(out, "before the runs and") {
		t.Errorf("the bound line does not name both probes:\n%s", out)
	}
	files, _ := filepath.Glob(filepath.Join(res, "tiny.bench", "*", "bench.json"))
	if len(files) == 0 {
		t.Fatalf("no bench.json under %s", res)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Peak   float64   `json:"sgemm_peak_gflops"`
		Probes []float64 `json:"sgemm_peak_probes_gflops"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Probes) != 2 || j.Peak != max(j.Probes[0], j.Probes[1]) || j.Peak <= 0 {
		t.Errorf("bench.json: peak %v, probes %v: want the better of two", j.Peak, j.Probes)
	}
}
