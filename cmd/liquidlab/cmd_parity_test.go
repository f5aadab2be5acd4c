package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParityFixtures runs `liquidlab parity` on the PyTorch fixtures shipped in
// testdata (the shared three and seven more of other sizes, flow counts and
// solvers, see testdata/fixtures/extra/README.md): outputs within 1e-4 and
// gradients within 1e-3 relative.
func TestParityFixtures(t *testing.T) {
	fixtures, _ := filepath.Glob("../../testdata/fixtures/*.safetensors")
	extra, _ := filepath.Glob("../../testdata/fixtures/extra/*.safetensors")
	if len(fixtures) < 3 || len(extra) < 7 {
		t.Fatalf("found %d fixtures in testdata/fixtures and %d in extra/", len(fixtures), len(extra))
	}
	fixtures = append(fixtures, extra...)
	var out, errb bytes.Buffer
	err := run(&env{stdout: &out, stderr: &errb}, append([]string{"parity", "-q"}, fixtures...))
	if err != nil {
		t.Fatalf("parity: %v\n%s%s", err, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), "PASS "); n != len(fixtures) {
		t.Errorf("%d PASS lines for %d fixtures:\n%s", n, len(fixtures), out.String())
	}
}

// TestParityCatchesAWrongModel checks the check: a tolerance no float32
// computation meets must fail, so the test above cannot pass vacuously.
func TestParityCatchesAWrongModel(t *testing.T) {
	var out bytes.Buffer
	err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-q", "-out-tol", "1e-12", "../../testdata/fixtures/seed_rk4.safetensors"})
	if err == nil || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("impossible tolerance passed: %v\n%s", err, out.String())
	}
}

func TestParityBadFile(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{{"parity", "/no/such.safetensors"}, {"parity", "cmd_parity_test.go"}} {
		err := run(&env{stdout: &out, stderr: &out}, args)
		if err == nil || strings.Count(err.Error(), "\n") > 0 {
			t.Errorf("%v: want a one-line error, got %v", args, err)
		}
	}
}

// TestMain lets the test binary serve as its own plugin: plugin.Builtin starts
// os.Executable() as "plugin serve <kind> <name>".
func TestMain(m *testing.M) {
	if serveMisbehaving() {
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "plugin" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestParityThroughPlugins runs a fixture with every stage in a plugin
// subprocess: results must not depend on the process boundary.
func TestParityThroughPlugins(t *testing.T) {
	var out bytes.Buffer
	err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-q", "-plugins", "../../testdata/fixtures/seed_dopri5.safetensors"})
	if err != nil || !strings.Contains(out.String(), "PASS") {
		t.Fatalf("parity through plugins: %v\n%s", err, out.String())
	}
}
