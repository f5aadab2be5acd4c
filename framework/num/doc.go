// Package num holds the numeric kernels every stage shares: matrix products through
// BLAS, linear layers, LayerNorm, activations, with their backward passes.
//
// Contract: all arrays are row-major float32 slices. The caller allocates outputs
// and gradient buffers; kernels never retain their arguments. Backward kernels
// accumulate (+=) into parameter gradients and overwrite input gradients unless the
// doc says otherwise. Inputs are never modified. Kernels panic only on size
// mismatches, which are programmer errors: stages validate shapes first.
//
// BLAS: by default matrix products go to OpenBLAS through cgo (gonum's netlib
// binding, linked with -lopenblas). Without cgo (CGO_ENABLED=0) or with -tags
// noopenblas the package is pure Go (about 30x slower on matrix products).
// Backend reports which one is in use.
//
// Build files: each kernel that has a C form lives in a pair of files, name_cgo.go
// (//go:build cgo && !noopenblas) and name_purego.go (//go:build !cgo ||
// noopenblas), whose constraints are exact complements, so exactly one of the two
// is in every build. The pure-Go file holds the Go loop itself, as gonum's
// internal/asm/f32 does, never an empty stub. The one e^x is ExpFast in Go and
// ll_expf in expf.h for C. vecf.h has the same tanh, erf and e^x on 16-float GCC
// vectors for the C kernels of other packages (the ODE function, the coupling
// flow), each lane bit-identical to the scalar Go function.
package num
