package results

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"liquidlab/framework/slurm"
)

// File names inside a cell directory.
const (
	ConfigTOML  = "config.toml"
	ConfigJSON  = "config.json"
	PluginsFile = "plugins.json"
	RunFile     = "run.json"
	MetricsFile = "metrics.json"
	LogFile     = "log.txt"
	// CheckpointFile holds a trained cell's parameters (safetensors).
	CheckpointFile = "checkpoint.safetensors"
)

// Cell status values stored in run.json. The empty string means "never started".
const (
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// Statuses Store.Records gives a cell beyond the stored ones; they are never
// written to run.json.
const (
	// StatusInterrupted: run.json says "running" but nobody holds the cell's
	// lock; the process that ran it was killed. A rerun redoes it.
	StatusInterrupted = "interrupted"
	// StatusRunningElsewhere: another process holds the cell's lock (Record.Error
	// names it).
	StatusRunningElsewhere = "running elsewhere"
	// StatusBroken: a file of the cell is unreadable or corrupt (Record.Error
	// names the file and the error). A rerun redoes it.
	StatusBroken = "broken"
)

// Store is a results tree rooted at Root (for example "results").
type Store struct{ Root string }

// Cell is one grid cell of one experiment: the directory Dir =
// Root/Experiment/ID.
type Cell struct{ Dir, Experiment, ID string }

// PluginInfo identifies the plugin binary that served one stage.
type PluginInfo struct {
	Kind    string `json:"kind"`
	Impl    string `json:"impl"`
	Version string `json:"version"`
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
}

// RunInfo is the provenance of one cell run, stored in run.json.
type RunInfo struct {
	Experiment string            `json:"experiment"`
	CellIndex  int               `json:"cell_index"`
	Axes       map[string]string `json:"axes,omitempty"`
	Seed       int64             `json:"seed,omitempty"`      // the model seed of repeat 1 (repeat k: Seed+k-1)
	DataSeed   int64             `json:"data_seed,omitempty"` // the data seed, shared by the repeats
	Commit     string            `json:"commit"`
	Dirty      bool              `json:"dirty"`
	Machine    Machine           `json:"machine"`
	BLAS       string            `json:"blas"`
	Start      time.Time         `json:"start,omitzero"`
	End        time.Time         `json:"end,omitzero"`
	// Slurm is the Slurm job that ran the cell; nil outside Slurm. Begin
	// fills it from the environment when the caller leaves it nil.
	Slurm *SlurmTask `json:"slurm,omitempty"`
}

// SlurmTask is where in a Slurm cluster a process runs, from the variables
// Slurm sets for a job.
type SlurmTask struct {
	JobID      string `json:"job_id"`                 // SLURM_JOB_ID, this task's own id
	ArrayJobID string `json:"array_job_id,omitempty"` // SLURM_ARRAY_JOB_ID, the array's id
	TaskID     string `json:"array_task_id,omitempty"`
	Node       string `json:"node"`
	Restarts   int    `json:"restarts,omitempty"` // SLURM_RESTART_COUNT: times Slurm requeued the task
}

// SlurmFromEnv describes the Slurm job this process runs in, or returns nil
// outside Slurm.
func SlurmFromEnv() *SlurmTask {
	e := slurm.FromEnv()
	if !e.InTask() {
		return nil
	}
	return &SlurmTask{JobID: e.JobID, ArrayJobID: e.ArrayJobID, TaskID: e.TaskID, Node: e.Node, Restarts: e.Restarts}
}

// String is "ARRAYJOB_TASK on node N" for an array task, "JOB on node N"
// otherwise.
func (t SlurmTask) String() string {
	id := t.JobID
	if t.ArrayJobID != "" && t.TaskID != "" {
		id = t.ArrayJobID + "_" + t.TaskID
	}
	if t.Node != "" {
		id += " on node " + t.Node
	}
	return id
}

// Record is everything stored for one cell, as read back by Cell.Load.
type Record struct {
	Cell       Cell
	Info       RunInfo
	Status     string // StatusRunning, StatusDone or StatusFailed; Records also gives StatusInterrupted, StatusRunningElsewhere and StatusBroken
	Error      string // the run error for a failed cell; the file and its error for a broken one; the lock's owner for one running elsewhere
	Config     []byte // the resolved config as given to Begin
	ConfigFile string // ConfigTOML or ConfigJSON; "" when no config file exists
	Plugins    []PluginInfo
	Metrics    *Metrics // nil while running or after a crash before Finish
}

// runFile is the content of run.json.
type runFile struct {
	RunInfo
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// CellID returns the id of a cell: the first 12 hex digits of the SHA-256 of
// the canonical config followed by the plugin checksums, in the order given
// (stage order). Every part is length-prefixed, so no two different inputs
// share an encoding.
func CellID(canonicalConfig []byte, pluginChecksums []string) string {
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	put(canonicalConfig)
	for _, c := range pluginChecksums {
		put([]byte(c))
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Cell returns the cell id of experiment. It does not touch the disk; the
// names are checked by the methods that do.
func (s Store) Cell(experiment, id string) Cell {
	return Cell{Dir: filepath.Join(s.Root, experiment, id), Experiment: experiment, ID: id}
}

// Records loads every cell of experiment, sorted by cell index, then id.
// Directories without run.json (a crash before Begin finished) are skipped
// unless another process holds their lock. A cell whose files are unreadable
// or corrupt is returned as StatusBroken, with the file and the error in
// Error, so one bad cell does not hide the others. A "running" cell whose lock
// nobody holds is StatusInterrupted; a cell whose lock another process holds
// is StatusRunningElsewhere, with that process in Error.
func (s Store) Records(experiment string) ([]*Record, error) {
	if err := checkName("experiment", experiment); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Root, experiment)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("results: experiment %q: %w", experiment, err)
	}
	var recs []*Record
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		c := s.Cell(experiment, e.Name())
		if r := c.record(); r != nil {
			recs = append(recs, r)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		if recs[i].Info.CellIndex != recs[j].Info.CellIndex {
			return recs[i].Info.CellIndex < recs[j].Info.CellIndex
		}
		return recs[i].Cell.ID < recs[j].Cell.ID
	})
	return recs, nil
}

// record is the cell as Records shows it, or nil for a directory to leave out.
func (c Cell) record() *Record {
	owner, lockErr := c.Locker()
	_, statErr := os.Stat(filepath.Join(c.Dir, RunFile))
	if errors.Is(statErr, fs.ErrNotExist) && owner == nil && lockErr == nil {
		return nil
	}
	r, err := c.load()
	switch {
	case owner != nil && !owner.Self():
		r.Status, r.Error = StatusRunningElsewhere, "being run by "+owner.String()
	case errors.Is(statErr, fs.ErrNotExist):
		// Our own process holds the lock and has not begun the cell yet.
		r.Status = StatusRunning
	case err != nil:
		r.Status, r.Error = StatusBroken, err.Error()
	case lockErr != nil:
		r.Status, r.Error = StatusBroken, lockErr.Error()
	case r.Status == StatusRunning && owner == nil:
		r.Status, r.Error = StatusInterrupted, "run.json says running, but no process holds the cell's lock: its run was killed; a rerun redoes it"
	}
	return r
}

// Status reports the stored status of the cell: "" when the cell was never
// begun, otherwise StatusRunning, StatusDone or StatusFailed.
func (c Cell) Status() (string, error) {
	if err := c.check(); err != nil {
		return "", err
	}
	rf, err := c.readRun()
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return rf.Status, nil
}

// Done checks that the cell is finished and intact: run.json says "done",
// metrics.json reads back, and every file named in need (a checkpoint, say)
// exists. A nil error means the cell may be skipped; otherwise the error says
// why it is to be (re)done, naming the file at fault.
func (c Cell) Done(need ...string) error {
	if err := c.check(); err != nil {
		return err
	}
	rf, err := c.readRun()
	if errors.Is(err, fs.ErrNotExist) {
		return c.errorf("never started")
	}
	if err != nil {
		return err
	}
	if rf.Status != StatusDone {
		return c.errorf("status %q", rf.Status)
	}
	var m Metrics
	if err := readJSON(filepath.Join(c.Dir, MetricsFile), &m); err != nil {
		return c.errorf("done, but %w", err)
	}
	for _, name := range need {
		if _, err := os.Stat(filepath.Join(c.Dir, name)); err != nil {
			return c.errorf("done, but %w", err)
		}
	}
	return nil
}

// Begin (re)starts the cell: it creates the directory, writes the config
// (config.json when config is a JSON object, config.toml otherwise),
// plugins.json and run.json with status "running", removes a stale
// metrics.json and appends a marker line to log.txt. A zero info.Start is set
// to now; info.Experiment defaults to the cell's experiment; a nil info.Slurm
// is the Slurm job this process runs in (SlurmFromEnv).
func (c Cell) Begin(info RunInfo, config []byte, plugins []PluginInfo) error {
	if err := c.check(); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return c.errorf("create directory: %w", err)
	}
	if err := removeIfExists(filepath.Join(c.Dir, MetricsFile)); err != nil {
		return c.errorf("remove stale metrics: %w", err)
	}
	if err := removeTemporaries(c.Dir); err != nil {
		return c.errorf("remove a temporary file left by an earlier run: %w", err)
	}
	name, stale := ConfigTOML, ConfigJSON
	if isJSONObject(config) {
		name, stale = ConfigJSON, ConfigTOML
	}
	if err := removeIfExists(filepath.Join(c.Dir, stale)); err != nil {
		return c.errorf("remove stale config: %w", err)
	}
	if err := WriteFileAtomic(filepath.Join(c.Dir, name), config); err != nil {
		return c.errorf("write config: %w", err)
	}
	if plugins == nil {
		plugins = []PluginInfo{}
	}
	if err := writeJSON(filepath.Join(c.Dir, PluginsFile), plugins); err != nil {
		return c.errorf("write plugins: %w", err)
	}
	if info.Experiment == "" {
		info.Experiment = c.Experiment
	}
	if info.Start.IsZero() {
		info.Start = time.Now()
	}
	if info.Slurm == nil {
		info.Slurm = SlurmFromEnv()
	}
	info.Start = info.Start.Round(0)
	info.End = time.Time{}
	if info.BLAS == "" {
		info.BLAS = info.Machine.BLAS
	}
	if info.Machine.BLAS == "" {
		info.Machine.BLAS = info.BLAS
	}
	if err := c.writeRun(runFile{RunInfo: info, Status: StatusRunning}); err != nil {
		return err
	}
	return c.appendLog(fmt.Sprintf("--- begin cell %s (index %d) at %s ---\n",
		c.ID, info.CellIndex, info.Start.Format(time.RFC3339)))
}

