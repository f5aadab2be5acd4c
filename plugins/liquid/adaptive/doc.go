// Package adaptive is the seed's adaptive liquid neuron scanned per token: a
// stage of kind "liquid", name "adaptive", with the ports of the LTC scan
// (plugins/liquid/scan), so the host feeds every token's output to the head and
// carries the state across chunks.
//
// # The cell
//
// The seed's AdaptiveLiquidNeuron inside its ImprovedLiquidTimeCell (the ltc
// stage's dynamics, SEED_MODEL.md step 5), with the embedding of token t as the
// context the seed takes from its attention:
//
//	a        = Lin_m(Lin_c3(relu(Lin_c0(h))))
//	f(h; e)  = LN((−decay⊙h + (1+a)⊙(e·W_recᵀ) + bias) / (tau⊙σ(a)))
//	dh/dt    = σ(γ)·f(h; e_t)       integrated over [0, Δ_t] from h_{t−1}
//	y_t = h_t
//
// The seed integrates its cell once over t ∈ [0,1] for a whole sequence; here
// every token advances the state by its own elapsed time Δ_t, so the state
// carries the sequence's history and irregular timestamps matter. The seed's
// warping_layer (computed and discarded by the seed) is not declared.
//
// # Time and solver
//
// Δ_t as the scan's: dt_mode "timestamps" (default) Δ_t = dt_scale·(ts_t −
// ts_{t−1}) + dt_min (defaults 64 and 0.05), ts_{−1} = 0, carried as state
// "last_ts"; dt_mode "constant" Δ_t = dt_const. Any framework/odeint method
// integrates each token (options method, default euler, rtol, atol parsed by
// odeint.ParseOptions). One solve per token covers the B rows, in time
// rescaled to s ∈ [0,1] with dh/ds = Δ_b·σ(γ)·f. Fixed-step methods take
// ode_unfolds steps (default 1), or more when the token's largest Δ over the
// batch exceeds ode_unfolds·max_step (default 0.5; 0 turns it off); the
// adaptive methods (bosh3, dopri5) choose their own steps over [0,1], with
// their error norm over all B rows. Forward's Stats report nfe, accepted and
// rejected summed over the chunk.
//
// # The stage
//
// Dims: hidden_size H. Parameters, with the ltc stage's local names and the
// seed's initialisation: neuron.base_params.W_rec [H,H] (normal 0.1), .bias,
// .tau, .decay, .layer_norm.weight, .layer_norm.bias [H]; neuron.context_encoder.0
// and .3 and neuron.param_modulator .weight [H,H] and .bias [H] (PyTorch Linear
// init); stability_gate [1] (zero).
//
// Inputs "e" [B,Sc,H], "timestamps" [B,Sc] (optional in constant mode), "h"
// [B,H] (read only while no state is carried). State "h" [B,H] and "last_ts"
// [B]. Outputs "y" [B,Sc,H] and "h" [B,H]. e·W_recᵀ is computed for the whole
// chunk with one sgemm; each evaluation of f costs three [B,H]×[H,H] products
// and a LayerNorm. u is formed in float64, and a row of u whose largest |u|
// exceeds 1e15 is divided by it before the LayerNorm, which is invariant to that
// scale (up to its ε): a very negative a makes tau⊙σ(a) underflow and u
// overflow float32 (u ≈ 1e39 at a ≈ −90) while f stays bounded. Training the
// liquid-cells experiment reached a ≈ −84 at step 131 before this guard. With NeedGrad the handle keeps every token's solver tape.
//
// Backward(handle, {"y", "h"}), either absent meaning zero, reverses every
// token's solve (odeint.Solution.Backward, step sizes held constant as
// torchdiffeq's reference computes them), in reverse token order, and returns
// InputGrads "e" and "h" (dL/d of the chunk's initial state) and a gradient for
// every parameter. Gradients stop at the chunk boundary (truncated BPTT) and do
// not reach the timestamps.
//
// Parameters are copied at Forward, inputs are never modified, outputs and
// gradients are freshly allocated; Backward and Release free the handle; the
// stage is safe for concurrent use. Bad options, shapes or timestamps are
// errors naming them, never panics; a cancelled context stops the scan.
//
// # Speed
//
// bench_test.go at H = 256, B = 8, Sc = 512, on 2 cores under heavy load (load
// average 22): euler forward 221 µs/token, forward+backward 561; rk4
// forward+backward 1945 µs/token.
package adaptive
