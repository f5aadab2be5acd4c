// Package ltc is the seed's liquid time cell (SEED_MODEL.md step 5, "Liquid time
// cell"; classes LiquidNeuron, AdaptiveLiquidNeuron, ImprovedLiquidTimeCell) as a
// stage of kind "liquid".
//
// The stage integrates, for a context c [B,H] from the attention stage,
//
//	dh/dt = σ(γ)·LN((−decay⊙h + (1+a)⊙(c·W_recᵀ) + bias) / (tau⊙σ(a))),
//	a = Lin_m(Lin_c3(relu(Lin_c0(h))))
//
// from h(0) = input "h" [B,H] over t_span = linspace(0, 1, 5) (fixed, as the seed)
// with option "method" (default dopri5, rtol/atol 1e-3, torchdiffeq semantics via
// framework/odeint) and outputs "h" = h(1) [B,H], with Stats nfe/accepted/rejected.
// The seed's B×H×H tensor W_rec⊙(1+a) is never formed: scaling the rows of
// c·W_recᵀ gives the same value, and c·W_recᵀ is computed once per Forward since
// c is constant over the integration. Dropout is off (eval mode).
//
// The seed's warping_layer (Linear(H,H), Tanh, Linear(H,1), Softplus) is computed
// and its result discarded; this package does not evaluate it. Its parameters
// are declared NoGrad so checkpoints keep the seed's names, and Backward returns
// no gradient for them.
//
// The stage carries no state between chunks: h(0) is an input, so the host
// decides what to pass (the seed passes zeros, the same h the attention uses as
// its query).
//
// Backward(handle, {"h": dh}) is reverse mode through the solver's recorded
// steps (odeint.Solution.Backward: step sizes held constant, as the reference
// computes them without gradient) and returns InputGrads "c" and "h" (dL/dh(0))
// and ParamGrads for every parameter except warping_layer.*. An absent "h"
// gradient counts as zero. Backward and Release free the handle.
//
// Parameters are copied at Forward, inputs are never modified, outputs are
// freshly allocated. The stage is safe for concurrent use; a single
// ImprovedLiquidTimeCell is not. Bad shapes or options are errors, never panics.
package ltc
