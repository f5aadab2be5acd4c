package model

import (
	"context"
	"fmt"

	"liquidlab/framework/num"
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
	// DLogits is Rows×V and zeroed when training: the consumer writes dLoss/dlogits.
	DLogits []float32
}

// Consumer receives every block of logits once, in order.
type Consumer func(*Block) error

// RunOptions control Run.
type RunOptions struct {
	ChunkSize int  // tokens per chunk along S; 0 = the whole sequence
	HeadRows  int  // rows of logits per block; 0 = 512
	Train     bool // compute parameter gradients (added into Params' Grad)
	// DH is dLoss/dh for the final liquid state (B×H), called when Train; nil = 0.
	DH func(h, dh []float32)
	// DLDJ is dLoss/d log_det_jacobian, the same for every token (the parity loss
	// uses 0.001/(B·S)); only with Train.
	DLDJ float32
	// KeepAttn keeps the attention weights of every position (B×S).
	KeepAttn bool
}

// Result holds what Run returns besides the logits.
type Result struct {
	H     []float32          // B×H final liquid state
	LDJ   []float32          // B×S log-det-Jacobian of the flows
	Attn  []float32          // B×S attention weights (KeepAttn; exact for one chunk)
	Stats map[string]float64 // "<kind>.<stat>", summed over chunks
}

// scratch holds Run's large buffers from one call to the next: allocating them
// afresh (100+ MB at the seed's size) cost tens of thousands of page faults per
// batch once the Go runtime had returned the previous ones to the OS.
type scratch struct {
	x, ts, hin, logits, wob, hinAug, dlogits, dwob, de []float32
}

// DropScratch frees the buffers Run keeps between batches (the benchmark
// measures each configuration's memory from a clean start).
func (m *Model) DropScratch() { m.scratch = scratch{} }

// buf returns (*p)[:n], reallocating when it is too small. Contents are stale.
func (m *Model) buf(p *[]float32, n int) []float32 {
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	return (*p)[:n]
}

