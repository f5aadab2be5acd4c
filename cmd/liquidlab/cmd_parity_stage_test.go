package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/safetensors"
)

// TestParityStageFixtures runs `liquidlab parity` on the stage fixtures of
// causal attention (copies of shared/fixtures/attention), mixed with a seed
// fixture: each kind of file is recognised by its metadata.
func TestParityStageFixtures(t *testing.T) {
	fixtures, _ := filepath.Glob("../../testdata/fixtures/attention/*.safetensors")
	if len(fixtures) < 3 {
		t.Fatalf("found %d stage fixtures", len(fixtures))
	}
	args := append([]string{"parity", "-q"}, fixtures...)
	args = append(args, "../../testdata/fixtures/seed_rk4.safetensors")
	var out, errb bytes.Buffer
	if err := run(&env{stdout: &out, stderr: &errb}, args); err != nil {
		t.Fatalf("parity: %v\n%s%s", err, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), "PASS "); n != len(fixtures)+1 {
		t.Errorf("%d PASS lines for %d fixtures:\n%s", n, len(fixtures)+1, out.String())
	}
	// an impossible tolerance fails, with status 1
	out.Reset()
	err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-q", "-grad-tol", "1e-12", fixtures[0]})
	if err == nil || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("impossible tolerance passed: %v\n%s", err, out.String())
	}
}

// TestParityStageUnknownImpl: a stage fixture naming an implementation this
// binary lacks is a one-line error.
func TestParityStageUnknownImpl(t *testing.T) {
	f, err := safetensors.ReadFile("../../testdata/fixtures/attention/attn_window.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	f.Metadata["impl"] = "nosuch"
	raw, err := safetensors.Encode(f.Floats, f.Ints, f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(&env{stdout: &out, stderr: &out}, []string{"parity", p})
	if err == nil || !strings.Contains(err.Error(), "nosuch") || strings.Contains(err.Error(), "\n") {
		t.Errorf("want a one-line error naming the impl, got %v", err)
	}
}
