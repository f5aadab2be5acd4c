// Package realnvp is a flow stage (kind "flows", name "realnvp") whose output
// feeds the model: a stack of RealNVP affine couplings (Dinh et al., "Density
// estimation using Real NVP", 2017) with alternating halves, z taken from the
// transformed vector, clamped log-scales and the exact log-determinant. It is a
// drop-in for the seed-faithful plugins/flows/coupling (same ports: x → z, ldj),
// which stays as it is: there z = x[:L] lies in the half that no coupling
// transforms, so the flow count changes only the log-det; here every coupling
// reaches z, so num_flows changes the loss.
//
// # Function
//
// For each row x_0 of x [B,S,D] (H = D/2), couplings i = 0..K−1:
//
//	a, b = the two halves of x_i; coupling i transforms the first half when
//	       K−1−i is even (so the last one does), the second otherwise
//	[r, t] = Lin_2(relu(Lin_1(x_a)))             Lin_1: H→F, Lin_2: F→2H
//	s = C·tanh(r/C)                              log-scales clamped to (−C, C)
//	x_{i+1}[b] = x_i[b]⊙exp(s) + t,  x_{i+1}[a] = x_i[a]
//	ldj += Σ_j s_j                               exact: each coupling is triangular
//	z = x_K·W_zᵀ + b_z   (z_from = projection, default)   or   z = x_K[:L]   (first)
//
// The projection is not part of the flow and adds nothing to ldj (it reduces
// D to L; with z_from = first, the dropped D−L coordinates likewise add
// nothing). With K = 0, z is the projection (or the first L values) of x.
//
// # Configuration
//
// Dims: embedding_dim D (even, ≥ 2), latent_dim L (1..D), hidden_dim F (≥ 1),
// num_flows K (≥ 0). Options: scale_clamp C (> 0, default 2: one coupling scales
// a coordinate by at most e²), z_from (projection or first). Parameters (local
// names; the host prefixes them): flows.i.net.0.weight [F,H], .0.bias [F]
// (PyTorch Linear init), flows.i.net.2.weight [D,F], .2.bias [D] (zeros, as Glow
// does: each coupling starts as the identity, so every K starts from the same
// function and a deeper stack differs only by what it learns); out_proj.weight
// [L,D], out_proj.bias [L] with z_from = projection. Nothing is shared between
// couplings and no state is carried between chunks.
//
// # Calls
//
// Forward copies the parameters, reads x [B,S,D] and returns newly allocated z
// [B,S,L] and ldj [B,S]; with NeedGrad the handle keeps a reference to x and,
// per coupling, its output, hidden activations and log-scales ((D + F + H)
// floats per row and coupling). Backward(handle, {"z", "ldj"}) — either may be
// absent, meaning zero — returns the gradient of x and of every parameter and
// consumes the handle. Inputs are never modified. Bad dimensions, options,
// parameters or tensors are errors naming them, never panics.
//
// # Speed
//
// bench_test.go at the coupling's benchmark size (4096 rows, D = 512, F = 128,
// K = 4, L = 128), on 2 cores under heavy load (load average 18, when the
// coupling's own BenchmarkForward took 553 ms per 4096 rows): forward about
// 1.5 s, forward+backward about 1.35 s per 4096 rows; the numbers are load noise
// more than a measurement.
package realnvp
