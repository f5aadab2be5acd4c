package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runTiny writes the tiny experiment into dir and runs liquidlab with args,
// the experiment file last.
func runTiny(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	exp := filepath.Join(dir, "tiny.toml")
	if err := os.WriteFile(exp, []byte(tinyExperiment), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(&env{stdout: &out, stderr: &out}, append(args, exp))
	return out.String(), err
}

// TestCorruptMetricsCell: a finished cell whose metrics.json is corrupt is
// shown by table and compare as broken, with the file and the error, beside
// the other cell; a rerun redoes it instead of skipping it.
func TestCorruptMetricsCell(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	if out, err := runTiny(t, dir, "run", "-results", res); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	metrics, _ := filepath.Glob(filepath.Join(res, "tiny", "*", "metrics.json"))
	if len(metrics) != 2 {
		t.Fatalf("metrics files: %v", metrics)
	}
	bad := filepath.Base(filepath.Dir(metrics[0]))
	good := filepath.Base(filepath.Dir(metrics[1]))
	if err := os.WriteFile(metrics[0], []byte(`{"values": {"train_loss": 8.`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&env{stdout: &out, stderr: &out}, []string{"table", filepath.Join(res, "tiny")}); err != nil {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
	for _, want := range []string{bad, "broken", "metrics.json: invalid character", good} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	err := run(&env{stdout: &out, stderr: &out}, []string{"compare", "-metrics", "train_loss", filepath.Join(res, "tiny"), filepath.Join(res, "tiny")})
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, out.String())
	}
	for _, want := range []string{bad + " (broken: ", "metrics.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("compare lacks %q:\n%s", want, out.String())
		}
	}
	o, err := runTiny(t, dir, "run", "-results", res)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, o)
	}
	if !strings.Contains(o, bad+": done") || !strings.Contains(o, good+": already done, skipped") {
		t.Errorf("rerun did not redo the broken cell and skip the other:\n%s", o)
	}
}

// TestRunRejectsBadInput: bad -jobs and -format values and a grid with a
// repeated value are refused before any cell starts (no results directory).
func TestRunRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"jobs 0", []string{"run", "-jobs", "0"}, "-jobs 0: want at least 1"},
		{"jobs -1", []string{"run", "-jobs", "-1"}, "-jobs -1: want at least 1"},
		{"bogus format", []string{"run", "-format", "bogus"}, `-format "bogus": want one of text, markdown, csv, json`},
		{"duplicate cells", []string{"run", "-set", "grid.model.num_flows=[2, 2]"}, "cells 1 [model.num_flows=2] and 2 [model.num_flows=2] are the same experiment"},
		{"duplicate cells, dry run", []string{"run", "--dry-run", "-set", "grid.model.num_flows=[2, 2]"}, "are the same experiment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			res := filepath.Join(dir, "results")
			out, err := runTiny(t, dir, append(tc.args, "-results", res)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q\n%s", err, tc.want, out)
			}
			if _, err := os.Stat(res); !os.IsNotExist(err) {
				t.Errorf("a cell ran before the error: %v", err)
			}
		})
	}
}