// Run sends a batch through the model chunk by chunk. A Model runs one batch
// at a time (it reuses its buffers); use one Model per goroutine.
func (m *Model) Run(ctx context.Context, b *Batch, opt RunOptions, consume Consumer) (*Result, error) {
	d := m.Dims
	if err := b.validate(d.Vocab, d.H); err != nil {
		return nil, err
	}
	chunk := opt.ChunkSize
	if chunk <= 0 || chunk > b.S {
		chunk = b.S
	}
	headRows := opt.HeadRows
	if headRows <= 0 {
		headRows = 512
	}
	res := &Result{LDJ: make([]float32, b.B*b.S), Stats: map[string]float64{}}
	if opt.KeepAttn {
		res.Attn = make([]float32, b.B*b.S)
	}
	h0 := b.H0
	if h0 == nil {
		h0 = make([]float32, b.B*d.H)
	}
	tspan := tensor.From(append([]float32(nil), b.TSpan...), len(b.TSpan))
	h0T := tensor.From(h0, b.B, d.H)
	params := map[string]tensor.Map{}
	for _, k := range stage.Kinds {
		params[k] = m.Params.local(k)
	}
	var attnState, liqState tensor.Map
	var hin []float32
	if m.perToken || m.attnPerToken {
		hin = m.buf(&m.scratch.hin, b.B*chunk*d.H)
	}
	var c *tensor.Tensor

	// Per-chunk buffers, reused.
	x := m.buf(&m.scratch.x, b.B*chunk*d.D)
	ts := m.buf(&m.scratch.ts, b.B*chunk)
	logits := m.buf(&m.scratch.logits, headRows*d.Vocab)
	// The head's weight and bias packed as [V, H+1], and each block's inputs
	// with a column of ones: one sgemm then adds the bias, instead of writing
	// the bias into every row of the (large) logits block first.
	ha := d.H + 1
	wob := m.buf(&m.scratch.wob, d.Vocab*ha)
	for v := 0; v < d.Vocab; v++ {
		copy(wob[v*ha:v*ha+d.H], m.wo.Value.Data[v*d.H:(v+1)*d.H])
		wob[v*ha+d.H] = m.bo.Value.Data[v]
	}
	hinAug := m.buf(&m.scratch.hinAug, headRows*ha)
	var dlogits, de, dwob []float32
	if opt.Train {
		dlogits = m.buf(&m.scratch.dlogits, headRows*d.Vocab)
		// Gradient of the packed [W_o | b_o]: one sgemm per block gives the
		// bias gradient as its last column.
		dwob = m.buf(&m.scratch.dwob, d.Vocab*ha)
		clear(dwob)
		de = m.buf(&m.scratch.de, b.B*chunk*d.H)
	}
	index := make([]int, headRows)

	for s0 := 0; s0 < b.S; s0 += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sc := min(chunk, b.S-s0)
		last := s0+sc == b.S
		n := b.B * sc
		// Embedding lookup and timestamps of this chunk, [B,sc,·].
		for bi := 0; bi < b.B; bi++ {
			for j := 0; j < sc; j++ {
				id := b.IDs[bi*b.S+s0+j]
				copy(x[(bi*sc+j)*d.D:(bi*sc+j+1)*d.D], m.emb.Value.Data[int(id)*d.D:(int(id)+1)*d.D])
				ts[bi*sc+j] = b.Timestamps[bi*b.S+s0+j]
			}
		}
		xT := tensor.From(x[:n*d.D], b.B, sc, d.D)
		var handles []struct {
			kind string
			h    uint64
		}
		release := func() {
			for _, hh := range handles {
				if hh.h != 0 {
					_ = m.Stages[hh.kind].Release(ctx, hh.h)
				}
			}
		}
		call := func(kind string, in, state tensor.Map) (*stage.ForwardResult, error) {
			r, err := m.Stages[kind].Forward(ctx, m.Configs[kind], &stage.ForwardRequest{
				Params: params[kind], Inputs: in, State: state, NeedGrad: opt.Train})
			if err != nil {
				return nil, fmt.Errorf("%s stage (%s): %w", kind, m.Descs[kind].Name, err)
			}
			handles = append(handles, struct {
				kind string
				h    uint64
			}{kind, r.Handle})
			for k, v := range r.Stats {
				res.Stats[kind+"."+k] += v
			}
			return r, nil
		}
		fr, err := call(stage.KindFlows, tensor.Map{"x": xT}, nil)
		if err != nil {
			release()
			return nil, err
		}
		z, err := fr.Outputs.Need("z", b.B, sc, d.L)
		if err == nil {
			var ldj *tensor.Tensor
			if ldj, err = fr.Outputs.Need("ldj", b.B, sc); err == nil {
				for bi := 0; bi < b.B; bi++ {
					copy(res.LDJ[bi*b.S+s0:bi*b.S+s0+sc], ldj.Data[bi*sc:(bi+1)*sc])
				}
			}
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("flows stage output: %w", err)
		}
		or, err := call(stage.KindODE, tensor.Map{"z": z, "t_span": tspan}, nil)
		if err != nil {
			release()
			return nil, err
		}
		e, err := or.Outputs.Need("e", b.B, sc, d.H)
		if err != nil {
			release()
			return nil, fmt.Errorf("ode stage output: %w", err)
		}
		tsT := tensor.From(ts[:n], b.B, sc)
		ar, err := call(stage.KindAttention, tensor.Map{"e": e, "timestamps": tsT, "h": h0T}, attnState)
		if err != nil {
			release()
			return nil, err
		}
		attnState = ar.State
		if c, err = ar.Outputs.Need("c", b.B, d.H); err != nil {
			release()
			return nil, fmt.Errorf("attention stage output: %w", err)
		}
		if opt.KeepAttn {
			if w, err := ar.Outputs.Need("w", b.B, sc); err == nil {
				for bi := 0; bi < b.B; bi++ {
					copy(res.Attn[bi*b.S+s0:bi*b.S+s0+sc], w.Data[bi*sc:(bi+1)*sc])
				}
			}
		}

		// A per-token liquid stage (one that reads "e" and writes "y") runs on
		// every chunk, carrying its state, and the head reads e + y; an attention
		// stage that writes a per-token "y" adds it to the head's input too.
		headIn := e.Data
		if m.attnPerToken {
			ya, err := ar.Outputs.Need("y", b.B, sc, d.H)
			if err != nil {
				release()
				return nil, fmt.Errorf("attention stage output: %w", err)
			}
			for i, v := range e.Data {
				hin[i] = v + ya.Data[i]
			}
			headIn = hin[:n*d.H]
		}
		var hT *tensor.Tensor
		var lr *stage.ForwardResult
		if m.perToken {
			lr, err = call(stage.KindLiquid, tensor.Map{"e": e, "timestamps": tsT, "h": h0T}, liqState)
			if err != nil {
				release()
				return nil, err
			}
			liqState = lr.State
			y, err := lr.Outputs.Need("y", b.B, sc, d.H)
			if err == nil && last {
				hT, err = lr.Outputs.Need("h", b.B, d.H)
			}
			if err != nil {
				release()
				return nil, fmt.Errorf("liquid stage output: %w", err)
			}
			if m.attnPerToken {
				for i, v := range y.Data {
					hin[i] += v
				}
			} else {
				for i, v := range e.Data {
					hin[i] = v + y.Data[i]
				}
			}
			headIn = hin[:n*d.H]
			if last {
				res.H = append([]float32(nil), hT.Data...)
			}
		}

		// Head: logits block by block, consumed at once.
		if opt.Train {
			clear(de[:n*d.H])
		}
		for r0 := 0; r0 < n; r0 += headRows {
			rows := min(headRows, n-r0)
			blk := &Block{Rows: rows, Index: index[:rows], Logits: logits[:rows*d.Vocab]}
			for i := 0; i < rows; i++ {
				r := r0 + i
				blk.Index[i] = (r/sc)*b.S + s0 + r%sc
			}
			eb := headIn[r0*d.H : (r0+rows)*d.H]
			for i := 0; i < rows; i++ {
				copy(hinAug[i*ha:i*ha+d.H], eb[i*d.H:(i+1)*d.H])
				hinAug[i*ha+d.H] = 1
			}
			num.Gemm(false, true, rows, d.Vocab, ha, 1, hinAug, ha, wob, ha, 0, blk.Logits, d.Vocab)
			if opt.Train {
				blk.DLogits = dlogits[:rows*d.Vocab]
				clear(blk.DLogits)
			}
			if err := consume(blk); err != nil {
				release()
				return nil, err
			}
			if opt.Train {
				// de = dlogits·W_o (the first H columns of the packed matrix),
				// d[W_o|b_o] += dlogitsᵀ·[e|1].
				num.Gemm(false, false, rows, d.H, d.Vocab, 1, blk.DLogits, d.Vocab, wob, ha, 0, de[r0*d.H:(r0+rows)*d.H], d.H)
				num.Gemm(true, false, d.Vocab, ha, rows, 1, blk.DLogits, d.Vocab, hinAug, ha, 1, dwob, ha)
			}
		}

		if last && !m.perToken {
			lr, err = call(stage.KindLiquid, tensor.Map{"c": c, "h": h0T}, nil)
			if err != nil {
				release()
				return nil, err
			}
			if hT, err = lr.Outputs.Need("h", b.B, d.H); err != nil {
				release()
				return nil, fmt.Errorf("liquid stage output: %w", err)
			}
			res.H = append([]float32(nil), hT.Data...)
		}
		if !opt.Train {
			release()
			continue
		}
		if err := m.backwardChunk(ctx, b, opt, handles[0].h, handles[1].h, handles[2].h, lr, hT, de[:n*d.H], s0, sc); err != nil {
			return nil, err
		}
	}
	if opt.Train {
		for v := 0; v < d.Vocab; v++ {
			g := m.wo.Grad.Data[v*d.H : (v+1)*d.H]
			for j, x := range dwob[v*ha : v*ha+d.H] {
				g[j] += x
			}
			m.bo.Grad.Data[v] += dwob[v*ha+d.H]
		}
	}
	return res, nil
}

