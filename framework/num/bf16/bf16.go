package bf16

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"golang.org/x/sys/cpu"

	"liquidlab/framework/num"
)

// ErrUnsupported is returned where the CPU (or a build without cgo) has no
// AVX512_BF16 kernel.
var ErrUnsupported = errors.New("bf16: this CPU has no AVX512_BF16 (or liquidlab was built without cgo): use head_precision = \"fp32\"")

// Available reports whether Gemm can run here.
func Available() bool { return haveKernel && cpu.X86.HasAVX512BF16 && cpu.X86.HasAVX512F }

// CPU lists the vector features that matter here, for error messages: e.g.
// "AVX2, AVX-512F, no AVX512_BF16", plus a note when this build has no kernel.
func CPU() string {
	yes := func(ok bool, name string) string {
		if ok {
			return name
		}
		return "no " + name
	}
	s := yes(cpu.X86.HasAVX2, "AVX2") + ", " + yes(cpu.X86.HasAVX512F, "AVX-512F") + ", " + yes(cpu.X86.HasAVX512BF16, "AVX512_BF16")
	if runtime.GOARCH != "amd64" {
		s = "a " + runtime.GOARCH + " CPU (no x86 vector extensions)"
	}
	if !haveKernel {
		s += ", but this build has no bf16 kernel (liquidlab needs cgo on amd64 for it)"
	}
	return s
}

// Path names the kernel Gemm runs, for bench notes.
func Path() string {
	if Available() {
		return "bf16 AVX512_BF16 (vdpbf16ps, C intrinsics)"
	}
	return "unavailable"
}

// FromFloat32 rounds f to bfloat16, nearest even; NaN stays a (quiet) NaN.
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// ToFloat32 widens a bfloat16 exactly.
func ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

const panel = 16 // columns per packed panel: one zmm of float32 lanes

// Packed is B in the kernel's layout: for each panel of 16 rows of B (16
// output columns), K/2 groups of 16 pairs (B[n,2k], B[n,2k+1]). N is padded to
// a multiple of 16 and K to a multiple of 2 with zeros.
type Packed struct {
	N, K   int // the logical sizes
	Kp     int // K rounded up to even
	Panels int
	Data   []uint16
}

// Pack converts B [N,K] (row-major float32) into p, reusing p.Data's storage.
func Pack(p *Packed, b []float32, n, k int) error {
	if n < 1 || k < 1 || len(b) != n*k {
		return fmt.Errorf("bf16: pack %d×%d from %d values", n, k, len(b))
	}
	kp := k + k%2
	panels := (n + panel - 1) / panel
	size := panels * kp * panel
	if cap(p.Data) < size {
		p.Data = make([]uint16, size)
	}
	p.N, p.K, p.Kp, p.Panels, p.Data = n, k, kp, panels, p.Data[:size]
	num.ParallelRows(panels, kp*panel, func(lo, hi int) { packKernel(p, b, lo, hi) })
	return nil
}

// packGo is the Go form of the C packing loop (used without cgo; the tests
// check that both write the same bits).
func packGo(p *Packed, b []float32, lo, hi int) {
	n, k, kp := p.N, p.K, p.Kp
	for pi := lo; pi < hi; pi++ {
		dst := p.Data[pi*kp*panel : (pi+1)*kp*panel]
		for j := 0; j < panel; j++ {
			row := pi*panel + j
			for kk := 0; kk < kp/2; kk++ {
				var a, c uint16
				if row < n {
					a = FromFloat32(b[row*k+2*kk])
					if 2*kk+1 < k {
						c = FromFloat32(b[row*k+2*kk+1])
					}
				}
				dst[(kk*panel+j)*2] = a
				dst[(kk*panel+j)*2+1] = c
			}
		}
	}
}

// ConvertA rounds A [R,K] to bf16 rows of Kp (K padded to even) values.
func ConvertA(dst []uint16, a []float32, r, k int) []uint16 {
	kp := k + k%2
	if cap(dst) < r*kp {
		dst = make([]uint16, r*kp)
	}
	dst = dst[:r*kp]
	num.ParallelRows(r, k, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for j := 0; j < k; j++ {
				dst[i*kp+j] = FromFloat32(a[i*k+j])
			}
			if kp != k {
				dst[i*kp+k] = 0
			}
		}
	})
	return dst
}

// Gemm computes c [R,N] = A·Bᵀ + bias with A given as ConvertA's output (R
// rows of p.Kp bf16 values), B packed, bias [N] (nil: none), accumulating in
// float32. It splits the panels over the cores.
func Gemm(c []float32, a []uint16, r int, p *Packed, bias []float32) error {
	if !Available() {
		return ErrUnsupported
	}
	if err := check(c, a, r, p, bias); err != nil {
		return err
	}
	num.ParallelRows(p.Panels, r*p.Kp*panel, func(lo, hi int) { gemmKernel(c, a, r, p, bias, lo, hi) })
	return nil
}

func check(c []float32, a []uint16, r int, p *Packed, bias []float32) error {
	switch {
	case r < 1 || len(a) != r*p.Kp:
		return fmt.Errorf("bf16: A has %d values, want %d×%d", len(a), r, p.Kp)
	case len(c) != r*p.N:
		return fmt.Errorf("bf16: C has %d values, want %d×%d", len(c), r, p.N)
	case bias != nil && len(bias) != p.N:
		return fmt.Errorf("bf16: bias has %d values, want %d", len(bias), p.N)
	}
	return nil
}

// GemmRef is Gemm in Go: each output is the float32 sum over pairs of the
// float32 pair sums of bf16 products (the products of two bf16 values are
// exact in float32), plus the bias. It runs anywhere.
func GemmRef(c []float32, a []uint16, r int, p *Packed, bias []float32) error {
	if err := check(c, a, r, p, bias); err != nil {
		return err
	}
	for i := 0; i < r; i++ {
		for n := 0; n < p.N; n++ {
			pi, j := n/panel, n%panel
			blk := p.Data[pi*p.Kp*panel:]
			var acc float32
			for kk := 0; kk < p.Kp/2; kk++ {
				x0, x1 := ToFloat32(a[i*p.Kp+2*kk]), ToFloat32(a[i*p.Kp+2*kk+1])
				w0, w1 := ToFloat32(blk[(kk*panel+j)*2]), ToFloat32(blk[(kk*panel+j)*2+1])
				acc += x0*w0 + x1*w1
			}
			if bias != nil {
				acc += bias[n]
			}
			c[i*p.N+n] = acc
		}
	}
	return nil
}
