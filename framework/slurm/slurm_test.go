package slurm_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/slurm"
	"liquidlab/framework/slurm/slurmtest"
)

func TestArraySpec(t *testing.T) {
	for _, c := range []struct {
		in   []int
		max  int
		want string
	}{
		{[]int{0, 1, 2, 3}, 2, "0-3%2"},
		{[]int{7, 0, 2, 1, 9, 10}, 0, "0-2,7,9-10"},
		{[]int{5}, 1, "5%1"},
	} {
		if got := slurm.ArraySpec(c.in, c.max); got != c.want {
			t.Errorf("ArraySpec(%v, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestScriptQuotes(t *testing.T) {
	s := slurm.Script([]string{"/bin/liquidlab", "run", "-set", "train.lr=1e-3", "exp with space.toml"}, "/w d")
	if !strings.Contains(s, "cd '/w d'") || !strings.Contains(s, "'exp with space.toml' --cell \"$SLURM_ARRAY_TASK_ID\"") ||
		!strings.Contains(s, " train.lr=1e-3 ") {
		t.Errorf("script:\n%s", s)
	}
}

// TestRealCluster submits an array of 4 tasks, at most 2 at a time, to a real
// slurmctld and slurmd, cancels one pending task, and checks what ran.
func TestRealCluster(t *testing.T) {
	slurmtest.Start(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	os.MkdirAll(marker, 0o755)
	// The "binary" of the array: a shell that records its cell and sleeps.
	prog := filepath.Join(dir, "task.sh")
	os.WriteFile(prog, []byte("#!/bin/sh\n# args: --cell N\nsleep 1; echo \"$SLURM_ARRAY_JOB_ID $SLURMD_NODENAME\" > "+marker+"/$2\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	job, err := slurm.Submit(ctx, slurm.Options{MaxParallel: 2, JobName: "liquidlab-test"}, dir, []string{prog}, dir, []int{0, 1, 2, 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("submitted job %s in %v", job.ID, time.Since(start))
	q, err := slurm.Queue(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) == 0 {
		t.Fatalf("squeue lists no task of job %s right after submission", job.ID)
	}
	if err := slurm.Cancel(ctx, job.ID, 5); err != nil {
		t.Fatal(err)
	}
	if !slurmtest.Wait(ctx, func() bool { q, err := slurm.Queue(ctx, job.ID); return err == nil && len(q) == 0 }) {
		t.Fatal("the array did not finish in 2 minutes")
	}
	for _, cell := range []int{0, 1, 2} {
		b, err := os.ReadFile(filepath.Join(marker, fmt.Sprint(cell)))
		if err != nil {
			log, _ := os.ReadFile(slurm.LogPath(dir, job.ID, cell))
			t.Fatalf("cell %d did not run: %v (task log: %s)", cell, err, log)
		}
		if !strings.HasPrefix(string(b), job.ID+" ") {
			t.Errorf("cell %d: task env %q, want job %s", cell, b, job.ID)
		}
	}
	if _, err := os.Stat(filepath.Join(marker, "5")); err == nil {
		t.Error("task 5 was cancelled while pending but ran")
	}
}