// backwardChunk runs the backward pass of one chunk, releasing its handles.
func (m *Model) backwardChunk(ctx context.Context, b *Batch, opt RunOptions, hFlows, hODE, hAttn uint64, lr *stage.ForwardResult, hT *tensor.Tensor, de []float32, s0, sc int) error {
	d := m.Dims
	bwd := func(kind string, h uint64, g tensor.Map) (*stage.BackwardResult, error) {
		r, err := m.Stages[kind].Backward(ctx, h, g)
		if err != nil {
			return nil, fmt.Errorf("%s stage (%s) backward: %w", kind, m.Descs[kind].Name, err)
		}
		if err := m.Params.addGrads(kind, Prefix[kind], r.ParamGrads); err != nil {
			return nil, err
		}
		return r, nil
	}
	var firstErr error
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
	}
	// de holds dLoss/d(head input) so far; per-token stages that fed the head
	// get exactly that as their output gradient.
	var dhead []float32
	if m.perToken || m.attnPerToken {
		dhead = append([]float32(nil), de...)
	}
	addE := func(what string, r *stage.BackwardResult) {
		ge, err := r.InputGrads.Need("e", b.B, sc, d.H)
		if err != nil {
			fail(fmt.Errorf("%s stage backward: %w", what, err))
			return
		}
		for i, v := range ge.Data {
			de[i] += v
		}
	}
	var dc *tensor.Tensor
	switch {
	case m.perToken:
		g := tensor.Map{"y": tensor.From(dhead, b.B, sc, d.H)}
		if hT != nil {
			dh := make([]float32, b.B*d.H)
			if opt.DH != nil {
				opt.DH(hT.Data, dh)
			}
			g["h"] = tensor.From(dh, b.B, d.H)
		}
		if r, err := bwd(stage.KindLiquid, lr.Handle, g); err != nil {
			fail(err)
		} else {
			addE("liquid", r)
		}
	case lr != nil:
		dh := make([]float32, b.B*d.H)
		if opt.DH != nil {
			opt.DH(hT.Data, dh)
		}
		if r, err := bwd(stage.KindLiquid, lr.Handle, tensor.Map{"h": tensor.From(dh, b.B, d.H)}); err != nil {
			fail(err)
		} else if dc, err = r.InputGrads.Need("c", b.B, d.H); err != nil {
			fail(fmt.Errorf("liquid stage backward: %w", err))
		}
	}
	ga := tensor.Map{}
	if m.attnPerToken {
		ga["y"] = tensor.From(dhead, b.B, sc, d.H)
	}
	if dc != nil {
		ga["c"] = dc
	}
	if firstErr != nil || len(ga) == 0 {
		_ = m.Stages[stage.KindAttention].Release(ctx, hAttn)
	} else if ra, err := bwd(stage.KindAttention, hAttn, ga); err != nil {
		fail(err)
	} else {
		addE("attention", ra)
	}
	if firstErr != nil {
		_ = m.Stages[stage.KindODE].Release(ctx, hODE)
		_ = m.Stages[stage.KindFlows].Release(ctx, hFlows)
		return firstErr
	}
	ro, err := bwd(stage.KindODE, hODE, tensor.Map{"e": tensor.From(de, b.B, sc, d.H)})
	if err != nil {
		_ = m.Stages[stage.KindFlows].Release(ctx, hFlows)
		return err
	}
	dz, err := ro.InputGrads.Need("z", b.B, sc, d.L)
	if err != nil {
		_ = m.Stages[stage.KindFlows].Release(ctx, hFlows)
		return fmt.Errorf("ode stage backward: %w", err)
	}
	dldj := tensor.New(b.B, sc)
	if opt.DLDJ != 0 {
		for i := range dldj.Data {
			dldj.Data[i] = opt.DLDJ
		}
	}
	rf, err := bwd(stage.KindFlows, hFlows, tensor.Map{"z": dz, "ldj": dldj})
	if err != nil {
		return err
	}
	dx, err := rf.InputGrads.Need("x", b.B, sc, d.D)
	if err != nil {
		return fmt.Errorf("flows stage backward: %w", err)
	}
	g := m.emb.Grad.Data
	for bi := 0; bi < b.B; bi++ {
		for j := 0; j < sc; j++ {
			id := int(b.IDs[bi*b.S+s0+j])
			if id == m.PaddingIdx {
				continue
			}
			row := dx.Data[(bi*sc+j)*d.D : (bi*sc+j+1)*d.D]
			dst := g[id*d.D : (id+1)*d.D]
			for k, v := range row {
				dst[k] += v
			}
		}
	}
	return nil
}

