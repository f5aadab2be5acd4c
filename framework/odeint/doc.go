// Package odeint integrates dy/dt = f(t, y) on a flat float32 state with
// torchdiffeq's semantics, as the seed's PyTorch reference
// (shared/reference/seed_torch.py: odeint, _dopri5, _rk4_38) does, and
// differentiates the computation it performed exactly (discretise, then
// optimise) for the ode and liquid stages.
//
// # Methods
//
// Fixed grid, one step per interval of ts: "euler"; "midpoint"
// y + dt·f(t+dt/2, y + dt/2·f(t, y)); "heun" (k1 = f(t, y), k2 = f(t+dt, y+dt·k1),
// y + dt/2·(k1+k2)); "rk4", torchdiffeq's 3/8 rule.
//
// Adaptive: "dopri5" exactly as _dopri5, and "bosh3" (Bogacki–Shampine 3(2)) with
// the same machinery at order 3:
//   - first step by Hairer's rule from f0 = f(t0, y0) and one extra evaluation
//     f(t0+h0, y0+h0·f0), both counted in Stats.NFE; h1 uses the exponent 1/order
//     (1/5 for dopri5, 1/3 for bosh3, as torchdiffeq's _select_initial_step(order−1));
//   - error ratio = RMS over the whole state of err/(atol + rtol·max(|y|,|ynew|)),
//     accepted if ≤ 1; next dt = dt·min(10, max(0.9·ratio^(−1/order), 1 if ratio < 1
//     else 0.2)), dt·10 if ratio == 0;
//   - FSAL: a step's first stage is the previous accepted step's last one (or f0);
//   - steps are not clipped to ts: each ts[i] (i ≥ 1) comes from the quartic dense
//     output (_interp_fit/_interp_eval) of the first accepted step whose end is
//     ≥ ts[i]; Ys[0] is a copy of y0.
//
// bosh3's dense output: torchdiffeq (rk_common.RKAdaptiveStepsizeODESolver) fits
// the same quartic _interp_fit for every RK solver, with its midpoint from the
// method's own weights; for bosh3 these are _BS_C_MID = [0, 1/2, 0, 0], i.e.
// ymid = y + dt/2·k2. We do the same (not a cubic Hermite), so bosh3 outputs match
// torchdiffeq. That midpoint is only second-order accurate, so bosh3's outputs
// inside a step are less accurate than its step ends.
//
// Numerics: time is float64; the state is float32. Stage inputs are formed as the
// reference does, y + dt·Σ a·k, accumulated left to right in float32 with the
// coefficients rounded to float32 (PyTorch rounds Python scalars to the tensor's
// dtype); norms and ratios are computed in float64. With an f that is bitwise the
// same as PyTorch's, dopri5 reproduces _dopri5's step sequence and NFE (see
// testdata/torch_ref.json). Note that the step after a small first step is set by
// round-off in the error estimate, so f's last bits can change the step sequence.
//
// # Backward
//
// With Options.Tape, Solve records every stage input Y_i and time t_i on the
// differentiable path: all stages of fixed steps; for adaptive methods the stages
// of accepted steps (rejected attempts and the initial-step probe are not on the
// path) plus f0. Solution.Backward reverses that computation with the step sizes
// and accept/reject decisions held constant (the reference computes them under
// no_grad), calling f.VJP(t_i, Y_i, g_i, gy_i) once per recorded evaluation, in
// reverse order. It returns dL/dy0; parameter gradients accumulate in f. The tape
// costs, in vectors of len(y0), 6 per accepted dopri5 step and 3 per bosh3 step
// (a step's first stage input is the previous step's last), and per fixed step
// as many as the method has stages (1 euler, 2 midpoint and heun, 4 rk4).
// Release frees it. Backward may be called again; gradients then add up in f.
//
// # Contract
//
// Solve never modifies or retains y0 and allocates every Ys[i] it fills; the
// caller owns them. f must not retain the slices it is given: they are the solver's buffers
// and the tape. Buffers are allocated once per Solve; steps allocate only outputs
// and tape. Long vector loops run in blocks of 16384 elements spread across cores
// with num.ParallelRows (reductions are summed per block, then in order, so results
// do not depend on the core count); f itself should parallelise its own work.
// Within a block, the float64 norms (error ratio, first-step norms) sum value i
// into partial sum i mod 8 and add the partial sums pairwise: the C kernels of the
// cgo build and the Go loops of the pure-Go build give the same bits.
//
// Shortcuts: with Options.LastOnly, Ys holds only the last time's solution (no
// copy of y0, no dense output at intermediate times of an adaptive method). A
// Func that is also a CombFunc forms the stage inputs the solver does not keep
// (no tape) itself, in the solver's order, and is evaluated there without the
// input going through memory; the solution has the same bits either way.
//
// Errors (never panics on bad input): unknown method (the message lists Methods),
// fewer than two times or times not strictly increasing or not finite, empty y0,
// negative tolerances, NaN/Inf in y0 or in the state (naming the step and time),
// step-size underflow, MaxSteps exceeded, Backward without a tape, with the wrong
// number of gradients or a gradient of the wrong length. Method "" means dopri5
// (torchdiffeq's default); zero tolerances mean 1e-3, zero MaxSteps 10000.
package odeint
