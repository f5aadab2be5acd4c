//go:build unix

package odefunc

import "syscall"

// cpuNanos is the process's user+system CPU time, which, unlike wall time, does
// not grow when other processes compete for the cores.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
