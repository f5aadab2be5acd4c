package model

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"time"

	"liquidlab/framework/num"
	"liquidlab/framework/num/bf16"
	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// chunk is one slice of the batch along S on its way through the stages: where
// it sits, what the forward steps produced that later steps read, and the
// backward handle each stage saved, by kind.
type chunk struct {
	s0   int  // first token of the chunk in each sequence
	size int  // tokens of each sequence in the chunk
	n    int  // rows: B·size
	last bool // the chunk ends the sequence

	// handles holds each stage's backward handle by kind until Backward takes
	// it (take) or the chunk ends (batchRun.release).
	handles map[string]uint64

	x, ts  *tensor.Tensor // [B,size,D] embedded tokens, [B,size] timestamps
	e      *tensor.Tensor // [B,size,H] the ode stage's output
	c      *tensor.Tensor // [B,H] the attention stage's context
	headIn []float32      // n×H: e, plus the per-token stages' y

	liquidRan bool           // the liquid stage ran on this chunk
	h         *tensor.Tensor // [B,H] final liquid state, on the last chunk

	// Backward: de starts as dLoss/d(head input) and collects dLoss/de;
	// dhead keeps dLoss/d(head input) for the per-token stages feeding the head.
	de, dhead []float32
}

// take returns the chunk's handle of a kind and forgets it: the caller now owns
// it (Backward releases it).
func (ch *chunk) take(kind string) uint64 {
	h := ch.handles[kind]
	delete(ch.handles, kind)
	return h
}

// runChunk runs the chunk starting at token s0 forward and, with Train,
// backward. Whatever happens, every handle is released exactly once.
func (r *batchRun) runChunk(s0 int) error {
	size := min(r.chunk, r.b.S-s0)
	ch := &chunk{s0: s0, size: size, n: r.b.B * size, last: s0+size == r.b.S, handles: map[string]uint64{}}
	defer r.release(ch)
	r.labelled("embed", func() error { r.embed(ch); return nil })
	if err := r.forward(ch); err != nil {
		return err
	}
	if err := r.labelled("head", func() error { return r.head(ch) }); err != nil {
		return err
	}
	if err := r.liquidCell(ch); err != nil {
		return err
	}
	if !r.opt.Train {
		return nil
	}
	return r.backward(ch)
}

// release drops the handles the chunk still holds, in reverse pipeline order.
// Release errors are ignored: the chunk is over, and the error that ended it
// (if any) is the one to report.
func (r *batchRun) release(ch *chunk) {
	for i := len(stage.Kinds) - 1; i >= 0; i-- {
		r.drop(ch, stage.Kinds[i])
	}
}

// drop releases the chunk's handle of one kind now, if it holds one.
func (r *batchRun) drop(ch *chunk, kind string) {
	if h := ch.take(kind); h != 0 {
		_ = r.m.Stages[kind].Release(r.ctx, h)
	}
}

// embed looks up the chunk's token embeddings and copies its timestamps, [B,size,·].
func (r *batchRun) embed(ch *chunk) {
	b, d, emb := r.b, r.m.Dims, r.m.emb.Value.Data
	x, ts := r.x, r.ts
	for bi := 0; bi < b.B; bi++ {
		for j := 0; j < ch.size; j++ {
			id := int(b.IDs[bi*b.S+ch.s0+j])
			row := bi*ch.size + j
			copy(x[row*d.D:(row+1)*d.D], emb[id*d.D:(id+1)*d.D])
			ts[row] = b.Timestamps[bi*b.S+ch.s0+j]
		}
	}
	ch.x = tensor.From(x[:ch.n*d.D], b.B, ch.size, d.D)
	ch.ts = tensor.From(ts[:ch.n], b.B, ch.size)
}