// Log opens log.txt for appending. Begin must have created the directory.
// The caller closes the writer.
func (c Cell) Log() (io.WriteCloser, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.Dir, LogFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, c.errorf("open log (was Begin called?): %w", err)
	}
	return f, nil
}

// Finish ends the run begun by Begin: it writes metrics.json (also when runErr
// is not nil, so partial metrics of a failed run are kept), then run.json with
// the end time and status "done", or "failed" with runErr's text.
func (c Cell) Finish(m Metrics, runErr error) error {
	if err := c.check(); err != nil {
		return err
	}
	rf, err := c.readRun()
	if errors.Is(err, fs.ErrNotExist) {
		return c.errorf("finish without Begin: %w", err)
	}
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return c.errorf("encode metrics: %w", err)
	}
	var merr error
	if err := WriteFileAtomic(filepath.Join(c.Dir, MetricsFile), append(data, '\n')); err != nil {
		// Without its metrics the cell is not done; record it as failed
		// (run.json is small and may still fit) rather than leave it running.
		merr = c.errorf("write metrics: %w", err)
		runErr = errors.Join(runErr, merr)
	}
	rf.End = time.Now().Round(0)
	rf.Status, rf.Error = StatusDone, ""
	if runErr != nil {
		rf.Status, rf.Error = StatusFailed, runErr.Error()
	}
	if err := c.writeRun(rf); err != nil {
		return errors.Join(merr, err)
	}
	return merr
}

