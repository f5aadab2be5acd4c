// Function multiversioning for the C kernels of package num and of the
// packages that include its headers (#cgo CFLAGS: -I<path to framework/num>).
// On x86-64, gcc builds an LL_CLONES function for AVX-512F, AVX2 and the
// baseline and picks one when the program loads (LL_CLONES_AVX2: AVX2 and the
// baseline); LL_X86 guards hand-written intrinsics. Elsewhere (arm64, …) each
// function is built once for the baseline, which gcc vectorises with the
// target's own vector unit (NEON on arm64), and the intrinsic paths are left out.

#ifndef LIQUIDLAB_NUM_SIMD_H
#define LIQUIDLAB_NUM_SIMD_H

#if defined(__x86_64__)
#define LL_X86 1
#define LL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define LL_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define LL_X86 0
#define LL_CLONES
#define LL_CLONES_AVX2
#endif

#endif