// call runs one stage's Forward on the chunk, keeping its handle and adding its
// statistics to the result.
func (r *batchRun) call(ch *chunk, kind string, in, state tensor.Map) (*stage.ForwardResult, error) {
	m := r.m
	var fr *stage.ForwardResult
	ctx := m.outputs(r.ctx, kind, "Forward")
	err := r.labelled(kind, func() error {
		var err error
		fr, err = m.Stages[kind].Forward(ctx, m.Configs[kind], &stage.ForwardRequest{
			Params: r.params[kind], Inputs: in, State: state, NeedGrad: r.opt.Train})
		return err
	})
	if err == nil && fr == nil {
		err = errors.New("Forward returned no result")
	}
	if err != nil {
		return nil, fmt.Errorf("%s stage (%s): %w", kind, m.Descs[kind].Name, err)
	}
	ch.handles[kind] = fr.Handle
	for k, v := range fr.Stats {
		r.res.Stats[kind+"."+k] += v
	}
	return fr, nil
}

// labelled runs fn with the pprof label step=<step> on this goroutine and on
// the goroutines it starts (num.Gemm's and num.ParallelRows' workers), so a CPU
// profile of a run (bench -cpuprofile) tells the steps apart: go tool pprof
// -tags, or -tagfocus step=ode (forward steps are named by kind, "head" is the
// output head with its loss and backward, backward steps "backward-<kind>";
// bench labels the optimiser "adamw" and "clip"). In-process stages only: a
// plugin's work runs in its own process.
//
// It also adds the step's wall time to Result.Stats[StepSeconds+step].
func (r *batchRun) labelled(step string, fn func() error) error {
	var err error
	t0 := time.Now()
	pprof.Do(r.ctx, pprof.Labels("step", step), func(context.Context) { err = fn() })
	r.res.Stats[StepSeconds+step] += time.Since(t0).Seconds()
	return err
}

// outputErr says which stage returned a missing or misshapen output.
func outputErr(kind string, err error) error {
	return fmt.Errorf("%s stage output: %w", kind, err)
}

// forward runs the chunk through flows, ode, attention and, when it is
// per-token, the liquid stage, and leaves the head's input in ch.headIn.
func (r *batchRun) forward(ch *chunk) error {
	z, err := r.flows(ch)
	if err != nil {
		return err
	}
	if err := r.ode(ch, z); err != nil {
		return err
	}
	if r.m.Dims.Sequential() {
		// A residual block: the liquid scan first, then the attention on
		// u = e + y_liquid.
		if err := r.liquidPerToken(ch); err != nil {
			return err
		}
		return r.attention(ch)
	}
	if err := r.attention(ch); err != nil {
		return err
	}
	return r.liquidPerToken(ch)
}

// flows reduces the embedded tokens to z and records the log-det-Jacobian.
func (r *batchRun) flows(ch *chunk) (*tensor.Tensor, error) {
	b, d := r.b, r.m.Dims
	fr, err := r.call(ch, stage.KindFlows, tensor.Map{stage.PortX: ch.x}, nil)
	if err != nil {
		return nil, err
	}
	z, err := fr.Outputs.Need(stage.PortZ, b.B, ch.size, d.L)
	if err != nil {
		return nil, outputErr(stage.KindFlows, err)
	}
	ldj, err := fr.Outputs.Need(stage.PortLDJ, b.B, ch.size)
	if err != nil {
		return nil, outputErr(stage.KindFlows, err)
	}
	for bi := 0; bi < b.B; bi++ {
		copy(r.res.LDJ[bi*b.S+ch.s0:bi*b.S+ch.s0+ch.size], ldj.Data[bi*ch.size:(bi+1)*ch.size])
	}
	return z, nil
}

// ode integrates z to the embedding e, which is also the head's input unless a
// per-token stage adds to it.
func (r *batchRun) ode(ch *chunk, z *tensor.Tensor) error {
	fr, err := r.call(ch, stage.KindODE, tensor.Map{stage.PortZ: z, stage.PortTSpan: r.tspan}, nil)
	if err != nil {
		return err
	}
	if ch.e, err = fr.Outputs.Need(stage.PortE, r.b.B, ch.size, r.m.Dims.H); err != nil {
		return outputErr(stage.KindODE, err)
	}
	ch.headIn = ch.e.Data
	return nil
}

