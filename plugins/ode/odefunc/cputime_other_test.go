//go:build !unix

package odefunc

func cpuNanos() int64 { return 0 }
