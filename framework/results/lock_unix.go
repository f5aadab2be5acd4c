//go:build unix

package results

import (
	"errors"
	"os"
	"syscall"
)

// flockExclusive takes an exclusive flock without waiting.
func flockExclusive(f *os.File) error {
	return flockErr(syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB))
}

// flockProbe reports whether another open file holds an exclusive flock on
// f's file, taking and dropping a shared one.
func flockProbe(f *os.File) (held bool, err error) {
	switch err := flockErr(syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)); {
	case errors.Is(err, errLocked):
		return true, nil
	case err != nil:
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

func flockErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return errLocked
	case errors.Is(err, syscall.ENOLCK), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
		return errNoFlock
	}
	return err
}

// processExists reports whether a process with this id exists (signal 0
// checks without sending; EPERM means it exists under another user).
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
