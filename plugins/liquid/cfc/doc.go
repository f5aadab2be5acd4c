// Package cfc is a closed-form continuous-time cell (CfC; Hasani et al.,
// "Closed-form continuous-time neural networks", Nature Machine Intelligence
// 2022) scanned causally over the sequence: a stage of kind "liquid", name
// "cfc", with the same ports as the LTC scan (liquidlab/plugins/liquid/scan), so
// the host feeds every token's output to the head and carries the state across
// chunks.
//
// # The cell
//
// ncps's CfCCell in its default (gated) mode. Per token t of each sequence, with
// x_t = [e_t, h_{t−1}] (2H values):
//
//	z   = backbone(x_t)                       L dense layers of U units, lecun_tanh(v) = 1.7159·tanh(0.666·v); z = x_t when L = 0
//	ff1 = tanh(W_1·z + b_1)    ff2 = tanh(W_2·z + b_2)
//	t_a = W_a·z + b_a          t_b = W_b·z + b_b
//	t_interp = σ(−t_a·Δ_t + t_b)
//	h_t = ff1⊙(1 − t_interp) + t_interp⊙ff2,   y_t = h_t
//
// This is the paper's σ(−f·t) gate; ncps's code writes σ(t_a·Δ + t_b), the same
// family with t_a's sign flipped, so a checkpoint from ncps needs time_a negated.
// The cell has a closed form: there is no ODE to integrate, so the ODE solver
// options of the LTC scan do not apply to it (and it declares none).
//
// # Elapsed time
//
// dt_mode "timestamps" (default): Δ_t = dt_scale·(ts_t − ts_{t−1}) + dt_min,
// ts_{−1} = 0 before a sequence's first token, carried across chunks as state
// "last_ts". dt_mode "constant": Δ_t = dt_const. The defaults (dt_scale 64,
// dt_min 1) make a token with flat timestamps advance one time unit, ncps's
// default elapsed time, and an event boundary of the seed's timestamps (a jump
// of about 10/S) add 640/S more. Δ < 0 or non-finite is an error naming the token.
//
// # The stage
//
// Dims: hidden_size H. Options backbone_layers L (default 1, ncps's), backbone_units
// U (default 0 = H), dt_mode, dt_scale, dt_min, dt_const. Parameters, with ncps's
// local names (the host prefixes them): backbone.{2l}.weight [U, 2H or U] and
// .bias [U] for l < L (ncps's nn.Sequential puts an activation between linears);
// ff1, ff2, time_a, time_b .weight [H, U] (or [H, 2H] when L = 0) and .bias [H].
// Weights are initialised xavier-uniform as ncps does, biases as PyTorch's Linear.
//
// Inputs "e" [B,Sc,H], "timestamps" [B,Sc] (optional in constant mode), "h" [B,H]
// (the initial state, read only while no state is carried). State "h" [B,H] and
// "last_ts" [B]. Outputs "y" [B,Sc,H] and "h" [B,H]. An empty chunk passes the
// state through.
//
// Forward applies layer 0's e columns to the whole chunk with one sgemm, then
// scans the tokens with, per token, one [B,H]×[H,·] sgemm for layer 0's h
// columns, one per further backbone layer and one for the four heads stacked.
// With NeedGrad the handle keeps the chunk's activations: about
// (H + L·U + 4H + H) floats per token and row.
//
// Backward(handle, {"y", "h"}), either absent meaning zero, is backpropagation
// through time within the chunk: InputGrads "e" and "h" (dL/d of the chunk's
// initial state) and a gradient for every parameter. Gradients stop at the chunk
// boundary (truncated BPTT, as the host trains) and do not reach the timestamps.
//
// Parameters are copied at Forward, inputs are never modified, outputs and
// gradients are freshly allocated. Backward and Release free the handle; the
// stage is safe for concurrent use. Bad options, shapes or timestamps are errors
// naming them, never panics; a cancelled context stops the scan.
//
// # Speed
//
// BenchmarkForward*/BenchmarkForwardBackward* (bench_test.go) at H = U = 256,
// L = 1, measured on 2 shared cores under heavy load (load average 10, where the
// scan's B = 1 forward took 132 µs/token against its documented 6): B = 1,
// Sc = 4096 forward 467 µs/token, forward+backward 818; B = 8, Sc = 512: 61 and
// 128 µs/token. Per token the cell does about five times the scan's
// multiply-adds (W_h of layer 0 plus four heads of [H,U]).
package cfc
