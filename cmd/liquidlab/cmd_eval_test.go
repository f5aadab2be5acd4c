package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalEndToEnd trains the smoke experiment's tiny cell on task:passkey for
// a few steps (liquidlab run evaluates it on every task), then evaluates the
// cell again with liquidlab eval at another length, depths, key length and
// filler, and checks the table, eval.json and metrics.json.
func TestEvalEndToEnd(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	var out bytes.Buffer
	args := []string{"run", "-results", res, "-set", "train.steps=4", "-set", "eval.lengths=[512, 1024]", "-set", "eval.samples=1",
		"../../experiments/long-context-smoke.toml"}
	if err := run(&env{stdout: &out, stderr: &out}, args); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, col := range []string{"eval.passkey@512", "eval.mqar@1024", "eval.selective_copy@512", "eval.goroot_bpb@1024", "eval.peak_rss_mb@1024"} {
		if !strings.Contains(out.String(), col) {
			t.Errorf("run's table lacks %s:\n%s", col, out.String())
		}
	}
	cells, _ := filepath.Glob(filepath.Join(res, "long-context-smoke", "*", "eval.json"))
	if len(cells) != 1 {
		t.Fatalf("eval.json files: %v\n%s", cells, out.String())
	}
	cell := filepath.Dir(cells[0])
	var ev struct {
		Rows []struct {
			Task    string
			Length  int
			Row     string
			Acc     *float64
			BPB     float64
			Buckets map[string]float64
		}
	}
	readJSON(t, cells[0], &ev)
	count := map[string]int{}
	for _, r := range ev.Rows {
		count[r.Task]++
		if r.Task == "goroot" {
			if r.Acc != nil || !(r.BPB > 0) || len(r.Buckets) != map[int]int{512: 1, 1024: 1}[r.Length] {
				t.Errorf("goroot row %+v", r)
			}
		} else if r.Acc == nil || *r.Acc < 0 || *r.Acc > 1 {
			t.Errorf("row %+v", r)
		}
	}
	if count["passkey"] != 10 || count["mqar"] != 4 || count["selective_copy"] != 2 || count["goroot"] != 2 {
		t.Errorf("rows per task %v, want passkey 5 depths × 2 lengths, mqar 2 × 2, 2, 2", count)
	}

	filler := filepath.Join(dir, "filler.txt")
	os.WriteFile(filler, []byte("Once upon a time a lighthouse keeper counted the waves every night.\n"), 0o644)
	out.Reset()
	args = []string{"eval", "-tasks", "passkey,mqar", "-lengths", "768", "-depths", "10,90", "-key-digits", "3", "-filler", filler,
		"-mqar-pairs", "8", "-samples", "2", "-chunk", "128", cell}
	if err := run(&env{stdout: &out, stderr: &out}, args); err != nil {
		t.Fatalf("eval: %v\n%s", err, out.String())
	}
	for _, want := range []string{"depth 10%", "depth 90%", "pairs 8", "768", "peak MB", "filler.txt", "chunks of 128"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("eval output lacks %q:\n%s", want, out.String())
		}
	}
	var m struct{ Values map[string]any }
	readJSON(t, filepath.Join(cell, "metrics.json"), &m)
	for _, k := range []string{"train_loss", "eval.passkey@512", "eval.passkey@768", "eval.mqar@768"} {
		if _, ok := m.Values[k]; !ok {
			t.Errorf("metrics.json lacks %s: %v", k, m.Values)
		}
	}
	out.Reset()
	if err := run(&env{stdout: &out, stderr: &out}, []string{"table", filepath.Dir(cell)}); err != nil || !strings.Contains(out.String(), "eval.passkey@768") {
		t.Errorf("liquidlab table lacks the eval columns (%v):\n%s", err, out.String())
	}
	readJSON(t, cells[0], &ev)
	if len(ev.Rows) != 3 || ev.Rows[0].Length != 768 {
		t.Errorf("eval.json after liquidlab eval: %+v", ev.Rows)
	}

	// Chunk by chunk or at once: the smoke model (per-token stages) scores
	// every sample the same.
	loss := map[string][]float64{}
	for _, chunk := range []string{"600", "96"} {
		out.Reset()
		args := []string{"eval", "-tasks", "passkey,selective_copy", "-lengths", "600", "-samples", "1", "-chunk", chunk, cell}
		if err := run(&env{stdout: &out, stderr: &out}, args); err != nil {
			t.Fatalf("eval -chunk %s: %v\n%s", chunk, err, out.String())
		}
		var ev struct{ Rows []struct{ Loss float64 } }
		readJSON(t, cells[0], &ev)
		for _, r := range ev.Rows {
			loss[chunk] = append(loss[chunk], r.Loss)
		}
	}
	if len(loss["600"]) != 6 || len(loss["96"]) != 6 {
		t.Fatalf("rows %v", loss)
	}
	for i, a := range loss["600"] {
		if b := loss["96"][i]; !(a > 0) || math.Abs(a-b) > 1e-4*a {
			t.Errorf("row %d: loss %v at once, %v in chunks of 96", i, a, b)
		}
	}

	for _, bad := range [][]string{
		{"eval", "-set", "eval.tasks=[]", cell},               // no tasks
		{"eval", "-tasks", "bogus", cell},                     // unknown task
		{"eval", "-tasks", "passkey", "-lengths", "4k", cell}, // not a number
		{"eval", "-tasks", "passkey", "-lengths", "50", cell}, // too short for the passkey
		{"eval", "-tasks", "passkey", "-filler", filepath.Join(dir, "none.txt"), cell},
		{"eval", "-tasks", "passkey", dir}, // not a cell
	} {
		out.Reset()
		if err := run(&env{stdout: &out, stderr: &out}, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
