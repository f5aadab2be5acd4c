//go:build !cgo || !amd64

package bf16

const haveKernel = false

func gemmKernel(c []float32, a []uint16, r int, p *Packed, bias []float32, lo, hi int) {
	panic("bf16: no kernel in this build (Available is false)")
}

func packKernel(p *Packed, b []float32, lo, hi int) { packGo(p, b, lo, hi) }
