// Package causal is per-token causal attention, a stage of kind "attention"
// (name "causal") whose per-token output y feeds the model's head: unlike the
// seed's attention (package singlequery), which only builds a context for the
// liquid cell, every token here sees its predecessors. Option "pattern" says
// which; option "heads" splits the hidden size into heads. The default (pattern
// window, window 64, one head) is the stage's original behaviour, unchanged.
//
// # Computation
//
// Per batch row, H = hidden_size, n = heads, d = H/n. q, k, v = Lin_q(e),
// Lin_k(e), Lin_v(e) (nn.Linear: e·Wᵀ + b), each split into n heads of d
// consecutive columns. For each head and token t (positions counted over the
// whole sequence, across chunks, from 0) with allowed set A(t):
//
//	w_ts = softmax_{s∈A(t)}(q_t·k_s/√d)      a_t = Σ_{s∈A(t)} w_ts·v_s
//	y_t  = Lin_out(concat_heads(a_t))
//
//	pattern  A(t)                                        options
//	full     {0…t}                                       —
//	window   {t−W+1…t} ∩ [0,t]                           window W
//	dilated  {t−j·r : j = 0…W−1, ≥ 0}                    window W, dilation r
//	global   {s ≤ t : s < G} ∪ window(W)                 window W, global G
//	bigbird  s ≤ t in the key blocks of t's block        block, window_blocks, global_blocks,
//	                                                     random_blocks, random_reach, seed
//	lsh      union over rounds of t's earlier bucket-    n_hashes, buckets, chunk, seed
//	         mates in its bucket-chunk and the previous
//	linear   a_t = Σ_{s≤t}(φ(q_t)·φ(k_s))v_s / Σ_{s≤t}φ(q_t)·φ(k_s), φ = elu+1; no softmax, no √d
//
// These are the formulas of ../shared/FIXTURES.md for full, window, dilated,
// global and linear. bigbird: blocks of `block` tokens; query block i sees
// key blocks {j < global_blocks} ∪ {i−window_blocks+1…i} ∪ R(i), R(i) being
// random_blocks blocks drawn (from seed and i alone) among the random_reach
// blocks before the window that are not global; within block i, causally.
// lsh (Reformer): keys are the queries normalised per head (key.* parameters
// are not declared), each round hashes by a random rotation, and a token
// sees earlier tokens of its bucket within its bucket-chunk and the previous
// one, itself only when nothing else (lshPlanner has the details); the
// softmax is over the union, so the result equals dense attention under that
// mask.
//
// # The stage
//
// Parameters (local names): query.weight [H,H], query.bias [H], key.weight,
// key.bias (not for lsh), value.weight, value.bias (linear_weight / linear_bias,
// fan-in H), out.weight [H,H] and out.bias [H] initialised to zeros, so at
// initialisation y = 0 and the stage is a no-op residual branch.
//
// Inputs: "e" [B,Sc,H]; "timestamps" [B,Sc] and "h" [B,H] are accepted and
// ignored (their shapes are checked when present). Outputs: "y" [B,Sc,H] and
// "c" [B,H], the y of the chunk's last token. Forward's Stats: "flops" and
// "flops_backward" (the FLOPs the kernels spend, projections included) and
// "keys_per_query".
//
// # Streaming state
//
// All of a pattern's state tensors, or none (first chunk). Any cut of a
// sequence into chunks gives the unchunked outputs, up to float32 rounding.
//
//   - window: "k_cache", "v_cache" [B,W,H], the last n ≤ W keys and values,
//     oldest first (rows past n are zero), "n_cache" [1] = n (as before).
//   - dilated, global, bigbird, full, lsh: "k_cache", "v_cache" [B,R,H],
//     "n_cache" [1] and "pos" [1], the tokens seen. The cache holds positions
//     [0,P) ∪ [base,pos), P = min(prefix, base), where prefix and base follow
//     from the options and pos: dilated keeps the last (W−1)·r positions,
//     global the first G and the last W−1, bigbird the global blocks and the
//     blocks from the window's start back random_reach more; R is that bound.
//     full and lsh keep every position: R = n grows with the sequence
//     (declared as −1, like the batch), which is full attention's cost; the lsh
//     cache holds normalised keys, and the hash ranks are recomputed from them.
//   - linear: "z_sum" [B,H,d] (per head Σφ(k)vᵀ, d×d) and "k_sum" [B,H]
//     (per head Σφ(k)).
//
// Backpropagation is truncated at the chunk boundary: the carried state is a
// constant input; for a single chunk gradients are exact.
//
// # Kernels
//
// No S×S matrix is ever stored. The positional patterns (full, window,
// dilated, global, bigbird) run a blocked kernel: per batch row, head and
// block of up to 64 queries, one sgemm for the scores against the union of the
// block's keys (dilated takes one residue class mod r at a time, so its keys
// are one strided span read in place), the mask, a row softmax and one sgemm
// for the weighted values; forward keeps only each row's log-sum-exp, and
// backward recomputes the block's scores from it (FlashAttention's scheme),
// then dQ, dK, dV by sgemm. lsh works in sorted order: per round, the rows
// of q, k, v its blocks use are gathered once (in position order) into arrays
// sorted by bucket, so every bucket-chunk's queries and the keys of it and the
// previous chunk are contiguous rows multiplied in place by sgemm, and the
// key and value gradients accumulate sorted and are scattered once per round;
// a pair that is a candidate in m rounds has each occurrence's score lowered
// by log m, and the rounds merge by an online softmax, which is exactly the
// softmax over the union (lshblocked.go). linear runs blocks of 64 tokens: the masked
// [64,64] kernel matrix inside a block and the running sums across blocks,
// all by sgemm; backward runs the blocks in reverse with the reverse sums.
// Work is split over batch rows × heads, and over interleaved query blocks
// when there are fewer of those than cores (with private dK, dV buffers).
//
// Tensors passed in are never modified; outputs, state and gradients are freshly
// allocated and share no memory. The stage is safe for concurrent use. Bad
// shapes, options or state are errors naming the tensor or option, never panics.
// NaN or Inf values in inputs or cache are not checked and propagate.
//
// # Speed
//
// BenchmarkPattern/<pattern>/<S> measures one chunk forward + backward at
// B = 1, H = 256, 4 heads, window 256 and reports ns/token, FLOPs/token and
// GFLOP/s; GrowthExponent turns times at several lengths into the slope of log
// time against log length. experiments/attention-cost.toml is the same curve
// through the whole model with liquidlab bench.
package causal
