package results

import (
	"bufio"
	"bytes"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes the computer a run used.
type Machine struct {
	Host      string  `json:"host"`
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemGB     float64 `json:"mem_gb"`
	GoVersion string  `json:"go_version"`
	OS        string  `json:"os"`
	// BLAS is the backend string given to DescribeMachine (it is also
	// RunInfo.BLAS; Begin fills whichever of the two is empty).
	BLAS string `json:"blas,omitempty"`
	// BLASCore is the kernel set OpenBLAS runs (openblas_get_corename), and
	// BLASConfig its build line (openblas_get_config); CPUFeatures lists the
	// CPU's vector extensions; BLASWarning says when OPENBLAS_CORETYPE forces
	// an older kernel set than the CPU has. Empty when not known.
	BLASCore    string   `json:"blas_core,omitempty"`
	BLASConfig  string   `json:"blas_config,omitempty"`
	CoreTypeEnv string   `json:"openblas_coretype,omitempty"`
	CPUFeatures []string `json:"cpu_features,omitempty"`
	BLASWarning string   `json:"blas_warning,omitempty"`
}

// String is a one-line description for table notes.
func (m Machine) String() string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	add(m.Host)
	add(m.CPU)
	if m.Cores > 0 {
		add(strconv.Itoa(m.Cores) + " cores")
	}
	if m.MemGB > 0 {
		add(strconv.FormatFloat(m.MemGB, 'f', 1, 64) + " GB")
	}
	add(m.OS)
	add(m.GoVersion)
	if m.BLAS != "" {
		add("BLAS " + m.BLAS)
	}
	if m.BLASCore != "" {
		core := "OpenBLAS core " + m.BLASCore
		if m.CoreTypeEnv != "" {
			core += " (forced: OPENBLAS_CORETYPE=" + m.CoreTypeEnv + ")"
		}
		add(core)
	}
	if len(m.CPUFeatures) > 0 {
		add("CPU " + strings.Join(m.CPUFeatures, " "))
	}
	return strings.Join(parts, ", ")
}

// DescribeMachine describes this computer: host name, CPU model (from
// /proc/cpuinfo, else the architecture), logical cores, total memory in GiB
// (from /proc/meminfo, else 0), Go version and OS/arch, and the BLAS backend
// string given by the caller. Anything it cannot find is left empty.
func DescribeMachine(blas string) Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		BLAS:      blas,
	}
	m.Host, _ = os.Hostname()
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		m.CPU = parseCPUInfo(f)
		f.Close()
	}
	if m.CPU == "" {
		m.CPU = runtime.GOARCH
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemGB = parseMemInfo(f)
		f.Close()
	}
	return m
}

// parseCPUInfo returns the first CPU model name in /proc/cpuinfo format
// ("model name" on x86, "Model" or "Hardware" on some ARM kernels).
func parseCPUInfo(r io.Reader) string {
	var fallback string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			if val != "" {
				return val
			}
		case "Model", "Hardware":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}

// parseMemInfo returns MemTotal in GiB, rounded to 0.1, or 0.
func parseMemInfo(r io.Reader) float64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil || kb < 0 {
			return 0
		}
		return math.Round(kb/(1<<20)*10) / 10
	}
	return 0
}

// GitCommit returns the HEAD commit of the repository containing dir and
// whether tracked files differ from it (untracked files, such as a results
// tree, do not count). Outside a repository, or without git, it returns "",
// false. It only reads: git runs with --no-optional-locks, so it never
// refreshes the index.
func GitCommit(dir string) (commit string, dirty bool) {
	out, err := exec.Command("git", "--no-optional-locks", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", false
	}
	commit = strings.TrimSpace(string(out))
	st, err := exec.Command("git", "--no-optional-locks", "-C", dir,
		"status", "--porcelain", "--untracked-files=no").Output()
	if err != nil {
		return commit, false
	}
	return commit, len(bytes.TrimSpace(st)) > 0
}
