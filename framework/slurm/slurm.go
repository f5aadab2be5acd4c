// Package slurm submits a grid's cells to a Slurm cluster as one job array and
// watches it: sbatch, squeue, scontrol and scancel, run as commands (the
// cluster's own clients, configured as usual through SLURM_CONF or
// /etc/slurm). Nothing here keeps state of its own: the results directory says
// which cells are done, Slurm says which tasks are pending or running.
//
// Package slurmtest starts a real one-node cluster (munged, slurmctld,
// slurmd) for tests.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Options are the [slurm] settings of an experiment.
type Options struct {
	Partition   string   // "" = the cluster's default
	Time        string   // time limit per task, Slurm syntax ("30:00", "2-00:00:00"); "" = the partition's
	CPUsPerTask int      // 0 = Slurm's default
	Mem         string   // memory per task ("8G"); "" = Slurm's default
	MaxParallel int      // tasks at once (the %N of --array); 0 = no limit
	ExtraArgs   []string // further sbatch arguments, as given
	JobName     string
}

// Job is a submitted array job.
type Job struct {
	ID      string // the array job id
	Script  string // the batch script written
	LogGlob string // where the tasks' output goes, %a = task index
}

// ErrNoSlurm says the Slurm commands are not installed here.
var ErrNoSlurm = errors.New("slurm: sbatch is not on PATH (install Slurm's client commands, e.g. Debian slurm-client, and point SLURM_CONF at the cluster's slurm.conf)")

// ArraySpec formats task indices for sbatch --array: runs of consecutive
// indices as ranges ("0-3,7,9-10"), then "%max" when max > 0.
func ArraySpec(indices []int, max int) string {
	xs := append([]int(nil), indices...)
	sort.Ints(xs)
	var parts []string
	for i := 0; i < len(xs); {
		j := i
		for j+1 < len(xs) && xs[j+1] == xs[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", xs[i], xs[j]))
		} else {
			parts = append(parts, strconv.Itoa(xs[i]))
		}
		i = j + 1
	}
	s := strings.Join(parts, ",")
	if max > 0 {
		s += "%" + strconv.Itoa(max)
	}
	return s
}

// Script is the batch script of an array whose task i runs argv with
// "--cell i" appended (the cell index is the array index).
func Script(argv []string, workdir string) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# written by liquidlab: one array task per grid cell\nset -eu\n")
	fmt.Fprintf(&b, "cd %s\n", shellQuote(workdir))
	for _, a := range argv {
		b.WriteString(shellQuote(a))
		b.WriteString(" ")
	}
	b.WriteString("--cell \"$SLURM_ARRAY_TASK_ID\"\n")
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ',' || r == ':' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Submit writes the batch script into dir and submits one array job of the
// given cell indices. Task output goes to dir/slurm-%A_%a.out.
func Submit(ctx context.Context, o Options, dir string, argv []string, workdir string, indices []int) (*Job, error) {
	if len(indices) == 0 {
		return nil, errors.New("slurm: no cells to submit")
	}
	if _, err := exec.LookPath("sbatch"); err != nil {
		return nil, ErrNoSlurm
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	script := filepath.Join(dir, "array.sh")
	if err := os.WriteFile(script, []byte(Script(argv, workdir)), 0o755); err != nil {
		return nil, err
	}
	args := []string{"--parsable", "--array=" + ArraySpec(indices, o.MaxParallel),
		"--output=" + filepath.Join(dir, "slurm-%A_%a.out"), "--requeue"}
	if o.JobName != "" {
		args = append(args, "--job-name="+o.JobName)
	}
	if o.Partition != "" {
		args = append(args, "--partition="+o.Partition)
	}
	if o.Time != "" {
		args = append(args, "--time="+o.Time)
	}
	if o.CPUsPerTask > 0 {
		args = append(args, "--cpus-per-task="+strconv.Itoa(o.CPUsPerTask))
	}
	if o.Mem != "" {
		args = append(args, "--mem="+o.Mem)
	}
	args = append(args, o.ExtraArgs...)
	args = append(args, script)
	out, err := run(ctx, "sbatch", args...)
	if err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";") // --parsable: "id" or "id;cluster"
	if _, err := strconv.Atoi(id); err != nil {
		return nil, fmt.Errorf("slurm: sbatch printed %q, not a job id", strings.TrimSpace(out))
	}
	return &Job{ID: id, Script: script, LogGlob: filepath.Join(dir, "slurm-"+id+"_%a.out")}, nil
}

// LogPath is the output file of one task of a job submitted by Submit.
func LogPath(dir, jobID string, task int) string {
	return filepath.Join(dir, fmt.Sprintf("slurm-%s_%d.out", jobID, task))
}

// Queue returns the state (PENDING, RUNNING, …, as squeue prints it) of every
// task of the array that Slurm still lists; finished tasks drop out of the
// queue after a while, so a task absent here is finished or never existed.
func Queue(ctx context.Context, jobID string) (map[int]string, error) {
	out, err := run(ctx, "squeue", "--noheader", "--array", "--jobs="+jobID, "--format=%K %T")
	if err != nil {
		if strings.Contains(err.Error(), "Invalid job id") {
			return map[int]string{}, nil
		}
		return nil, err
	}
	return parseQueue(out), nil
}

// parseQueue reads "task state" lines; a pending range such as "[2-5%2]" or
// "2-5" counts every task in it.
func parseQueue(out string) map[int]string {
	states := map[int]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		spec := strings.Trim(f[0], "[]")
		spec, _, _ = strings.Cut(spec, "%")
		for _, part := range strings.Split(spec, ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 != nil || err2 != nil || b < a || b-a > 1<<20 {
				continue
			}
			for i := a; i <= b; i++ {
				states[i] = f[1]
			}
		}
	}
	return states
}

// Cancel cancels the whole array, or only the given tasks.
func Cancel(ctx context.Context, jobID string, tasks ...int) error {
	if len(tasks) == 0 {
		_, err := run(ctx, "scancel", jobID)
		return err
	}
	args := make([]string, len(tasks))
	for i, t := range tasks {
		args[i] = fmt.Sprintf("%s_%d", jobID, t)
	}
	_, err := run(ctx, "scancel", args...)
	return err
}

// Env is what a task knows of itself from Slurm's environment.
type Env struct {
	JobID, ArrayJobID, TaskID, Node string
	Restarts                        int
}

// FromEnv reads Slurm's variables of the running task (empty outside Slurm).
func FromEnv() Env {
	n, _ := strconv.Atoi(os.Getenv("SLURM_RESTART_COUNT"))
	return Env{JobID: os.Getenv("SLURM_JOB_ID"), ArrayJobID: os.Getenv("SLURM_ARRAY_JOB_ID"),
		TaskID: os.Getenv("SLURM_ARRAY_TASK_ID"), Node: os.Getenv("SLURMD_NODENAME"), Restarts: n}
}

// InTask reports whether this process runs inside a Slurm job.
func (e Env) InTask() bool { return e.JobID != "" }

func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return stdout.String(), fmt.Errorf("slurm: %s %s: %s", name, strings.Join(args, " "), msg)
	}
	return stdout.String(), nil
}
