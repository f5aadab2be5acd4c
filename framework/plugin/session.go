package plugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// Session directories. Each Client's shared memory lives in a directory
// named liquidlab-<pid>-<start>-<random> under shmBase(), where pid is the
// host's process id and start its start time (clock ticks since boot, field 22
// of /proc/<pid>/stat), and the host holds an exclusive flock on its file
// owner.lock for as long as the session lives. A host that dies without
// cleaning up (SIGKILL of the whole process group, a closed terminal) leaves
// the directory behind; the next Launch removes every session whose owner is
// gone: no process with that pid, a zombie, or one with another start time
// (the pid was reused). A session whose owner runs, or whose lock is held, is
// never touched, which also covers a host in another pid namespace sharing
// /dev/shm. Directories of the older form liquidlab-<pid>-<random> are removed
// only when no process has that pid.

const (
	sessionPrefix = "liquidlab-"
	ownerLockName = "owner.lock"
)

// selfStart is this process's start time, read once; 0 when unknown.
var selfStart = sync.OnceValue(func() uint64 {
	start, _, _ := procStat(os.Getpid())
	return start
})

// session is a host's shared-memory directory and the lock that marks it live.
type session struct {
	dir  string
	lock *os.File
}

// newSession creates a session directory under base and locks it.
func newSession(base string) (*session, error) {
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%s%d-%d-", sessionPrefix, os.Getpid(), selfStart()))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ownerLockName), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		if err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &session{dir: dir, lock: f}, nil
}

// remove deletes the directory, then drops the lock.
func (s *session) remove() error {
	if s == nil {
		return nil
	}
	err := os.RemoveAll(s.dir)
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return err
}

// removeStaleSessions removes the session directories under base whose owner
// process is gone and returns their paths. Errors (another user's directory,
// a race with another host removing it) are skipped.
func removeStaleSessions(base string, log hclog.Logger) []string {
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), sessionPrefix) {
			continue
		}
		pid, start, ok := parseSessionName(e.Name())
		if !ok || ownerAlive(pid, start) {
			continue
		}
		path := filepath.Join(base, e.Name())
		if lockHeld(path) {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			continue
		}
		if log != nil {
			log.Warn("removed shared memory left behind by a process that is gone", "dir", path, "pid", pid)
		}
		removed = append(removed, path)
	}
	return removed
}

// parseSessionName reads pid and start time from liquidlab-<pid>-<start>-<random>
// (start 0 for the older liquidlab-<pid>-<random>); ok is false for any other name.
func parseSessionName(name string) (pid int, start uint64, ok bool) {
	f := strings.Split(strings.TrimPrefix(name, sessionPrefix), "-")
	var nums []uint64
	for _, s := range f {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		nums = append(nums, n)
	}
	switch {
	case len(nums) == 3 && nums[0] > 0 && nums[0] <= 1<<22:
		return int(nums[0]), nums[1], true
	case len(nums) == 2 && nums[0] > 0 && nums[0] <= 1<<22:
		return int(nums[0]), 0, true
	}
	return 0, 0, false
}

// ownerAlive reports whether the process that made a session may still run:
// a process with that pid exists, is not a zombie, and (when start is known on
// both sides) started at start.
func ownerAlive(pid int, start uint64) bool {
	st, zombie, ok := procStat(pid)
	if !ok {
		// No /proc entry: gone, unless /proc is missing and the pid answers.
		if _, err := os.Stat("/proc/self/stat"); err == nil {
			return false
		}
		err := syscall.Kill(pid, 0)
		return err == nil || errors.Is(err, syscall.EPERM)
	}
	if zombie {
		return false
	}
	return start == 0 || st == 0 || st == start
}

// lockHeld reports whether a live process holds the session's owner lock.
func lockHeld(dir string) bool {
	f, err := os.Open(filepath.Join(dir, ownerLockName))
	if err != nil {
		return false // no lock file: an older session, or one being created by a live owner (whose pid the name shows)
	}
	defer f.Close()
	return errors.Is(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB), syscall.EWOULDBLOCK)
}

// procStat returns a process's start time (clock ticks since boot) and whether
// it is a zombie, from /proc/<pid>/stat; ok is false when there is no entry.
func procStat(pid int) (start uint64, zombie bool, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, true
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 { // f[0] is field 3 (state), f[19] field 22 (starttime)
		return 0, false, true
	}
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return start, f[0] == "Z" || f[0] == "X", true
}
