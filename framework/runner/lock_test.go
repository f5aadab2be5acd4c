//go:build unix

package runner_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
	"liquidlab/framework/runner"
)

// TestSecondRunSkipsLockedCell: a cell whose lock this process already holds
// (a second run of the same experiment, or a duplicate cell) is skipped as
// running elsewhere, not trained a second time.
func TestSecondRunSkipsLockedCell(t *testing.T) {
	ev := newEnv(t, tinyExperiment, t.TempDir())
	first := ev.run(t, faultNone, train)
	c := results.Store{Root: ev.res}.Cell("tiny", first["coupling"].ID)
	l, err := c.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	second := ev.run(t, faultNone, runner.Options{Train: true, Force: true})
	if oc := second["coupling"]; oc.Busy == nil || !oc.Skipped || oc.Err != nil {
		t.Fatalf("locked cell: busy %v skipped %v err %v", oc.Busy, oc.Skipped, oc.Err)
	}
	if oc := second["flaky"]; oc.Skipped || oc.Err != nil {
		t.Errorf("free cell: skipped %v err %v", oc.Skipped, oc.Err)
	}
	if !strings.Contains(ev.out.String(), "running elsewhere, skipped: cell tiny/"+first["coupling"].ID+" is being run by ") {
		t.Errorf("no run-level message:\n%s", ev.out)
	}
	if n := begins(t, first["coupling"]); n != 1 {
		t.Errorf("the locked cell was begun again (%d begin markers)", n)
	}
}

// TestTwoRunsOneResultsDirectory runs the experiment in a child process whose
// flaky cell hangs while training, and a second run here: the cell the child
// holds is skipped and shown as running elsewhere; once the child is killed
// the cell is shown as interrupted, and a rerun redoes it.
func TestTwoRunsOneResultsDirectory(t *testing.T) {
	if res := os.Getenv("LIQUIDLAB_RUNNER_CHILD"); res != "" {
		ev := newEnv(t, tinyExperiment, res)
		flakyFault.Store(faultHang)
		go func() {
			// Tell the parent once the hanging cell has begun (its run.json
			// written: a cell locked but not yet begun leaves no record once
			// its process is killed).
			for {
				recs, _ := results.Store{Root: res}.Records("tiny")
				if len(recs) == 2 && recs[0].Status == results.StatusDone && recs[1].Status == results.StatusRunning && !recs[1].Info.Start.IsZero() {
					os.Stdout.WriteString("hanging\n")
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		ev.r.Run(context.Background(), ev.exp, train)
		return
	}
	res := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTwoRunsOneResultsDirectory$")
	cmd.Env = append(os.Environ(), "LIQUIDLAB_RUNNER_CHILD="+res)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	done := make(chan string, 1)
	go func() { l, _ := bufio.NewReader(stdout).ReadString('\n'); done <- l }()
	select {
	case l := <-done:
		if l != "hanging\n" {
			t.Fatalf("child: %q", l)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the child's cell did not start")
	}

	ev := newEnv(t, tinyExperiment, res)
	second := ev.run(t, faultNone, train)
	if oc := second["coupling"]; !oc.Skipped || oc.Busy != nil {
		t.Errorf("done cell: skipped %v busy %v", oc.Skipped, oc.Busy)
	}
	oc := second["flaky"]
	if oc.Busy == nil || oc.Busy.Owner.PID != cmd.Process.Pid || oc.Err != nil {
		t.Fatalf("cell run by the child: busy %v err %v\n%s", oc.Busy, oc.Err, ev.out)
	}
	table := func() string {
		recs, err := results.Store{Root: res}.Records("tiny")
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		if err := report.Render(&sb, report.CellsTable(recs, []string{"train_loss"}), "text"); err != nil {
			t.Fatal(err)
		}
		return sb.String()
	}
	if tb := table(); !strings.Contains(tb, "running elsewhere") {
		t.Errorf("table while the child runs:\n%s", tb)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if tb := table(); !strings.Contains(tb, "interrupted") {
		t.Errorf("table after the child was killed:\n%s", tb)
	}
	third := ev.run(t, faultNone, train)
	if oc := third["flaky"]; oc.Skipped || oc.Err != nil {
		t.Errorf("rerun of the interrupted cell: skipped %v err %v", oc.Skipped, oc.Err)
	}
}
