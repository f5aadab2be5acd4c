package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/results"
	"liquidlab/framework/slurm"
	"liquidlab/framework/slurm/slurmtest"
)

// slurmGrid is a 12-cell grid of tiny in-process models (a few training
// steps each, no bench).
const slurmGrid = `
name = "%s"
seed = 5
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
steps = 4
batch = 2
lr = 1e-3
warmup_steps = 1
[eval]
batches = 1
[bench]
lengths = []
[run]
mode = "inprocess"
[slurm]
max_parallel = 2
poll = "300ms"
[grid]
%s
`

// buildLiquidlab builds this command into dir, so Slurm tasks can run it.
func buildLiquidlab(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "liquidlab")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func runBin(t *testing.T, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// timing reports whether a metric measures time (it differs run to run).
func timing(name string) bool {
	return strings.HasSuffix(name, "_s") || strings.Contains(name, "per_s") || strings.Contains(name, "time")
}

// TestSlurmExecutor runs a 12-cell grid through a real one-node Slurm
// cluster (slurmctld, slurmd, munged), at most 2 tasks at once, and checks
// every cell against a local run of the same grid: same cell ids, same
// metrics except timings, the Slurm job, task and node in run.json. Then it
// cancels the running task of a slow cell in a fresh grid, checks that status
// shows it as failed with its Slurm log, and that a rerun submits exactly that
// cell and completes the grid.
func TestSlurmExecutor(t *testing.T) {
	cl := slurmtest.Start(t)
	dir := t.TempDir()
	bin := buildLiquidlab(t, dir)
	exp := filepath.Join(dir, "grid.toml")
	grid := `"model.num_flows" = [0, 1, 2, 4]` + "\n" + `"train.lr" = [1e-3, 3e-3, 1e-2]`
	if err := os.WriteFile(exp, []byte(fmt.Sprintf(slurmGrid, "grid", grid)), 0o644); err != nil {
		t.Fatal(err)
	}
	local, shared := filepath.Join(dir, "local"), filepath.Join(dir, "shared")
	if out, err := runBin(t, bin, nil, "run", "-results", local, exp); err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}

	start := time.Now()
	out, err := runBin(t, bin, nil, "run", "-set", "run.executor=slurm", "-results", shared, exp)
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("slurm run: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`submitted Slurm job (\d+): 12 cells \(array 0-11, at most 2 at once\) in ([0-9.]+)s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no submission line for 12 cells:\n%s", out)
	}
	job := m[1]
	submitS, _ := strconv.ParseFloat(m[2], 64)
	for _, want := range []string{"0 pending, 0 running, 12 done, 0 failed", "experiment grid"} {
		if !strings.Contains(out, want) {
			t.Errorf("slurm run output lacks %q:\n%s", want, out)
		}
	}

	lrecs, err := results.Store{Root: local}.Records("grid")
	if err != nil {
		t.Fatal(err)
	}
	srecs, err := results.Store{Root: shared}.Records("grid")
	if err != nil {
		t.Fatal(err)
	}
	if len(lrecs) != 12 || len(srecs) != 12 {
		t.Fatalf("%d local and %d Slurm cells, want 12 each", len(lrecs), len(srecs))
	}
	var cellTime time.Duration
	for i, l := range lrecs {
		s := srecs[i]
		if s.Cell.ID != l.Cell.ID || s.Info.CellIndex != l.Info.CellIndex {
			t.Errorf("cell %d: Slurm id %s index %d, local id %s index %d", i, s.Cell.ID, s.Info.CellIndex, l.Cell.ID, l.Info.CellIndex)
			continue
		}
		if s.Status != results.StatusDone || s.Metrics == nil {
			t.Errorf("cell %d %s: status %q %s", i, s.Cell.ID, s.Status, s.Error)
			continue
		}
		cellTime += s.Info.End.Sub(s.Info.Start)
		compared := 0
		for k, lv := range l.Metrics.Values {
			if timing(k) {
				continue
			}
			compared++
			if sv, ok := s.Metrics.Values[k]; !ok || sv != lv {
				t.Errorf("cell %d %s: %s = %v through Slurm, %v locally", i, s.Cell.ID, k, s.Metrics.Values[k], lv)
			}
		}
		if compared < 5 {
			t.Errorf("cell %d: only %d metrics compared: %v", i, compared, l.Metrics.Values)
		}
		want := results.SlurmTask{ArrayJobID: job, TaskID: strconv.Itoa(s.Info.CellIndex), Node: cl.Node}
		if sl := s.Info.Slurm; sl == nil || sl.ArrayJobID != want.ArrayJobID || sl.TaskID != want.TaskID || sl.Node != want.Node || sl.JobID == "" {
			t.Errorf("cell %d: run.json slurm = %+v, want %+v", i, sl, want)
		}
		if l.Info.Slurm != nil {
			t.Errorf("cell %d: the local run recorded a Slurm job %+v", i, l.Info.Slurm)
		}
	}
	// Two tasks at a time: what the 12 tasks took beyond their cells' own
	// run time, per cell, is Slurm's start-up plus the task's bookkeeping
	// (process start, grid resolution, lock, records).
	overhead := (2*wall - cellTime) / 12
	t.Logf("12 cells: submission %.2fs, wall %v, cells' own time %v, overhead per cell ≈ %v (2 tasks at once)", submitS, wall.Round(time.Millisecond), cellTime.Round(time.Millisecond), overhead.Round(time.Millisecond))
	// Split by Slurm's own task times (whole seconds, from scontrol): inside
	// the task (process start, grid, lock, records) and outside it (scheduling).
	var taskTime time.Duration
	for i := 0; i < 12; i++ {
		o, err := exec.Command("scontrol", "show", "job", "-o", fmt.Sprintf("%s_%d", job, i)).Output()
		st := regexp.MustCompile(`StartTime=(\S+) EndTime=(\S+)`).FindStringSubmatch(string(o))
		if err != nil || st == nil {
			t.Logf("scontrol show job %s_%d: %v %s", job, i, err, o)
			taskTime = 0
			break
		}
		a, err1 := time.ParseInLocation("2006-01-02T15:04:05", st[1], time.Local)
		b, err2 := time.ParseInLocation("2006-01-02T15:04:05", st[2], time.Local)
		if err1 != nil || err2 != nil {
			taskTime = 0
			break
		}
		taskTime += b.Sub(a)
	}
	if taskTime > 0 {
		t.Logf("per cell: %v in the task beyond the cell's own run, %v outside the tasks (Slurm scheduling and start-up, this command's polling)",
			((taskTime - cellTime) / 12).Round(time.Millisecond), ((2*wall - taskTime) / 12).Round(time.Millisecond))
	}

	out, err = runBin(t, bin, nil, "run", "-set", "run.executor=slurm", "-results", shared, exp)
	if err != nil || !strings.Contains(out, "nothing to submit: every cell is done") || strings.Contains(out, "submitted") {
		t.Errorf("rerun of a finished grid: %v\n%s", err, out)
	}
	// A task Slurm requeued resumes: its finished cell is skipped, even with -force.
	out, err = runBin(t, bin, []string{"SLURM_JOB_ID=999", "SLURM_ARRAY_JOB_ID=" + job, "SLURM_ARRAY_TASK_ID=3", "SLURMD_NODENAME=" + cl.Node, "SLURM_RESTART_COUNT=1"},
		"run", "-results", shared, "-force", exp, "--cell", "3")
	if err != nil || !strings.Contains(out, "cell 4/12 "+srecs[3].Cell.ID+": already done, skipped") {
		t.Errorf("requeued task of a done cell: %v\n%s", err, out)
	}
	if out, err := runBin(t, bin, nil, "run", "-results", shared, exp, "--cell", "12"); err == nil || !strings.Contains(out, "has 12 cells") {
		t.Errorf("--cell 12 of a 12-cell grid: %v\n%s", err, out)
	}

	t.Run("cancel", func(t *testing.T) { testSlurmCancel(t, bin, dir) })
}

