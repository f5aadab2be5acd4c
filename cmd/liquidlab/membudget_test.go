package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run --dry-run prints each cell's memory estimate and the limit, marks a cell
// above run.max_memory as refused, and starts nothing.
func TestDryRunMemoryEstimate(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	out, err := runTiny(t, dir, "run", "--dry-run", "-results", res)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "memory estimate per cell (limit ") || strings.Count(out, "  cell ") < 2 || strings.Contains(out, "REFUSED") {
		t.Errorf("dry run:\n%s", out)
	}
	out, err = runTiny(t, dir, "run", "--dry-run", "-set", `run.max_memory="2MiB"`, "-results", res)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `limit 2 MiB: run.max_memory = "2MiB"`) || !strings.Contains(out, "REFUSED: more than the limit") {
		t.Errorf("dry run with run.max_memory = 2MiB:\n%s", out)
	}
	if _, err := os.Stat(res); !os.IsNotExist(err) {
		t.Errorf("the dry run wrote results: %v", err)
	}
}
