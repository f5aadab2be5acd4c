package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LockFile is the name of a cell's lock file. It stays in the directory once
// created (empty while nobody holds the lock): removing it would let two
// processes lock two different files of the same name.
const LockFile = "lock"

// Owner identifies the process that holds a cell's lock.
type Owner struct {
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Start time.Time `json:"start"`
	// Slurm names the Slurm job the owner runs in ("123_4 on node n1", the
	// array job and task), empty outside Slurm.
	Slurm string `json:"slurm,omitempty"`
}

// String is "host/pid N since 15:04:05 (2006-01-02)".
func (o Owner) String() string {
	if o.Host == "" && o.PID == 0 {
		return "another process (it has not written its name yet)"
	}
	s := fmt.Sprintf("%s/pid %d", o.Host, o.PID)
	if !o.Start.IsZero() {
		s += " since " + o.Start.Local().Format("2006-01-02 15:04:05")
	}
	if o.Slurm != "" {
		s += " (Slurm job " + o.Slurm + ")"
	}
	return s
}

// Self reports whether o is this process.
func (o Owner) Self() bool {
	h, _ := os.Hostname()
	return o.Host == h && o.PID == os.Getpid()
}

// HeldError is Cell.Lock's error when another live process holds the lock.
type HeldError struct {
	Cell  Cell
	Owner Owner
}

func (e *HeldError) Error() string {
	who := e.Owner.String()
	if e.Owner.Self() {
		who += " (this process)"
	}
	return fmt.Sprintf("cell %s/%s is being run by %s", e.Cell.Experiment, e.Cell.ID, who)
}

// Lock is a held cell lock.
type Lock struct {
	f    *os.File
	path string
}

// Lock takes the cell's lock, creating the cell directory, and writes this
// process's Owner record into the lock file (with its Slurm job when it runs
// in one). It does not wait: when another
// live process holds the lock it returns a *HeldError naming that process.
//
// On Unix the lock is flock(2) on the lock file, so the kernel releases it
// when its owner dies, however it dies, and the next Lock takes it over. On a
// file system without flock, and on other systems, the owner record alone
// decides: a record of a process that no longer exists on this host is taken
// over; a record from another host is honoured until that host's process
// removes it (Unlock), since its liveness cannot be checked from here.
func (c Cell) Lock() (*Lock, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return nil, c.errorf("create directory: %w", err)
	}
	path := filepath.Join(c.Dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, c.errorf("lock: %w", err)
	}
	// A reader's probe (Locker) holds the lock for a moment; ride through it.
	var lerr error
	for i := 0; i < 5; i++ {
		if lerr = flockExclusive(f); !errors.Is(lerr, errLocked) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	switch {
	case errors.Is(lerr, errLocked):
		o, _ := readOwner(f)
		f.Close()
		return nil, &HeldError{Cell: c, Owner: o}
	case errors.Is(lerr, errNoFlock):
		if o, err := readOwner(f); err == nil && o.PID != 0 && !o.dead() {
			f.Close()
			return nil, &HeldError{Cell: c, Owner: o}
		}
	case lerr != nil:
		f.Close()
		return nil, c.errorf("lock: %w", lerr)
	}
	h, _ := os.Hostname()
	o := Owner{Host: h, PID: os.Getpid(), Start: time.Now().Round(0)}
	if t := SlurmFromEnv(); t != nil {
		o.Slurm = t.String()
	}
	if err := writeOwner(f, &o); err != nil {
		f.Close()
		return nil, c.errorf("lock: write owner: %w", err)
	}
	return &Lock{f: f, path: path}, nil
}

// Unlock empties the owner record and releases the lock. It may be called
// more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := writeOwner(l.f, nil)
	if cerr := l.f.Close(); err == nil { // closing releases the flock
		err = cerr
	}
	l.f = nil
	if err != nil {
		return fmt.Errorf("results: unlock %s: %w", l.path, err)
	}
	return nil
}

// Locker reports who holds the cell's lock: nil when nobody does (or the
// cell has no lock file).
func (c Cell) Locker() (*Owner, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(c.Dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, c.errorf("lock: %w", err)
	}
	defer f.Close()
	switch held, err := flockProbe(f); {
	case errors.Is(err, errNoFlock):
		o, err := readOwner(f)
		if err != nil || o.PID == 0 || o.dead() {
			return nil, nil
		}
		return &o, nil
	case err != nil:
		return nil, c.errorf("lock: %w", err)
	case !held:
		return nil, nil
	}
	o, _ := readOwner(f)
	return &o, nil
}

var (
	errLocked  = errors.New("locked by another process")
	errNoFlock = errors.New("file locks not supported")
)

// dead reports whether the owner is a process of this host that no longer
// exists.
func (o Owner) dead() bool {
	h, _ := os.Hostname()
	return o.Host == h && !processExists(o.PID)
}

func readOwner(f *os.File) (Owner, error) {
	var o Owner
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return o, err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return o, nil
	}
	err = json.Unmarshal(data, &o)
	return o, err
}

// writeOwner replaces the lock file's content with o's record, or empties it
// for nil.
func writeOwner(f *os.File, o *Owner) error {
	var data []byte
	if o != nil {
		var err error
		if data, err = json.Marshal(o); err != nil {
			return err
		}
		data = append(data, '\n')
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}
