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
// binding, linked with -lopenblas). Build with -tags noopenblas for pure Go (about
// 30x slower on matrix products). Backend reports which one is in use.
package num
