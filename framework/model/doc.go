// Package model is the seed model's pipeline on the host side: it owns the
// parameter store (PyTorch state_dict names), the token embedding and the output
// head, and runs a batch through the four stages (flows → ode → attention →
// liquid) chunk by chunk, handing each block of logits to a consumer as soon as it
// exists so that memory does not grow with the sequence.
//
// Stages are any stage.Stage: in-process implementations or plugin clients; the
// model does not know which. Run with Train set does truncated back-propagation
// per chunk: the attention's carried state is a constant input to each chunk, the
// liquid cell runs once after the last chunk (as the seed computes h once from
// the whole sequence), and every parameter gradient is added into Params.
//
// With a single chunk (ChunkSize 0 or ≥ S) Run computes exactly the seed's
// LiquidTextGenerationModel.forward and the gradient of a loss made of the
// consumer's logits gradient plus constant weights on h and log_det_jacobian,
// which is what the parity fixtures hold.
//
// A model whose stages are all per-token and carry their state can also run a
// few tokens at a time (NewStream, stream.go), for generation.
// The output head runs in float32 (Dims.HeadPrecision "fp32", the default and
// the parity reference) or, with "bf16", in bfloat16 with float32 accumulation
// through package bf16 on CPUs with AVX512_BF16 (New refuses it elsewhere).
// The head keeps a packed copy of its weight (the bf16 head W_o in bfloat16, the
// fp32 head [W_o | b_o] as one [V, H+1] matrix), rebuilt on every training Run,
// on the Run after one (an optimiser step came between) and after Init,
// LoadStateDict or Params.Changed; whoever writes parameter values otherwise
// calls Params.Changed. The bf16 head's backward products stay in float32.
package model
