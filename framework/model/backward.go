package model

import (
	"errors"
	"fmt"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// backward runs the chunk's backward pass, stages in reverse order, from
// dLoss/d(head input) in ch.de to the embedding's gradient. It stops at the
// first error; the handles not yet taken are released with the chunk.
func (r *batchRun) backward(ch *chunk) error {
	if r.m.perToken || r.m.attnPerToken {
		// Per-token stages that fed the head get exactly dLoss/d(head input)
		// as their output gradient, before the stages below add to ch.de.
		ch.dhead = append([]float32(nil), ch.de...)
	}
	if r.m.Dims.Sequential() {
		if err := r.backwardSequential(ch); err != nil {
			return err
		}
	} else if err := r.backwardBlock(ch); err != nil {
		return err
	}
	dz, err := r.backwardODE(ch)
	if err != nil {
		return err
	}
	return r.backwardFlows(ch, dz)
}

// backwardBlock is the parallel block's backward: the liquid stage (which
// hands the seed's attention dLoss/dc), then the attention.
func (r *batchRun) backwardBlock(ch *chunk) error {
	dc, err := r.backwardLiquid(ch)
	if err != nil {
		return err
	}
	return r.backwardAttention(ch, dc)
}

// backwardSequential is the sequential block's backward. The head read
// u + y_attention with u = e + y_liquid: the attention gets dLoss/d(head
// input) and adds its input gradient into ch.de, which is then dLoss/du; the
// liquid stage gets dLoss/du as its output gradient and adds its gradient
// with respect to e, so ch.de ends as dLoss/de.
func (r *batchRun) backwardSequential(ch *chunk) error {
	if err := r.backwardAttention(ch, nil); err != nil {
		return err
	}
	copy(ch.dhead, ch.de)
	_, err := r.backwardLiquid(ch)
	return err
}

// bwd runs the Backward of the chunk's stage of a kind, handing it the
// handle, and adds the parameter gradients into Params.
func (r *batchRun) bwd(ch *chunk, kind string, outGrads tensor.Map) (*stage.BackwardResult, error) {
	m := r.m
	var br *stage.BackwardResult
	err := r.labelled("backward-"+kind, func() error {
		var err error
		br, err = m.Stages[kind].Backward(m.outputs(r.ctx, kind, "Backward"), ch.take(kind), outGrads)
		return err
	})
	if err == nil && br == nil {
		err = errors.New("Backward returned no result")
	}
	if err != nil {
		return nil, fmt.Errorf("%s stage (%s) backward: %w", kind, m.Descs[kind].Name, err)
	}
	if err := m.Params.addGrads(kind, Prefix[kind], br.ParamGrads); err != nil {
		return nil, err
	}
	return br, nil
}

// inputGradErr says which stage returned a missing or misshapen input gradient.
func inputGradErr(kind string, err error) error {
	return fmt.Errorf("%s stage backward: %w", kind, err)
}

// addE adds a stage's gradient with respect to e into ch.de.
func (r *batchRun) addE(ch *chunk, kind string, br *stage.BackwardResult) error {
	ge, err := br.InputGrads.Need(stage.PortE, r.b.B, ch.size, r.m.Dims.H)
	if err != nil {
		return inputGradErr(kind, err)
	}
	de := ch.de
	for i, v := range ge.Data {
		de[i] += v
	}
	return nil
}

// dh is dLoss/dh for the final liquid state h, from RunOptions.DH.
func (r *batchRun) dh(h *tensor.Tensor) *tensor.Tensor {
	dh := make([]float32, r.b.B*r.m.Dims.H)
	if r.opt.DH != nil {
		r.opt.DH(h.Data, dh)
	}
	return tensor.From(dh, r.b.B, r.m.Dims.H)
}

// backwardLiquid runs the liquid stage's backward when it ran on the chunk:
// a per-token stage adds its gradient with respect to e into ch.de; the seed's
// cell returns dLoss/dc for the attention.
func (r *batchRun) backwardLiquid(ch *chunk) (dc *tensor.Tensor, err error) {
	b, d := r.b, r.m.Dims
	switch {
	case r.m.perToken:
		g := tensor.Map{stage.PortY: tensor.From(ch.dhead, b.B, ch.size, d.H)}
		if ch.h != nil {
			g[stage.PortH] = r.dh(ch.h)
		}
		br, err := r.bwd(ch, stage.KindLiquid, g)
		if err != nil {
			return nil, err
		}
		return nil, r.addE(ch, stage.KindLiquid, br)
	case ch.liquidRan:
		br, err := r.bwd(ch, stage.KindLiquid, tensor.Map{stage.PortH: r.dh(ch.h)})
		if err != nil {
			return nil, err
		}
		if dc, err = br.InputGrads.Need(stage.PortC, b.B, d.H); err != nil {
			return nil, inputGradErr(stage.KindLiquid, err)
		}
		return dc, nil
	}
	return nil, nil
}

// backwardAttention runs the attention stage's backward on the gradients of
// the outputs that were used: its per-token y (fed to the head) and its context
// c (fed to the seed's cell, dc nil before the last chunk). It adds the
// gradient with respect to e into ch.de. When neither was used, the handle is
// released at once.
func (r *batchRun) backwardAttention(ch *chunk, dc *tensor.Tensor) error {
	g := tensor.Map{}
	if r.m.attnPerToken {
		g[stage.PortY] = tensor.From(ch.dhead, r.b.B, ch.size, r.m.Dims.H)
	}
	if dc != nil {
		g[stage.PortC] = dc
	}
	if len(g) == 0 {
		r.drop(ch, stage.KindAttention)
		return nil
	}
	br, err := r.bwd(ch, stage.KindAttention, g)
	if err != nil {
		return err
	}
	return r.addE(ch, stage.KindAttention, br)
}

// backwardODE runs the ode stage's backward on dLoss/de and returns dLoss/dz.
func (r *batchRun) backwardODE(ch *chunk) (*tensor.Tensor, error) {
	b, d := r.b, r.m.Dims
	br, err := r.bwd(ch, stage.KindODE, tensor.Map{stage.PortE: tensor.From(ch.de, b.B, ch.size, d.H)})
	if err != nil {
		return nil, err
	}
	dz, err := br.InputGrads.Need(stage.PortZ, b.B, ch.size, d.L)
	if err != nil {
		return nil, inputGradErr(stage.KindODE, err)
	}
	return dz, nil
}

// backwardFlows runs the flows stage's backward on dLoss/dz and the constant
// dLoss/d log_det_jacobian, and adds dLoss/dx into the embedding rows the
// chunk looked up (except the padding row).
func (r *batchRun) backwardFlows(ch *chunk, dz *tensor.Tensor) error {
	b, d := r.b, r.m.Dims
	dldj := tensor.New(b.B, ch.size)
	if r.opt.DLDJ != 0 {
		for i := range dldj.Data {
			dldj.Data[i] = r.opt.DLDJ
		}
	}
	br, err := r.bwd(ch, stage.KindFlows, tensor.Map{stage.PortZ: dz, stage.PortLDJ: dldj})
	if err != nil {
		return err
	}
	dx, err := br.InputGrads.Need(stage.PortX, b.B, ch.size, d.D)
	if err != nil {
		return inputGradErr(stage.KindFlows, err)
	}
	g := r.m.emb.Grad.Data
	for bi := 0; bi < b.B; bi++ {
		for j := 0; j < ch.size; j++ {
			id := int(b.IDs[bi*b.S+ch.s0+j])
			if id == r.m.PaddingIdx {
				continue
			}
			r.m.emb.MarkRow(id)
			row := dx.Data[(bi*ch.size+j)*d.D : (bi*ch.size+j+1)*d.D]
			dst := g[id*d.D : (id+1)*d.D]
			for k, v := range row {
				dst[k] += v
			}
		}
	}
	return nil
}