// Load reads everything stored for the cell back.
func (c Cell) Load() (*Record, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	r, err := c.load()
	if err != nil {
		return nil, err
	}
	return r, nil
}

// load reads what it can of the cell: on error, the record holds what was
// read before the error.
func (c Cell) load() (*Record, error) {
	r := &Record{Cell: c}
	rf, err := c.readRun()
	if err != nil {
		return r, err
	}
	r.Info, r.Status, r.Error = rf.RunInfo, rf.Status, rf.Error
	for _, name := range []string{ConfigTOML, ConfigJSON} {
		data, err := os.ReadFile(filepath.Join(c.Dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return r, c.errorf("read config: %w", err)
		}
		r.Config, r.ConfigFile = data, name
		break
	}
	if err := readJSON(filepath.Join(c.Dir, PluginsFile), &r.Plugins); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, c.errorf("%w", err)
	}
	var m Metrics
	switch err := readJSON(filepath.Join(c.Dir, MetricsFile), &m); {
	case err == nil:
		r.Metrics = &m
	case !errors.Is(err, fs.ErrNotExist):
		return r, c.errorf("%w", err)
	}
	return r, nil
}

func (c Cell) readRun() (runFile, error) {
	var rf runFile
	if err := readJSON(filepath.Join(c.Dir, RunFile), &rf); err != nil {
		return rf, c.errorf("%w", err)
	}
	switch rf.Status {
	case StatusRunning, StatusDone, StatusFailed:
		return rf, nil
	}
	return rf, c.errorf("%s: unknown status %q (want %q, %q or %q)",
		RunFile, rf.Status, StatusRunning, StatusDone, StatusFailed)
}

