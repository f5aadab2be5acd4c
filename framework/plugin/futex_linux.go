package plugin

import (
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const futexSupported = true

const (
	futexWaitOp = 0 // FUTEX_WAIT: shared between processes, so not _PRIVATE
	futexWakeOp = 1 // FUTEX_WAKE
)

// futexWait sleeps while *w == val, at most d (0: no bound); it may return
// early (a wake-up, a signal, *w changed).
func futexWait(w *atomic.Uint32, val uint32, d time.Duration) {
	var ts *syscall.Timespec
	if d > 0 {
		t := syscall.NsecToTimespec(int64(d))
		ts = &t
	}
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitOp, uintptr(val), uintptr(unsafe.Pointer(ts)), 0, 0)
}

// futexWake wakes the waiters on w.
func futexWake(w *atomic.Uint32) {
	syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakeOp, 1<<30, 0, 0, 0)
}
