// Package causal is a causal sliding-window single-head attention, a stage of
// kind "attention" (name "causal") whose per-token output feeds the model's
// head: unlike the seed's attention (package singlequery), which only builds a
// context for the liquid cell, every token here sees its predecessors.
//
// # Computation
//
// Per batch row, with H = hidden_size and W = option "window" (default 64), for
// every token t of the whole sequence (positions counted across chunks):
//
//	q_t, k_t, v_t = Lin_q(e_t), Lin_k(e_t), Lin_v(e_t)
//	S_t = {max(0, t−W+1), …, t}               (itself and the previous W−1 tokens)
//	w_ts = softmax_{s∈S_t}(q_t·k_s/√H)
//	a_t = Σ_{s∈S_t} w_ts·v_s
//	y_t = Lin_out(a_t) = a_t·W_outᵀ + b_out
//
// # The stage
//
// Dims: hidden_size H. Option window: an integer in 1..MaxWindow. Parameters
// (local names; the host prefixes them): query.weight [H,H], query.bias [H],
// key.weight, key.bias, value.weight, value.bias (linear_weight / linear_bias,
// fan-in H), out.weight [H,H] and out.bias [H] initialised to zeros, so at
// initialisation y = 0 and the stage is a no-op residual branch.
//
// Inputs: "e" [B,Sc,H]; "timestamps" [B,Sc] and "h" [B,H] are accepted and
// ignored (their shapes are checked when present, since a mismatch means the
// host is confused). Outputs: "y" [B,Sc,H] and "c" [B,H], the y of the chunk's
// last token.
//
// State, carried between chunks (all three or none; none on the first chunk):
// "k_cache" and "v_cache" [B,W,H], the keys and values of the last n positions
// seen, oldest first in rows 0..n−1 (later rows are ignored; Forward writes
// zeros there), and "n_cache" [1] = n ≤ W. A chunk attends to the cache plus its
// own positions, so any cut of a sequence into chunks gives the same y as one
// chunk, up to float32 rounding. Cached keys and values were computed with the
// parameters of the chunk that saw them.
//
// Forward computes q, k, v for all B·Sc tokens with one sgemm each, then runs
// the tokens in parallel (num.ParallelRows), each with two sgemv over its
// window of at most W keys and values; the output projection is one more sgemm.
// With NeedGrad it keeps q, the keys and values of the cache and the chunk, the
// softmax weights [B·Sc,W], a [B·Sc,H], a copy of the parameters and a
// reference to input "e" (the stage contract allows it); the buffers come from
// num.GetBuf and go back on Backward or Release.
//
// Backward(handle, {"y": dy, "c": dc}), either absent meaning zero (dc adds to
// the last token's dy), returns InputGrads "e" and ParamGrads for all eight
// parameters. Backpropagation is truncated at the chunk boundary: the carried
// cache is a constant input, so gradients reach e and the parameters only
// through this chunk's queries, keys, values and output projection; for a single
// chunk they are exact. Gradients of keys and values are gathered per key (the
// queries of the next W−1 tokens), so the parallel loop needs no atomics.
// Backward releases the handle; Release drops one (an unknown handle is not an
// error).
//
// Tensors passed in are never modified; outputs, state and gradients are freshly
// allocated and share no memory. The stage is safe for concurrent use. Bad
// shapes, options or state are errors naming the tensor or option, never panics.
// NaN or Inf values in inputs or cache are not checked and propagate.
//
// # Speed
//
// On 2 cores of an AMD EPYC with OpenBLAS, B = 1, Sc = 4096, H = 256, W = 64,
// forward and backward together take about 64 ms (16 µs/token,
// BenchmarkForwardBackward); 60% of it is the twelve [4096,256]×[256,256]
// sgemms of the four linear maps and their gradients, 20% the per-token sgemvs.
package causal