// attention runs the attention stage on e (in a sequential block on
// u = e + y_liquid, the head's input so far), carrying its state; an attention
// stage that writes a per-token "y" adds it to the head's input.
func (r *batchRun) attention(ch *chunk) error {
	b, d := r.b, r.m.Dims
	in := ch.e
	if d.Sequential() {
		// A copy: the stage may keep its input for Backward, and the head's
		// input is written next.
		u := r.u[:ch.n*d.H]
		copy(u, ch.headIn)
		in = tensor.From(u, b.B, ch.size, d.H)
	}
	inputs := tensor.Map{stage.PortE: in, stage.PortTimestamps: ch.ts, stage.PortH: r.h0}
	if r.opt.Rows != nil && r.m.attnPerToken {
		rows := tensor.New(b.B, ch.size)
		for bi := 0; bi < b.B; bi++ {
			for j, read := range r.opt.Rows[bi*b.S+ch.s0 : bi*b.S+ch.s0+ch.size] {
				if read {
					rows.Data[bi*ch.size+j] = 1
				}
			}
		}
		inputs[stage.PortRows] = rows
	}
	fr, err := r.call(ch, stage.KindAttention, inputs, r.attnState)
	if err != nil {
		return err
	}
	r.attnState = fr.State
	if ch.c, err = fr.Outputs.Need(stage.PortC, b.B, d.H); err != nil {
		return outputErr(stage.KindAttention, err)
	}
	if r.opt.KeepAttn {
		// Attention weights are optional: a stage without them leaves zeros.
		if w, err := fr.Outputs.Need(stage.PortW, b.B, ch.size); err == nil {
			for bi := 0; bi < b.B; bi++ {
				copy(r.res.Attn[bi*b.S+ch.s0:bi*b.S+ch.s0+ch.size], w.Data[bi*ch.size:(bi+1)*ch.size])
			}
		}
	}
	if !r.m.attnPerToken {
		return nil
	}
	y, err := fr.Outputs.Need(stage.PortY, b.B, ch.size, d.H)
	if err != nil {
		return outputErr(stage.KindAttention, err)
	}
	hin := r.hin
	for i, v := range in.Data {
		hin[i] = v + y.Data[i]
	}
	ch.headIn = hin[:ch.n*d.H]
	return nil
}

// liquidPerToken runs a per-token liquid stage (one that reads "e" and writes
// "y") on the chunk, carrying its state; the head reads e + y (+ the
// attention's y).
func (r *batchRun) liquidPerToken(ch *chunk) error {
	if !r.m.perToken {
		return nil
	}
	b, d := r.b, r.m.Dims
	fr, err := r.call(ch, stage.KindLiquid,
		tensor.Map{stage.PortE: ch.e, stage.PortTimestamps: ch.ts, stage.PortH: r.h0}, r.liqState)
	if err != nil {
		return err
	}
	ch.liquidRan = true
	r.liqState = fr.State
	y, err := fr.Outputs.Need(stage.PortY, b.B, ch.size, d.H)
	if err == nil && ch.last {
		ch.h, err = fr.Outputs.Need(stage.PortH, b.B, d.H)
	}
	if err != nil {
		return outputErr(stage.KindLiquid, err)
	}
	hin := r.hin
	if r.m.attnPerToken && !d.Sequential() {
		for i, v := range y.Data {
			hin[i] += v
		}
	} else {
		for i, v := range ch.e.Data {
			hin[i] = v + y.Data[i]
		}
	}
	ch.headIn = hin[:ch.n*d.H]
	if ch.last {
		r.res.H = append([]float32(nil), ch.h.Data...)
	}
	return nil
}

// liquidCell runs the seed's liquid cell once, after the last chunk, on the
// attention's context: h = cell(c, h0).
func (r *batchRun) liquidCell(ch *chunk) error {
	if !ch.last || r.m.perToken {
		return nil
	}
	fr, err := r.call(ch, stage.KindLiquid, tensor.Map{stage.PortC: ch.c, stage.PortH: r.h0}, nil)
	if err != nil {
		return err
	}
	ch.liquidRan = true
	if ch.h, err = fr.Outputs.Need(stage.PortH, r.b.B, r.m.Dims.H); err != nil {
		return outputErr(stage.KindLiquid, err)
	}
	r.res.H = append([]float32(nil), ch.h.Data...)
	return nil
}

