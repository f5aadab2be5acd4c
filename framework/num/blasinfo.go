package num

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/cpu"
)

// BLASInfo says what runs the matrix products: the backend, OpenBLAS's core
// (the kernel set it chose or was told to use) and build configuration, the
// CPU's vector features, and a warning when OPENBLAS_CORETYPE forces an older
// kernel set than the CPU has.
type BLASInfo struct {
	Backend     string   `json:"backend"`
	Core        string   `json:"core,omitempty"`   // openblas_get_corename(), e.g. "Haswell", "SkylakeX", "Zen"
	Config      string   `json:"config,omitempty"` // openblas_get_config()
	CoreType    string   `json:"coretype_env,omitempty"`
	CPUFeatures []string `json:"cpu_features,omitempty"`
	Warning     string   `json:"warning,omitempty"`
}

// Info describes the BLAS of this process.
func Info() BLASInfo {
	core, config := openblasCore()
	info := BLASInfo{Backend: Backend(), Core: core, Config: config,
		CoreType: os.Getenv("OPENBLAS_CORETYPE"), CPUFeatures: CPUFeatures()}
	info.Warning = coretypeWarning(info.CoreType, info.Core, info.CPUFeatures)
	return info
}

// String is one line: backend, core, features, and the warning if any.
func (b BLASInfo) String() string {
	s := b.Backend
	if b.Core != "" {
		s += ", OpenBLAS core " + b.Core
		if b.CoreType != "" {
			s += " (OPENBLAS_CORETYPE=" + b.CoreType + ")"
		}
	}
	if len(b.CPUFeatures) > 0 {
		s += ", CPU " + strings.Join(b.CPUFeatures, " ")
	}
	return s
}

// CPUFeatures lists the vector features of this CPU that matter to the
// kernels (x86-64: avx2, fma, avx512f, avx512bw, avx512vl, avx512bf16; arm64:
// asimd, sve).
func CPUFeatures() []string {
	var out []string
	add := func(ok bool, name string) {
		if ok {
			out = append(out, name)
		}
	}
	switch runtime.GOARCH {
	case "amd64":
		add(cpu.X86.HasAVX2, "avx2")
		add(cpu.X86.HasFMA, "fma")
		add(cpu.X86.HasAVX512F, "avx512f")
		add(cpu.X86.HasAVX512BW, "avx512bw")
		add(cpu.X86.HasAVX512VL, "avx512vl")
		add(cpu.X86.HasAVX512BF16, "avx512bf16")
	case "arm64":
		add(cpu.ARM64.HasASIMD, "asimd")
		add(cpu.ARM64.HasSVE, "sve")
	}
	return out
}

// avx2Cores are OpenBLAS x86 cores whose kernels stop at AVX2 (or earlier).
var avx2Cores = []string{"haswell", "zen", "sandybridge", "nehalem", "core2", "penryn",
	"dunnington", "atom", "bulldozer", "piledriver", "steamroller", "excavator", "barcelona", "prescott"}

// coretypeWarning explains a forced kernel set that leaves AVX-512 unused.
func coretypeWarning(env, core string, feats []string) string {
	if env == "" {
		return ""
	}
	has512 := false
	for _, f := range feats {
		has512 = has512 || f == "avx512f"
	}
	name := strings.ToLower(core)
	if name == "" {
		name = strings.ToLower(env)
	}
	older := false
	for _, c := range avx2Cores {
		older = older || name == c
	}
	if !has512 || !older {
		return ""
	}
	return fmt.Sprintf("OPENBLAS_CORETYPE=%s forces OpenBLAS's %s (AVX2) kernels on a CPU with AVX-512; "+
		"unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for that command to let it pick its AVX-512 kernels", env, core)
}
