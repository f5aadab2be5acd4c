// Package odefunc is the seed model's embedding ODE as a stage (kind "ode", name
// "odefunc"): steps 3–4 of SEED_MODEL.md, i.e. OptimizedLiquidEmbeddingMFR without
// the embedding and the flows, together with its ODEFunc.
//
// Forward, for z [B,S,L] and t_span [T] (strictly increasing, T ≥ 2):
//
//	u  = z·W_eᵀ + b;  if L == H: u = g·u + (1−g)·z     (g = transform_gate)
//	e0 = LN(u + bias_e)
//	y  solves dy/dt = f(y) from y(t_span[0]) = e0, over t_span
//	e  = y(t_span[T−1]) + 0.1·e0                        [B,S,H]
//
// with f the seed's ODEFunc applied to every token vector (Func), sharing the
// LayerNorm parameters of e0. The whole [B·S·H] tensor is one ODE state, so an
// adaptive method (dopri5, bosh3) picks one step size for all tokens, as the seed
// does; integrating a sequence in chunks therefore changes dopri5's result slightly.
// Stats: "nfe", "accepted", "rejected" of the solve. The stage carries no state.
//
// Parameters (local names; the host prefixes "liquid_embedding."): W_e.weight
// [H,L], W_e.bias [H], bias_e [H], transform_gate [] (always in the state_dict;
// NoGrad unless L == H), layer_norm.weight/bias [H] (aliases
// ode_func.layer_norm.weight/bias). Options: method (odeint.Methods(), default
// dopri5), rtol and atol (default 1e-3).
//
// Backward is reverse mode through the solve as it ran (odeint's tape): dopri5's
// step sizes and accept/reject decisions are constants, as in the reference, which
// computes them under no_grad. The layer_norm gradients sum both uses (e0 and f).
// Backward and Release free the handle; Backward frees it also when it fails.
//
// Ownership: Forward copies the parameters it needs for Backward and keeps a
// reference to the input z under the handle (allowed by the stage contract).
// Inputs and parameters are never modified. Bad shapes, options or times are
// errors naming the tensor or option; nothing panics on bad input.
//
// Numerics: f and its vector-Jacobian product are fused per token row (norm,
// activations, LayerNorm in a few passes over an L1-resident row), use the
// float32 tanh/erf/φ of num's fastmath (≈1e-6 absolute), run in parallel over
// fixed blocks of 64 rows, and reduce the LayerNorm parameter gradients per block
// in a fixed order, so results do not depend on GOMAXPROCS. Eval and VJP allocate
// nothing but num.ParallelRows's goroutines.
package odefunc