// head computes the chunk's logits block by block and hands each block to the
// consumer at once; with Train it collects dLoss/d(head input) in r.de and the
// head's own gradient in r.dwob.
func (r *batchRun) head(ch *chunk) error {
	if r.opt.Train {
		ch.de = r.de[:ch.n*r.m.Dims.H]
		clear(ch.de)
	}
	for r0 := 0; r0 < ch.n; r0 += r.headRows {
		if r.skipBlock(ch, r0, min(r.headRows, ch.n-r0)) {
			continue
		}
		if err := r.headBlock(ch, r0, min(r.headRows, ch.n-r0)); err != nil {
			return err
		}
	}
	return nil
}

// skipBlock reports whether RunOptions.Rows marks none of the block's rows.
func (r *batchRun) skipBlock(ch *chunk, r0, rows int) bool {
	if r.opt.Rows == nil {
		return false
	}
	for i := r0; i < r0+rows; i++ {
		if r.opt.Rows[(i/ch.size)*r.b.S+ch.s0+i%ch.size] {
			return false
		}
	}
	return true
}

// headBlock is the head on rows r0 … r0+rows-1 of the chunk.
func (r *batchRun) headBlock(ch *chunk, r0, rows int) error {
	b, d := r.b, r.m.Dims
	ha := d.H + 1
	hinAug := r.hinAug
	blk := &Block{Rows: rows, Index: r.index[:rows], Logits: r.logits[:rows*d.Vocab]}
	for i := 0; i < rows; i++ {
		row := r0 + i
		blk.Index[i] = (row/ch.size)*b.S + ch.s0 + row%ch.size
	}
	in := ch.headIn[r0*d.H : (r0+rows)*d.H]
	if hinAug != nil { // the fp32 head, or the float32 backward of the bf16 one
		for i := 0; i < rows; i++ {
			copy(hinAug[i*ha:i*ha+d.H], in[i*d.H:(i+1)*d.H])
			hinAug[i*ha+d.H] = 1
		}
	}
	t0 := time.Now()
	if d.HeadBF16() {
		r.hinBF = bf16.ConvertA(r.hinBF, in, rows, d.H)
		if err := bf16.Gemm(blk.Logits, r.hinBF, rows, &r.m.packed, r.m.bo.Value.Data); err != nil {
			return fmt.Errorf("bf16 head: %w", err)
		}
	} else if r.packed {
		if err := packed.Gemm(blk.Logits, d.Vocab, in, d.H, rows, &r.m.pk, r.m.bo.Value.Data); err != nil {
			return fmt.Errorf("fp32 head: %w", err)
		}
	} else {
		num.Gemm(false, true, rows, d.Vocab, ha, 1, hinAug, ha, r.wob, ha, 0, blk.Logits, d.Vocab)
	}
	r.res.HeadS += time.Since(t0).Seconds()
	if r.opt.Train {
		blk.DLogits = blk.Logits // in place: see Block.DLogits
	}
	if err := r.consume(blk); err != nil {
		return err
	}
	if r.opt.Train {
		// de = dlogits·W_o (the first H columns of the packed matrix),
		// d[W_o|b_o] += dlogitsᵀ·[e|1].
		// Both in float32 (master weights), also with the bf16 head.
		t0 := time.Now()
		de := ch.de[r0*d.H : (r0+rows)*d.H]
		if r.packed {
			// [e|1] is small (rows × 257): packing it costs little beside
			// the product; the ones column becomes the kernel's column sum.
			err := packed.GemmKB(de, d.H, blk.DLogits, d.Vocab, rows, &r.m.pkT, nil)
			if err == nil {
				err = packed.PackKN(&r.m.pkE, hinAug, rows, d.H, ha)
			}
			if err == nil {
				err = packed.GemmTNAdd(r.dwob, ha, blk.DLogits, d.Vocab, d.Vocab, &r.m.pkE, d.H)
			}
			if err != nil {
				return fmt.Errorf("head backward: %w", err)
			}
		} else {
			num.Gemm(false, false, rows, d.H, d.Vocab, 1, blk.DLogits, d.Vocab, r.wob, ha, 0, de, d.H)
			num.Gemm(true, false, d.Vocab, ha, rows, 1, blk.DLogits, d.Vocab, hinAug, ha, 1, r.dwob, ha)
		}
		dt := time.Since(t0).Seconds()
		r.res.HeadS += dt
		r.res.HeadBackS += dt
	}
	return nil
}
