// Package singlequery is the seed's attention (AsyncLiquidCell, SEED_MODEL.md step
// 5, first three bullets) as a stage of kind "attention", streamed over chunks.
//
// Computation, per batch row, with H = hidden_size:
//
//	x_j = e_j + Lin_τ(ts_j)          (time_embed, Linear(1,H))
//	q   = Lin_q(h)                    (one query per row; h = h0, zeros in the seed)
//	s_j = q·Lin_k(x_j)/√H             (the attention mask is ignored, as in the seed)
//	w   = softmax over the selected positions of the whole sequence
//	c   = Σ_j w_j·Lin_v(x_j)
//
// Keys and values are never materialised: q·Lin_k(x_j) = x_j·(W_kᵀq) + q·b_k and
// Σ w_j·Lin_v(x_j) = (Σ w_j x_j)·W_vᵀ + b_v·Σ w_j, so a chunk costs O(Sc·H + H²)
// per row instead of O(Sc·H²) (the same value up to float32 rounding). Only the
// values that enter the window cache are computed explicitly.
//
// Patterns (option "pattern"), by global position p (0-based over the whole
// sequence, n = positions seen so far):
//
//	all            every position
//	strided        p % stride == 0
//	window         p ≥ n − window (the last W positions)
//	global_window  p < global, or p ≥ n − window; a position in both counts once
//
// Streaming. The host cuts the sequence into chunks and carries the state:
// "offset" [1] (positions seen; float32, so at most 2^24), "m" [B], "l" [B],
// "acc" [B,H] (online softmax over the positions that stay selected for good:
// all, strided, and the global part; l = 0 means empty, so an all-zero state is
// a valid empty state), and for window/global_window a ring of the last W
// (score, value) pairs "win_s" [B,W], "win_v" [B,W,H], "win_n" [1] = min(offset,W).
// Position p lives in ring slot p mod W. Scores and values in the state were
// computed with the query and parameters of the chunk that saw them.
//
// Outputs after each chunk: "c" [B,H], attention over all positions seen so far
// (after the last chunk, the exact result, equal to the unchunked one up to
// rounding); "w" [B,Sc], this chunk's weights normalised with the state after
// this chunk (0 where unselected; exact when the sequence is a single chunk);
// "score" [B,Sc], raw scores s_j (−Inf where unselected).
//
// Backward is truncated to the chunk: the carried state is a constant input, so
// gradients reach e, timestamps, h and the parameters only through this chunk's
// positions. For a single chunk the gradients are exact. Output gradients "c",
// "w" and "score" may each be absent (zero). Backward releases the handle.
//
// Tensors passed in are never modified; with NeedGrad, Forward keeps references
// to e, timestamps and h under the handle (the stage contract allows it) and
// copies the parameters. Outputs and state are freshly allocated.
// The stage is safe for concurrent use; bad shapes, options or state are errors,
// never panics.
package singlequery
