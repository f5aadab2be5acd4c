package num

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// allowedCPUs lists the CPUs in this process's affinity mask.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for c := 0; c < 8*int(unsafe.Sizeof(set)); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinThread pins the calling OS thread to one CPU.
func pinThread(cpu int) error { return pinThreadTo([]int{cpu}) }

// pinThreadTo lets the calling OS thread run on any of cpus.
func pinThreadTo(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return unix.SchedSetaffinity(0, &set)
}