// testSlurmCancel cancels the running task of a grid's slow cell, then
// reruns the grid.
func testSlurmCancel(t *testing.T, bin, dir string) {
	exp := filepath.Join(dir, "slow.toml")
	if err := os.WriteFile(exp, []byte(fmt.Sprintf(slurmGrid, "slow", `"train.steps" = [3, 4, 3000]`)), 0o644); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "shared")
	out, err := runBin(t, bin, nil, "run", "-set", "run.executor=slurm", "-results", res, "--detach", exp)
	if err != nil {
		t.Fatalf("detached run: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`submitted Slurm job (\d+): 3 cells`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "liquidlab status "+filepath.Join(res, "slow")) {
		t.Fatalf("detached run output:\n%s", out)
	}
	job := m[1]
	subs, err := slurm.Submissions(filepath.Join(res, "slow", slurmDir))
	if err != nil || len(subs) != 1 || subs[0].JobID != job || len(subs[0].Cells) != 3 {
		t.Fatalf("submission records: %+v, %v", subs, err)
	}
	slowID := subs[0].Cells[2].ID
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	slowCell := results.Store{Root: res}.Cell("slow", slowID)
	if !slurmtest.Wait(ctx, func() bool {
		q, err := slurm.Queue(ctx, job)
		st, _ := slowCell.Status()
		return err == nil && q[2] == "RUNNING" && st == results.StatusRunning
	}) {
		t.Fatal("the slow cell's task did not start running")
	}
	if err := slurm.Cancel(ctx, job, 2); err != nil {
		t.Fatal(err)
	}
	if !slurmtest.Wait(ctx, func() bool { q, err := slurm.Queue(ctx, job); return err == nil && len(q) == 0 }) {
		t.Fatal("the array did not finish")
	}
	out, err = runBin(t, bin, nil, "status", filepath.Join(res, "slow"))
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"Slurm job " + job, "0 pending, 0 running, 2 done, 1 failed", "cell 2 " + slowID, slurm.LogPath(filepath.Join(res, "slow", slurmDir), job, 2)} {
		if !strings.Contains(out, want) {
			t.Errorf("status after the cancel lacks %q:\n%s", want, out)
		}
	}

	out, err = runBin(t, bin, nil, "run", "-set", "run.executor=slurm", "-results", res, exp)
	if err != nil {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	m = regexp.MustCompile(`submitted Slurm job (\d+): 1 cells \(array 2,`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "0 pending, 0 running, 3 done, 0 failed") {
		t.Fatalf("the rerun did not submit exactly cell 2 and finish:\n%s", out)
	}
	recs, err := results.Store{Root: res}.Records("slow")
	if err != nil || len(recs) != 3 {
		t.Fatalf("records: %d, %v", len(recs), err)
	}
	for i, r := range recs {
		wantJob := job
		if i == 2 {
			wantJob = m[1]
		}
		if r.Status != results.StatusDone || r.Info.Slurm == nil || r.Info.Slurm.ArrayJobID != wantJob {
			t.Errorf("cell %d: status %q, Slurm %+v, want done by job %s", i, r.Status, r.Info.Slurm, wantJob)
		}
	}
}

