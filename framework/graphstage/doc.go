// Package graphstage turns a forward pass written as a gorgonia expression
// graph into a full stage.Stage: Forward runs the graph, Backward runs
// gorgonia's symbolic gradient of it, Release frees what Forward kept. A
// component author writes two functions and no backward pass:
//
//	var spec = graphstage.Spec{
//		Describe: func(cfg stage.Config) (*graphstage.Description, error) { … },
//		Build: func(g *gorgonia.ExprGraph, cfg stage.Config, in, params, state graphstage.Nodes) (out, next graphstage.Nodes, err error) { … },
//	}
//	func New() stage.Stage { return graphstage.New(spec) }
//
// and serves it in process (framework/registry) or as a plugin binary
// (plugin.Serve(kind, New())) like any other stage. examples/gatedrec is the
// component to copy.
//
// # Describe
//
// Description is a stage.Description plus Shapes, the shape of every input
// with the symbolic sizes B (batch) and S (chunk length) — the kit checks
// requests against them and against the declared parameter and state shapes,
// with errors that name the tensor — and NoGrad, the inputs that receive no
// gradient by design (timestamps, integration times). Shapes may also use Any
// (any size ≥ 1). Spec.Check, optional, validates input values a graph cannot
// refuse (odefunc-graph: integration times that do not increase).
//
// # Build
//
// Build receives one float32 input node per declared input, parameter and (on
// chunks after the first) carried state, with the request's shapes, and
// returns the declared outputs and, for a stateful component, the next state
// under the state names. Carried state is thus an extra input and an extra
// output; on the first chunk state is nil and the component starts from zeros
// or from an input (as the liquid stages start from input "h"). Gradients stop
// at the chunk boundary (truncated BPTT, as for the fused stages): the state
// inputs are not differentiated, except that Description.StateGrads can name
// an input that a carried state replaces on later chunks (the liquid stages'
// "h"), whose gradient is then that state's — dL/d of the chunk's initial
// state, as the fused liquid stages return it, so a host that adds it to the
// previous chunk's output gradient gets full backpropagation through time
// (plugins/liquid/scangraph's TestChunkedBackward). A state declared with −1
// after the batch dimension has a size that varies from chunk to chunk (a
// cache that grows with the sequence; plugins/attention/causalgraph's full
// pattern); graphs are keyed by the state shapes too. An input listed in
// Description.PerToken (shape [B,S,...]) reaches Build as S nodes [B,...]
// under TokenKey(name, t), copied apart on the way in; its gradient is
// assembled from theirs. A recurrence should take its per-token inputs so:
// gorgonia differentiates a Slice into a whole zero tensor holding one token,
// and adds S of them, O(S²) (plugins/liquid/scangraph). Helpers Linear and
// Tokens cover the common PyTorch-layout linear layer over [B,S,D] tensors.
//
// # Execution
//
// A graph is built and compiled once per configuration and input shapes (and
// first chunk or not) and cached (at most MaxGraphs per stage, oldest dropped);
// calls on one cached graph are serialised, so a stage is safe for concurrent
// use. A cached graph keeps the memory its ops write into (shared between
// values never alive at the same time, see below) and references to the last
// request's inputs and parameters, which it never reads again, so memory is
// bounded by MaxGraphs times the live set of one forward and one
// forward+backward of the largest shape. Inputs and parameters are bound to
// gorgonia tensors backed by the host's float32 slices (tensor.WithBacking, no copies); outputs and
// gradients are copied out into fresh tensors.
//
// Backward builds (once per shape) a second graph: the forward graph plus one
// output-gradient input dOut_o per output, the scalar cost Σ_o Σ out_o ⊙ dOut_o
// and gorgonia.Grad of it with respect to every differentiable input and
// parameter, whose values are the vector-Jacobian products the contract asks
// for; an input or parameter the outputs do not depend on gets a zero
// gradient. A forward pass with NeedGrad runs the part of that graph that does
// not depend on dOut (the forward pass and what it alone determines) and keeps
// its values for the handle, so its Backward runs only the rest: a training
// step costs one forward and one backward pass. One set of kept values per
// graph: when a second forward pass with NeedGrad of the same shapes (a
// chunked sequence), or another handle's backward pass, takes the graph
// first, a Backward reruns the forward part from the inputs (kept by reference
// under the handle, parameters and state copied, which is also what the
// forward pass ran on). TestKeptForward checks both paths bit for bit. With cgo (and without the noopenblas
// tag) gorgonia's matrix products go through OpenBLAS (gorgonia.Use(netlib)),
// as framework/num's do.
//
// Both graphs run on the kit's own plan (exec.go), not on a gorgonia VM: the
// nodes the wanted values depend on, children first, each op's Do called in
// turn on the caller's goroutine. The first run allocates as gorgonia's ops
// do, learns which outputs are views of which inputs, drops each value once
// nothing reads it, and assigns every op that can write into given memory
// (elementwise ops, matrix products, repeats; sliceIncr-like ops after
// zeroing) a buffer shared with values whose lifetimes do not overlap; later
// runs allocate nothing for those ops. Nothing is written in place into an
// argument, so Reshape's views stay correct (TestViews), and a later run gives
// bit for bit what a fresh stage's first run gives (TestLaterRunsMatchFirst).
// gorgonia's LispMachine, which the kit used first, clones every value into a
// dual value and allocates every output afresh: at the quickstart's size that
// was most of a graph's time, and at the seed's it kept every intermediate
// (odefunc-graph's forward at the seed's size: 14.8 s and a 9.7 GB peak then,
// 0.58 s and 0.25 GB now).
// Its TapeMachine writes in place into values it believes dead, which through
// a Reshape view overwrites a live tensor. Run stagetest.Run on every
// component all the same: its finite differences catch a wrong graph.
//
// The common float32 ops run on the kit's own kernels (fast.go), written
// straight into the step's memory: elementwise + − ⊙ ÷, abs, sign, exp, neg,
// square, sqrt, inv, invSqrt, cube, tanh, sigmoid, 2-D matrix products, sums
// along one axis, concatenation and slices; other ops, dtypes, views and
// broadcasting shapes go to gorgonia's Do. exp, tanh and sigmoid are package
// num's (within 3e-7 of the exact functions; exp saturates below −86 and
// above 88).
//
// Panics inside Describe, Build or an op while the graph runs (gorgonia's
// Must panics on shape errors) are recovered and returned as errors naming
// the component.
//
// # Pitfalls of gorgonia v0.9.18 met writing the graph components
//
// Each was caught by stagetest's finite differences or by a comparison with
// the fused stage, never by gorgonia; test at realistic sizes (the quickstart's
// hidden size and a few dozen tokens), as the components here do.
//
//   - Tensor constants: gorgonia merges constant nodes whose printed values
//     agree and prints long tensors abbreviated, so different constants can
//     become one node. Use Const (a named, value-bound node) for tensors.
//   - Concatenating many [B,H] pieces along axis 1 gives wrong gradients once
//     the result is longer than about 256 per row; concatenate [B,1,H] pieces
//     (Reshape first) instead, as examples/gatedrec does.
//   - Rectify's gradient and slices of a column range of a matrix panic on
//     some shapes; plugins/flows/couplinggraph writes ReLU as (x+|x|)/2 and
//     splits halves through a [N,2,H] reshape.
//   - A slice of a [1,S] matrix at one column comes out as a scalar value; read
//     a column with a product by a one-hot Const (plugins/liquid/scangraph).
package graphstage
