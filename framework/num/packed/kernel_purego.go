//go:build !cgo || !amd64

package packed

const haveKernel = false

func gemmKernel(c []float32, ldc int, a []float32, lda, r int, p *Matrix, bias []float32, lo, hi int) {
	panic("packed: no kernel in this build (Available is false)")
}

func gemmKernelKB(c []float32, ldc int, a []float32, lda int, p *Matrix, bias []float32, lo, hi int) {
	panic("packed: no kernel in this build (Available is false)")
}

func gemmKernelTN(c []float32, ldc int, a []float32, lda int, p *Matrix, lo, hi, bc int) bool {
	panic("packed: no kernel in this build (Available is false)")
}
