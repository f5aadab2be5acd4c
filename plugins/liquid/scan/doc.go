// Package scan is a causal liquid time-constant scan over the sequence, a stage
// of kind "liquid" (name "scan"). It fixes the seed's two defects named in
// SEED_MODEL.md: every token's output now depends on all earlier tokens, and the
// liquid state is what the output is made of.
//
// # The cell
//
// A liquid time-constant neuron (Hasani et al., "Liquid Time-constant Networks",
// AAAI 2021) with the fused semi-implicit Euler step of their eq. 3 and
// vector-valued synapses, per token t of each sequence:
//
//	u_t = W_x·x_t + W_h·h_{t−1} + b          W_x, W_h [H,H] (input.weight, recurrent.weight), b [H] (input.bias)
//	f_t = σ(u_t)
//	τ   = softplus(tau_raw) + 1e-3           per unit (TauMin)
//	h_t = (h_{t−1} + Δ_t·f_t⊙A) / (1 + Δ_t·(1/τ + f_t))     A [H]
//	y_t = h_t
//
// For Δ_t ≥ 0 the denominator is ≥ 1, so the step is stable for any step size.
//
// # Step sizes
//
// dt_mode "timestamps" (default): Δ_t = dt_scale·(ts_t − ts_{t−1}) + dt_min, with
// ts the token timestamps in [0,1] and ts_{−1} = 0 before the first token of the
// sequence, carried across chunks as state "last_ts". dt_mode "constant":
// Δ_t = dt_const (default 1); dt_min + dt_scale/S_total would need the sequence
// length, which a chunk does not know. A Δ_t < 0 (timestamps going back by more
// than dt_min/dt_scale) or a non-finite one is an error naming the token.
//
// Why dt_min = 0.05 and dt_scale = 64. At initialisation τ = softplus(0) ≈ 0.69
// and f ≈ 0.5, so one step keeps r = 1/(1 + 1.94·Δ) of the state. The seed's
// timestamps (framework/data.Timestamps) are flat for 9 tokens in 10 and jump at
// the rest, so dt_min is what every token advances: r ≈ 0.91, a memory of about
// ten tokens that training lengthens by growing τ and lowering f (f → 0, τ → ∞
// keeps h). dt_scale maps the whole [0,1] to 64 time units: with ~1/S-spaced
// timestamps a token adds 64/S on average (0.016 at S = 4096, comparable to but
// below dt_min), and one of the seed's jumps (≈ 10/S) adds 640/S: Δ ≈ 0.21 at
// S = 4096 (r ≈ 0.71) or 1.3 at S = 512 (r ≈ 0.28), so an event boundary visibly
// resets the state without the timestamps drowning the per-token step.
//
// # Solver (option method)
//
// The step above is the default, method "fused": Hasani et al.'s semi-implicit
// Euler step with f taken at h_{t−1}, exactly as the scan has always computed
// it. Any framework/odeint method (euler, midpoint, heun, rk4, bosh3, dopri5;
// options method, rtol, atol parsed by odeint.ParseOptions) instead integrates
// the LTC ODE the step discretises,
//
//	dh/dt = −h/τ + f(h)⊙(A − h),   f(h) = σ(W_x·x_t + W_h·h + b),
//
// over [0, Δ_t] from h_{t−1} for every token, with f re-evaluated at every stage
// (as ncps's LTC does across its ode_unfolds), so the solver changes the
// recurrent dynamics and not only the embedding's. One odeint.Solve per token
// covers the B rows: time is rescaled to s ∈ [0,1] with dh/ds = Δ_b·(…) per
// row. Fixed-step methods take ode_unfolds equal steps (ncps's ode_unfolds,
// default 1), or more when the token's largest Δ over the batch exceeds
// ode_unfolds·max_step (default 0.5; 0 turns it off): explicit methods are
// unstable for Δ·(1/τ + f) beyond about 2 to 2.8, and the seed's event
// boundaries give Δ ≈ 5 at S = 128. Adaptive methods integrate [0,1] with their
// own steps; their error norm is over all B rows, so a row's steps depend on
// its batch (as for the ode stage). Forward's Stats report nfe, accepted and
// rejected summed over the chunk's tokens. Backward runs each token's solve in
// reverse through the steps it took (odeint.Solution.Backward). The CfC
// (plugins/liquid/cfc) has a closed form and no ODE to integrate.
//
// # The stage
//
// Dims: hidden_size H. Parameters (local names; the host prefixes them):
// input.weight [H,H] (linear_weight, fan-in H), input.bias [H] (linear_bias),
// recurrent.weight [H,H] (normal with std 1/√H, see StdRecurrent), tau_raw [H]
// (zeros), A [H] (ones). Options dt_mode, dt_scale, dt_min, dt_const, and the
// solver's method, ode_unfolds, max_step, rtol, atol.
//
// Inputs: "e" [B,Sc,H], the chunk's per-token embeddings; "timestamps" [B,Sc]
// (optional in constant mode); "h" [B,H], the initial state, read only while no
// state is carried. State "h" [B,H] and "last_ts" [B] carry over between chunks
// (both or neither). Outputs "y" [B,Sc,H] and "h" [B,H], the state after the
// chunk. An empty chunk (Sc = 0) passes the state through.
//
// Forward computes W_x·x + b for all B·Sc tokens with one sgemm, then scans t
// sequentially with one [B,H]×[H,H] sgemm per token (against a copy of W_hᵀ,
// since OpenBLAS runs the untransposed form faster at small B; see below).
// With NeedGrad it keeps f_t, every h_t, Δ_t, a copy of the parameters and a
// reference to input "e" (allowed by the stage contract).
//
// Backward(handle, {"y": dy, "h": dh}), either absent meaning zero, is
// backpropagation through time within the chunk. It returns InputGrads "e" and
// "h" (dL/d of the chunk's initial state, whether it came from input "h" or from
// the carried state) and ParamGrads for all five parameters. The carried state
// is a constant input: gradients stop at the chunk boundary (truncated BPTT, as
// the host trains chunk by chunk); the host may use the "h" gradient itself.
// No gradient flows to the timestamps.
//
// Parameters are copied at Forward, inputs are never modified, outputs and
// gradients are freshly allocated and share no memory (output "h" and state
// "h" are separate copies). Backward and Release free the handle. The stage is
// safe for concurrent use. Bad shapes, options or timestamps are errors that
// name the tensor or option, never panics; a cancelled context stops the scan.
//
// # Speed
//
// Measured on 2 cores of an AMD EPYC with OpenBLAS, H = 256 (bench_test.go):
// one token's W_h product at B = 1 takes 2.7 µs through sgemm against 14.7 µs
// for a Go loop (19.6 µs transposed), so useGoGemv is off; at B = 8, sgemm
// with W_h untransposed takes 10 µs against 27 µs transposed. A chunk of
// B = 1, Sc = 4096 runs forward in about 6 µs/token and forward+backward in about
// 16 µs/token; B = 8, Sc = 512 in about 4 and 12.5 µs/token.
//
// The ODE mode, B = 8, Sc = 512, forward+backward, measured on a heavily loaded
// machine (load average 22 on 2 cores; the fused scan took 111 µs/token in the
// same run): euler 253, rk4 496, dopri5 1043 µs/token, i.e. about 2.3×, 4.5×
// and 9.4× the fused step.
package scan