// TestSlurmWaitInterrupted: Ctrl-C while watching a submission, without a
// terminal, leaves the jobs alone and says how to watch and cancel them.
func TestSlurmWaitInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sub := &slurm.Submission{Experiment: "grid", JobID: "42", Results: "/shared/results",
		Cells: []slurm.Cell{{Index: 0, ID: "abc", JobID: "42"}}}
	var out strings.Builder
	err := waitSlurm(ctx, &env{stdin: strings.NewReader("y\n"), stdout: &out, stderr: &out}, results.Store{Root: t.TempDir()}, sub, time.Second)
	if err == nil {
		t.Fatal("an interrupted wait returned no error")
	}
	for _, want := range []string{"Slurm job 42 goes on", "scancel 42", "liquidlab status /shared/results/grid"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestRunCellFlags: --cell may follow the experiment file (as a Slurm task's
// command line has it) and runs only that cell; bad uses are usage errors.
func TestRunCellFlags(t *testing.T) {
	dir := t.TempDir()
	res := filepath.Join(dir, "results")
	out, err := runTiny(t, dir, "run", "-results", res, "--cell", "1")
	if err != nil {
		t.Fatalf("--cell 1: %v\n%s", err, out)
	}
	recs, err := results.Store{Root: res}.Records("tiny")
	if err != nil || len(recs) != 1 || recs[0].Info.CellIndex != 1 || recs[0].Status != results.StatusDone {
		t.Fatalf("--cell 1 ran %d cells (%v): %s", len(recs), err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--cell", "-1"}, "want a cell index"},
		{[]string{"run", "--detach"}, "--detach needs run.executor"},
		{[]string{"run", "--cell", "0", "--detach"}, "takes neither --detach"},
		{[]string{"run", "--cell", "2"}, "has 2 cells"},
	} {
		out, err := runTiny(t, dir, append(c.args, "-results", res)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q\n%s", c.args, err, c.want, out)
		}
	}
}
