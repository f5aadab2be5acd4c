package slurm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Submission is the record of one submitted array, kept beside the task logs
// as <dir>/<job id>.json: which grid cells the array runs and how, so the
// status of a detached run can be read back later.
type Submission struct {
	Experiment string    `json:"experiment"`
	JobID      string    `json:"job_id"`
	Submitted  time.Time `json:"submitted"`
	Argv       []string  `json:"argv"` // each task runs Argv then "--cell i"
	Workdir    string    `json:"workdir"`
	Results    string    `json:"results"` // the results directory the tasks write
	LogDir     string    `json:"log_dir"` // where the tasks' slurm-JOB_TASK.out files are
	GridCells  int       `json:"grid_cells"`
	Cells      []Cell    `json:"cells"` // every cell of the grid
}

// Cell is one grid cell of a submission. JobID and Task say which array task
// runs it: this submission's for a submitted cell, an earlier one's for a
// cell still queued there, "" for a cell that was done (or run by another
// process) at submission time.
type Cell struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
	Axes  string `json:"axes,omitempty"`
	JobID string `json:"job_id,omitempty"`
	Task  int    `json:"task"`
}

// Tasks returns the indices of the cells this submission's array runs.
func (s *Submission) Tasks() []int {
	var xs []int
	for _, c := range s.Cells {
		if c.JobID == s.JobID {
			xs = append(xs, c.Task)
		}
	}
	return xs
}

// Save writes the record into dir as JOB.json (atomically: a temporary file
// renamed into place).
func (s *Submission) Save(dir string) error {
	if s.JobID == "" || strings.ContainsAny(s.JobID, `/\`) {
		return fmt.Errorf("slurm: submission record: invalid job id %q", s.JobID)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("slurm: submission record: %w", err)
	}
	path := filepath.Join(dir, s.JobID+".json")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("slurm: submission record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("slurm: submission record: %w", err)
	}
	return nil
}

// Submissions reads every submission record in dir, oldest first; none (and
// no error) when dir does not exist.
func Submissions(dir string) ([]*Submission, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var subs []*Submission
	for _, n := range names {
		data, err := os.ReadFile(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("slurm: submission record: %w", err)
		}
		s := &Submission{}
		if err := json.Unmarshal(data, s); err != nil {
			return nil, fmt.Errorf("slurm: submission record %s: %w", n, err)
		}
		subs = append(subs, s)
	}
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].Submitted.Before(subs[j].Submitted) })
	return subs, nil
}

// Pending reports whether squeue shows a task in a state before it runs
// (pending, requeued, held, suspended), as opposed to running or completing.
func Pending(state string) bool {
	switch state {
	case "PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD":
		return true
	}
	return false
}