func (c Cell) writeRun(rf runFile) error {
	if err := writeJSON(filepath.Join(c.Dir, RunFile), rf); err != nil {
		return c.errorf("write run info: %w", err)
	}
	return nil
}

func (c Cell) appendLog(s string) error {
	w, err := c.Log()
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, s)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.errorf("write log: %w", err)
	}
	return nil
}

func (c Cell) check() error {
	if err := checkName("experiment", c.Experiment); err != nil {
		return err
	}
	if err := checkName("cell id", c.ID); err != nil {
		return err
	}
	if c.Dir == "" {
		return fmt.Errorf("results: cell %s/%s has no directory (use Store.Cell)", c.Experiment, c.ID)
	}
	return nil
}

func (c Cell) errorf(format string, args ...any) error {
	return fmt.Errorf("results: cell %s/%s: "+format, append([]any{c.Experiment, c.ID}, args...)...)
}

// checkName accepts a single, non-hidden path element.
func checkName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.HasPrefix(s, ".") ||
		strings.ContainsAny(s, `/\`+"\x00") {
		return fmt.Errorf("results: invalid %s %q: want a non-empty name without path separators or a leading dot", what, s)
	}
	return nil
}

func isJSONObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

// removeTemporaries removes the temporary files a killed or failed write left
// in dir: WriteFileAtomic's ".NAME.tmp-*" and the "NAME.tmp" of older
// checkpoint writers. Left alone, they hold disk space a later write needs.
func removeTemporaries(dir string) error {
	for _, pattern := range []string{".*.tmp-*", "*.tmp"} {
		names, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := removeIfExists(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

// WriteFileAtomic replaces path with data: it writes a temporary file in the
// same directory, syncs it, renames it over path and syncs the directory, so
// readers see the old or the new content and a crash leaves no torn file. On
// error the temporary file is removed.
func WriteFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return fmt.Errorf("results: write %q: no file name", path)
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("results: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("results: write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("results: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("results: sync %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("results: close %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("results: rename into %s: %w", path, err)
	}
	// The rename is durable only once the directory is synced; some file
	// systems refuse to sync directories, which costs durability, not
	// correctness, so that error is ignored.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
