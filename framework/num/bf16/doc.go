// Package bf16 multiplies matrices in bfloat16 with float32 accumulation, for
// the output head (model.head_precision = "bf16"): C = A·Bᵀ + bias, with A
// [R,K] the hidden states, B [N,K] the projection weight in PyTorch's
// nn.Linear layout and C [R,N] the logits in float32.
//
// The kernel is C with AVX512_BF16 intrinsics (vdpbf16ps: 32 bf16 products
// summed in pairs into 16 float32 lanes per instruction). It runs only where
// the CPU has AVX512_BF16 (Available); elsewhere Gemm returns ErrUnsupported
// and never falls back silently. Rounding float32 → bfloat16 is round to
// nearest even, as PyTorch's; NaN stays NaN.
//
// The weights are packed once per change (Pack: a few milliseconds for the
// seed's 32000×256 head) into panels of 16 columns × K/2 pairs, so that the
// kernel reads B sequentially; A is converted per call. GemmRef is the same
// arithmetic in Go (products of bf16-rounded inputs summed in float32 in the
// kernel's order up to pair-sums), the reference of the tests.
package bf16