// CrossEntropy is a consumer that adds the mean cross-entropy of the logits
// against labels (ignoring ignoreID) into *loss and, when training, writes its
// gradient scaled by 1/count, where count is the number of labels not ignored in
// the whole batch. It also counts correct argmax predictions into *correct.
// Rows are spread over the cores; the block's loss is summed in row order, so the
// result does not depend on the core count.
func CrossEntropy(labels []int64, ignoreID int64, count int, loss *float64, correct *int) Consumer {
	var rowLoss []float64
	var rowOK []bool
	return func(blk *Block) error {
		v := len(blk.Logits) / blk.Rows
		inv := float32(1 / float64(count))
		if cap(rowLoss) < blk.Rows {
			rowLoss, rowOK = make([]float64, blk.Rows), make([]bool, blk.Rows)
		}
		rowLoss, rowOK = rowLoss[:blk.Rows], rowOK[:blk.Rows]
		num.ParallelRows(blk.Rows, 4*v, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				rowLoss[i], rowOK[i] = 0, false
				lab := labels[blk.Index[i]]
				if lab == ignoreID {
					continue
				}
				row := blk.Logits[i*v : (i+1)*v]
				mx, arg := num.MaxArg(row)
				rowOK[i] = int64(arg) == lab
				var dst []float32
				if blk.DLogits != nil {
					dst = blk.DLogits[i*v : (i+1)*v]
				}
				lse := num.LogSumExp(row, mx, dst)
				rowLoss[i] = lse - float64(row[lab])
				if dst != nil {
					// dst holds exp(x−lse) = softmax.
					for j := range dst {
						dst[j] *= inv
					}
					dst[lab] -= inv
				}
			}
		})
		for i := range rowLoss {
			*loss += rowLoss[i] / float64(count)
			if rowOK[i] && correct != nil {
				*correct++
			}
		}
		return nil
	}
}
