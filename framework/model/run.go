package model

import (
	"context"
	"fmt"

	"liquidlab/framework/num/bf16"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Batch is B sequences of S tokens.
type Batch struct {
	B, S       int
	IDs        []int64   // B×S token ids
	Timestamps []float32 // B×S, the liquid cell's event times
	TSpan      []float32 // output times of the embedding ODE (the seed: linspace(0,1,5))
	H0         []float32 // B×H initial liquid state; nil means zeros
}

func (b *Batch) validate(vocab, h int) error {
	if b.B < 1 || b.S < 1 {
		return fmt.Errorf("batch of %d×%d tokens: need at least one", b.B, b.S)
	}
	if len(b.IDs) != b.B*b.S || len(b.Timestamps) != b.B*b.S {
		return fmt.Errorf("batch %d×%d: %d ids and %d timestamps", b.B, b.S, len(b.IDs), len(b.Timestamps))
	}
	if b.H0 != nil && len(b.H0) != b.B*h {
		return fmt.Errorf("h0 has %d values, want %d×%d", len(b.H0), b.B, h)
	}
	if len(b.TSpan) < 2 {
		return fmt.Errorf("t_span has %d times, need at least 2", len(b.TSpan))
	}
	for i, id := range b.IDs {
		if id < 0 || id >= int64(vocab) {
			return fmt.Errorf("token id %d at position %d is outside the vocabulary of %d", id, i, vocab)
		}
	}
	return nil
}

// Block is a block of rows of logits handed to a consumer. Its slices are valid
// only during the call.
type Block struct {
	Rows   int
	Index  []int     // flat position b·S+s of each row
	Logits []float32 // Rows×V
	// DLogits is Rows×V when training, and it is Logits itself: the
	// consumer overwrites every element of a row with dLoss/dlogits (zeros
	// where it has no loss, as CrossEntropy does for ignored labels) after
	// it has read what it needs of that row's logits. In place, the head
	// needs no second Rows×V buffer (131 MB at the seed's 1024 × 32000),
	// and the gradient's writes find their cache lines already loaded.
	DLogits []float32
}

// Consumer receives every block of logits once, in order.
type Consumer func(*Block) error

// StepSeconds prefixes the Result.Stats keys that hold a run's wall time by
// step, summed over chunks: the labels of batchRun.labelled (the stages'
// Forward by kind, "embed", "head" with its loss and backward,
// "backward-<kind>"). A plugin stage's time is its whole call.
const StepSeconds = "host.step_seconds."

// DefaultHeadRows is the block of logits the head computes, hands to the
// consumer and (when training) back-propagates at a time: V floats per row,
// 131 MB at V = 32000. Larger blocks amortise the packing of the output
// matrix in each product: the seed's training step at 4096 tokens took
// 1.09–1.14 s with blocks of 512 rows and 1.01 s with 1024 (AVX-512
// kernels, in process, A B A B); 2048 gained ~5 % more forward, nothing in
// training, for 0.12–0.3 GB. A larger vocabulary gets fewer rows
// (HeadRowsFor), and no block is longer than the chunk.
const DefaultHeadRows = 1024

// headBlockBytes caps a default block of logits (training overwrites them
// with dlogits).
const headBlockBytes = 128 << 20

// HeadRowsFor is the default block of logits for a vocabulary of V:
// DefaultHeadRows rows, fewer when a block would pass 128 MiB (at
// V = 32000 it is 1024 rows, 125 MiB; at V = 256000, 131 rows), at least 64.
func HeadRowsFor(vocab int) int {
	return max(64, min(DefaultHeadRows, headBlockBytes/(4*max(vocab, 1))))
}

// RunOptions control Run.
type RunOptions struct {
	ChunkSize int  // tokens per chunk along S; 0 = the whole sequence
	HeadRows  int  // rows of logits per block; 0 = HeadRowsFor(V)
	Train     bool // compute parameter gradients (added into Params' Grad)
	// DH is dLoss/dh for the final liquid state (B×H), called when Train; nil = 0.
	DH func(h, dh []float32)
	// DLDJ is dLoss/d log_det_jacobian, the same for every token (the parity loss
	// uses 0.001/(B·S)); only with Train.
	DLDJ float32
	// KeepAttn keeps the attention weights of every position (B×S).
	KeepAttn bool
	// Rows, in inference (not Train), marks the positions (B×S, row-major)
	// whose logits the consumer reads. The head then computes only the blocks
	// that hold a marked row, and the per-token attention stage gets the marks
	// as input "rows" (stage.PortRows) and may skip the rows nobody reads —
	// the attention output feeds only the head. Other rows of a block the
	// consumer sees may come from skipped outputs: read only the marked rows.
	// The stages' carried state is the same with or without Rows. nil = all.
	Rows []bool
}

// Result holds what Run returns besides the logits.
type Result struct {
	H     []float32          // B×H final liquid state
	LDJ   []float32          // B×S log-det-Jacobian of the flows
	Attn  []float32          // B×S attention weights (KeepAttn; exact for one chunk)
	Stats map[string]float64 // "<kind>.<stat>", summed over chunks; StepSeconds+step: wall time by step
	// HeadS is the wall time of the output head's matrix products (the
	// logits; with Train also dLoss/d(head input) and the head's gradient),
	// without the consumer. HeadBackS is the backward part of it.
	HeadS, HeadBackS float64
}

// scratch holds Run's large buffers from one call to the next: allocating them
// afresh (100+ MB at the seed's size) cost tens of thousands of page faults per
// batch once the Go runtime had returned the previous ones to the OS.
type scratch struct {
	x, ts, hin, u, logits, wob, hinAug, dwob, de []float32
	hinBF                                        []uint16
	outs                                         map[string]*outArena // by stage kind and method (outbuf.go)
}

// DropScratch frees the buffers Run keeps between batches (the benchmark
// measures each configuration's memory from a clean start).
func (m *Model) DropScratch() {
	m.scratch, m.wobOK = scratch{}, false
	// The backward's packed copies are rebuilt by every training Run.
	m.pkT, m.pkE = packed.Matrix{}, packed.Matrix{}
}

// buf returns (*p)[:n], reallocating when it is too small. Contents are stale.
func (m *Model) buf(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// Run sends a batch through the model chunk by chunk. A Model runs one batch
// at a time (it reuses its buffers); use one Model per goroutine.
//
// Each chunk is a fixed sequence of steps (chunk.go, backward.go): embed, the
// forward stages (flows, ode, attention, a per-token liquid stage), the head
// block by block, the seed's liquid cell after the last chunk, and with Train the
// backward stages in reverse. Every handle a stage returns is held by the chunk
// and either taken by its Backward or released once when the chunk ends.
func (m *Model) Run(ctx context.Context, b *Batch, opt RunOptions, consume Consumer) (*Result, error) {
	if err := b.validate(m.Dims.Vocab, m.Dims.H); err != nil {
		return nil, err
	}
	if opt.Rows != nil && (opt.Train || len(opt.Rows) != b.B*b.S) {
		return nil, fmt.Errorf("RunOptions.Rows: %d marks for %d×%d positions (Train %t): want B·S marks, in inference only", len(opt.Rows), b.B, b.S, opt.Train)
	}
	r, err := m.newBatchRun(ctx, b, opt, consume)
	if err != nil {
		return nil, err
	}
	for s0 := 0; s0 < b.S; s0 += r.chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := r.runChunk(s0); err != nil {
			return nil, err
		}
	}
	if opt.Train {
		r.addHeadGrad()
		// The caller steps the optimiser next: the packed weights are stale.
		m.packedOK, m.wobOK, m.pkOK = false, false, false
	}
	return r.res, nil
}

// batchRun is one call of Run: the batch, its options, what carries from one
// chunk to the next (the stages' state, the head's gradient) and the result.
type batchRun struct {
	m       *Model
	ctx     context.Context
	b       *Batch
	opt     RunOptions
	consume Consumer
	res     *Result

	chunk    int // tokens per chunk along S
	headRows int // rows of logits per block

	params    map[string]tensor.Map // each stage's parameters by local name
	tspan, h0 *tensor.Tensor
	// attnState and liqState are what the attention and a per-token liquid
	// stage carry from chunk to chunk.
	attnState, liqState tensor.Map

	// Buffers from m.scratch (their sizes are in allocate).
	x, ts, hin     []float32 // one chunk's embedded tokens, timestamps, head input
	u              []float32 // sequential block: the attention's input e + y_liquid
	logits, hinAug []float32 // one block of the head
	// wob is the head's weight and bias packed as [V, H+1], and hinAug each
	// block's inputs with a column of ones: one sgemm then adds the bias,
	// instead of writing the bias into every row of the (large) logits block
	// first. dwob is its gradient: one sgemm per block gives the bias gradient
	// as its last column.
	wob, dwob []float32
	de        []float32 // one chunk's dLoss/d(head input), then dLoss/de
	index     []int
	// With a bf16 head: one block's inputs rounded to bfloat16 (the weight is
	// m.packed). wob and hinAug then serve only the float32 backward.
	hinBF []uint16
	// packed: the head's float32 products run on package packed's kernel
	// (FP32HeadPacked, read once per Run so that the buffers, the packing
	// and every block agree).
	packed bool
}

func (m *Model) newBatchRun(ctx context.Context, b *Batch, opt RunOptions, consume Consumer) (*batchRun, error) {
	d := m.Dims
	r := &batchRun{m: m, ctx: ctx, b: b, opt: opt, consume: consume,
		res:   &Result{LDJ: make([]float32, b.B*b.S), Stats: map[string]float64{}},
		chunk: opt.ChunkSize, headRows: opt.HeadRows, params: map[string]tensor.Map{}, packed: FP32HeadPacked()}
	if r.chunk <= 0 || r.chunk > b.S {
		r.chunk = b.S
	}
	if r.headRows <= 0 {
		r.headRows = HeadRowsFor(m.Dims.Vocab)
	}
	r.headRows = max(1, min(r.headRows, b.B*r.chunk)) // a block never passes the chunk
	if opt.KeepAttn {
		r.res.Attn = make([]float32, b.B*b.S)
	}
	h0 := b.H0
	if h0 == nil {
		h0 = make([]float32, b.B*d.H)
	}
	r.tspan = tensor.From(append([]float32(nil), b.TSpan...), len(b.TSpan))
	r.h0 = tensor.From(h0, b.B, d.H)
	for _, k := range stage.Kinds {
		r.params[k] = m.Params.local(k)
	}
	r.allocate()
	if err := m.packHead(opt.Train, r.packed); err != nil {
		return nil, err
	}
	return r, nil
}

// packHead packs W_o for the bf16 head when the packed copy may be stale: on
// every training Run (the previous one was followed by an optimiser step), on
// the first Run, after a training Run, and whenever Params changed (Init,
// LoadStateDict, Changed).
func (m *Model) packHead(train, pk bool) error {
	if train && pk {
		// The backward's de = dlogits·W_o, on package packed's kernel for
		// long K; W_o changes with every optimiser step.
		if err := packed.PackKN(&m.pkT, m.wo.Value.Data, m.Dims.Vocab, m.Dims.H, m.Dims.H); err != nil {
			return fmt.Errorf("head backward: %w", err)
		}
	}
	if !m.Dims.HeadBF16() {
		if !pk || (!train && m.pkOK && m.pkVersion == m.Params.version) {
			return nil
		}
		if err := packed.Pack(&m.pk, m.wo.Value.Data, m.Dims.Vocab, m.Dims.H); err != nil {
			return fmt.Errorf("fp32 head: %w", err)
		}
		m.pkOK, m.pkVersion = true, m.Params.version
		return nil
	}
	if !train && m.packedOK && m.packedVersion == m.Params.version {
		return nil
	}
	if err := bf16.Pack(&m.packed, m.wo.Value.Data, m.Dims.Vocab, m.Dims.H); err != nil {
		return fmt.Errorf("bf16 head: %w", err)
	}
	m.packedOK, m.packedVersion = true, m.Params.version
	return nil
}

// allocate takes the run's buffers from the model's scratch and packs the head.
func (r *batchRun) allocate() {
	m, d, b := r.m, r.m.Dims, r.b
	if m.perToken || m.attnPerToken {
		r.hin = m.buf(&m.scratch.hin, b.B*r.chunk*d.H)
	}
	if d.Sequential() {
		r.u = m.buf(&m.scratch.u, b.B*r.chunk*d.H)
	}
	r.x = m.buf(&m.scratch.x, b.B*r.chunk*d.D)
	r.ts = m.buf(&m.scratch.ts, b.B*r.chunk)
	r.logits = m.buf(&m.scratch.logits, r.headRows*d.Vocab)
	ha := d.H + 1
	if d.HeadBF16() {
		if cap(m.scratch.hinBF) < r.headRows*(d.H+1) {
			m.scratch.hinBF = make([]uint16, r.headRows*(d.H+1))
		}
		r.hinBF = m.scratch.hinBF
	}
	// [W_o | b_o] serves the sgemm path only (the float32 head's forward,
	// and every head's backward); [e | 1] also the packed backward's dW.
	sgemm := !r.packed && (!d.HeadBF16() || r.opt.Train)
	if sgemm {
		r.wob = m.packWOB(r.opt.Train)
	}
	if sgemm || r.opt.Train {
		r.hinAug = m.buf(&m.scratch.hinAug, r.headRows*ha)
	}
	if r.opt.Train {
		r.dwob = m.buf(&m.scratch.dwob, d.Vocab*ha)
		clear(r.dwob)
		r.de = m.buf(&m.scratch.de, b.B*r.chunk*d.H)
	}
	r.index = make([]int, r.headRows)
}

// packWOB returns the float32 head's [W_o | b_o] ([V, H+1]), packing it
// under the bf16 head's rule (packHead): on every training Run, and otherwise
// only when it was never packed, a training Run came since, or Params changed
// (Init, LoadStateDict, Changed). Repacking the seed's 32 MB head on every
// Run cost 4% of a 4096-token forward pass.
func (m *Model) packWOB(train bool) []float32 {
	d := m.Dims
	ha := d.H + 1
	if cap(m.scratch.wob) < d.Vocab*ha {
		m.wobOK = false
	}
	wob := m.buf(&m.scratch.wob, d.Vocab*ha)
	if !train && m.wobOK && m.wobVersion == m.Params.version {
		return wob
	}
	for v := 0; v < d.Vocab; v++ {
		copy(wob[v*ha:v*ha+d.H], m.wo.Value.Data[v*d.H:(v+1)*d.H])
		wob[v*ha+d.H] = m.bo.Value.Data[v]
	}
	m.wobOK, m.wobVersion = true, m.Params.version
	return wob
}

// addHeadGrad adds the packed head gradient, summed over every chunk, into
// W_o's and b_o's.
func (r *batchRun) addHeadGrad() {
	m, d := r.m, r.m.Dims
	ha, dwob := d.H+1, r.dwob
	for v := 0; v < d.Vocab; v++ {
		g := m.wo.Grad.Data[v*d.H : (v+1)*d.H]
		for j, x := range dwob[v*ha : v*ha+d.H] {
			g[j] += x
		}
		m.bo.Grad.Data[v] += dwob[v*ha+d.H]
	}
}
