package results_test

import (
	"testing"

	"liquidlab/framework/results"
)

// TestSlurmProvenance: inside a Slurm array task the lock's owner and run.json
// name the job, the task and the node; outside Slurm neither mentions Slurm.
func TestSlurmProvenance(t *testing.T) {
	for _, k := range []string{"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME", "SLURM_RESTART_COUNT"} {
		t.Setenv(k, "")
	}
	s := results.Store{Root: t.TempDir()}
	plain := s.Cell("exp", "plain")
	if err := plain.Begin(results.RunInfo{}, []byte("x = 1\n"), nil); err != nil {
		t.Fatal(err)
	}
	if r, err := plain.Load(); err != nil || r.Info.Slurm != nil {
		t.Fatalf("outside Slurm: run.json slurm = %+v (err %v), want none", r.Info.Slurm, err)
	}

	t.Setenv("SLURM_JOB_ID", "108")
	t.Setenv("SLURM_ARRAY_JOB_ID", "105")
	t.Setenv("SLURM_ARRAY_TASK_ID", "3")
	t.Setenv("SLURMD_NODENAME", "n1")
	t.Setenv("SLURM_RESTART_COUNT", "1")
	c := s.Cell("exp", "task")
	l, err := c.Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	o, err := c.Locker()
	if err != nil || o == nil {
		t.Fatalf("Locker = %v, %v", o, err)
	}
	if o.Slurm != "105_3 on node n1" {
		t.Errorf("owner's Slurm job %q, want %q", o.Slurm, "105_3 on node n1")
	}
	if err := c.Begin(results.RunInfo{}, []byte("x = 1\n"), nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := results.SlurmTask{JobID: "108", ArrayJobID: "105", TaskID: "3", Node: "n1", Restarts: 1}
	if r.Info.Slurm == nil || *r.Info.Slurm != want {
		t.Errorf("run.json slurm = %+v, want %+v", r.Info.Slurm, want)
	}
}
