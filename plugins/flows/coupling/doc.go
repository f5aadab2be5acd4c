// Package coupling is the seed's flow dimensionality reducer
// (OptimizedFlowDimensionalityReduction with SharedAffineCouplingLayer) as a
// stage.Stage of kind "flows", name "coupling", for direct in-process calls.
//
// # Function
//
// For each row emb of x [B,S,D] (H = D/2):
//
//	x0 = g_p·(emb·Wᵀ + b) + (1−g_p)·emb                    initial_proj, proj_gate
//	for i = 0..K−1:  x1, x2 = x[:H], x[H:]
//	    s = tanh(Lin_s2(relu(Lin_s1(x1))))·a_s[i],  t = Lin_t2(relu(Lin_t1(x1)))·a_t[i]
//	    x  = [x1, g_i·(x2⊙eˢ + t) + (1−g_i)·x2]  (+ 0.1·x0 when i is odd)
//	    ldj += Σ_j g_i·s_j                       (exact_logdet=false, the seed)
//	    ldj += Σ_j log|g_i·e^{s_j} + 1 − g_i|   (exact_logdet=true)
//	z = x[:L]  (+ 0.1·x0[:L] when L = H)
//
// The seed's Σ g·s is the log-determinant of the gated coupling only for
// g ∈ {0,1}; exact_logdet gives the true one for any gate. Neither counts the
// residual nor the initial projection, as in the seed.
//
// # Configuration
//
// Dims: embedding_dim D (even, ≥ 2), latent_dim L (1..D), hidden_dim F (≥ 1),
// num_flows K (≥ 0). Options: share_params (bool, default true), exact_logdet
// (bool, default false). Errors name the offending dimension, option, parameter
// or tensor; bad input never panics.
//
// # Parameters
//
// Local names (the host prefixes "liquid_embedding.flow_reducer."):
// initial_proj.weight [D,D], initial_proj.bias [D], proj_gate []; per layer i
// flows.i.scale_adapter [1], flows.i.translate_adapter [1], flows.i.gate [];
// flows.i.{scale,translate}_net.0.weight [F,H], .0.bias [F], .2.weight [H,F],
// .2.bias [H]. With share_params the nets are declared once under flows.0 with
// the other layers' names as Aliases, and receive one gradient summed over the
// layers.
//
// # Calls
//
// Forward reads params and x [B,S,D], and returns newly allocated z [B,S,L] and
// ldj [B,S]; it carries no state between chunks. With NeedGrad it keeps a
// reference to x and its activations under the handle, about
// (K+1)·D + K·(2F+2H) floats per row (5632 floats = 22 KiB for the seed's
// D=512, F=128, K=4). Backward(handle, {"z","ldj"}) — either gradient may be
// absent, meaning zero — returns the gradient of x and of every declared
// parameter; it consumes the handle (also when it returns an error). Release
// drops a handle. Inputs and parameters are never modified.
//
// # Inverse
//
// Transform returns the un-truncated output y = x_K [..., D] of the coupling
// stack. InvertCoupling recovers x0 from y alone: the first half only picks up
// residuals, so x0[:H] = y[:H]/(1 + 0.1·⌊K/2⌋), after which every layer's s and
// t are known and y[H:] is an elementwise affine function of x0[H:].
// InvertProjection solves g_p·W + (1−g_p)·I (LU in float64) for emb; Inverse
// chains the two. z alone cannot be inverted (it drops D−L dimensions).
//
// # Numerics
//
// Matrix products run on whole [B·S, ·] matrices through num.Gemm (OpenBLAS);
// elementwise loops use float32 Cephes exp/tanh and run over fixed chunks of rows
// in parallel, with reductions summed in chunk order, so results do not depend
// on the number of cores.
package coupling
