// Package packed multiplies by a float32 weight matrix packed once, for the
// output head: C = A·Bᵀ + bias, with A [R,K] the hidden states, B [N,K] the
// projection weight in PyTorch's nn.Linear layout and C [R,N] the logits.
//
// Why not OpenBLAS's sgemm: OpenBLAS packs B again on every call (32 MB for
// the seed's 32000×256 head, once per block of logits) and picks its kernels
// by OPENBLAS_CORETYPE, which this project's machines set to Haswell (AVX2)
// although their CPUs have AVX-512. This kernel is C with AVX-512F
// intrinsics, chosen at run time where the CPU has AVX-512F (Available): B
// lives packed in panels of 16 columns × K (one zmm per k), written by Pack
// when the weight changes; a tile of 6 rows × 64 columns accumulates in 24
// registers over the whole of K, then adds the bias and stores, with
// streaming stores for whole aligned panels (the logits are far larger than
// the caches). The panels are split over the cores.
//
// Arithmetic: each output is one float32 accumulator, 0 + a₀b₀ + a₁b₁ + …
// in order of k, each step one fused multiply-add, then + bias — the order
// of OpenBLAS's AVX-512 (SkylakeX/Cooperlake) sgemm on the bias-augmented
// product [A|1]·[B|bias]ᵀ, which it matches bit for bit on the seed's head
// (measured with OpenBLAS 0.3.21; see docs/DESIGN.md). GemmRef is the same
// product in float64, the tests' reference within float32's error bound.
package packed
