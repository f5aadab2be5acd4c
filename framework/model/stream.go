package model

import (
	"context"
	"fmt"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Streaming. A model whose logits at a position depend only on that position's
// token and on state carried from the positions before it can take a sequence a
// few tokens at a time: each Feed runs the new tokens as one chunk through every
// stage with the carried state, as Run does from one chunk to the next, so a
// generator pays for the new tokens only instead of running the whole sequence
// again. With bounded stages (the causal window attention, the scan) the work per
// token does not depend on how many tokens came before.
//
// CanStream says whether a model is such a model. The conditions:
//
//   - the liquid stage is per-token (reads "e", writes "y") and declares the state
//     it carries; the seed's cell (ltc), which computes h once from the
//     attention's context over the whole sequence, cannot stream;
//   - an attention stage that feeds the head (writes "y") declares its state; one
//     that does not (the seed's single-query attention next to a per-token liquid
//     stage) does not reach the logits, and runs with its state as in Run;
//   - the flows and ode stages carry no state: Run cuts them into chunks without
//     any, so it already treats them as per-token maps. The coupling flows are
//     per token exactly, and so is the embedding ODE with a fixed-step method
//     (euler, midpoint, rk4, …). With an adaptive method (dopri5, bosh3) the
//     solver picks one step size for the whole chunk, so a token's embedding
//     depends, within the solver's tolerance, on the tokens that share its chunk:
//     streaming then matches Run to about rtol, as Run in different chunk sizes
//     matches itself.

// CanStream reports, as an error naming the stage and the reason, why the model
// cannot be run token by token with NewStream; nil when it can.
func (m *Model) CanStream() error {
	for _, k := range []string{stage.KindFlows, stage.KindODE} {
		if d := m.Descs[k]; len(d.State) > 0 {
			return fmt.Errorf("the %s stage %q declares carried state (%s), which the model does not carry for flows and ode stages",
				k, d.Name, d.State[0].Name)
		}
	}
	liq := m.Descs[stage.KindLiquid]
	if !m.perToken {
		return fmt.Errorf("the liquid stage %q is not per-token (it does not read %q and write %q): "+
			"it runs once on the attention's context over the whole sequence, so every new token needs the whole sequence again",
			liq.Name, stage.PortE, stage.PortY)
	}
	if len(liq.State) == 0 {
		return fmt.Errorf("the liquid stage %q writes per-token %q but declares no state to carry between chunks", liq.Name, stage.PortY)
	}
	if att := m.Descs[stage.KindAttention]; m.attnPerToken && len(att.State) == 0 {
		return fmt.Errorf("the attention stage %q writes per-token %q but declares no state to carry between chunks", att.Name, stage.PortY)
	}
	return nil
}

// DefaultTSpan is the embedding ODE's output times the seed uses,
// torch.linspace(0, 1, 5).
var DefaultTSpan = []float32{0, 0.25, 0.5, 0.75, 1}

// Stream runs B sequences through a model a few tokens at a time, carrying every
// stage's state from one Feed to the next (see CanStream). Feeding a sequence in
// any cut gives the logits one Run over the whole sequence gives, up to float32
// rounding (and, with an adaptive ODE method, the solver's tolerance).
//
// A Stream uses the model's buffers: do not call Run or Feed of another stream
// of the same model between two Feeds, nor change the parameters while a stream
// is open. It computes no gradients and holds no stage handle between calls.
type Stream struct {
	m     *Model
	ctx   context.Context
	B     int
	tspan []float32

	r   *batchRun // reused while a Feed fits its buffers (the head stays packed)
	cap int       // tokens per row the buffers of r hold

	attnState, liqState tensor.Map
	pos                 int       // tokens fed to each row so far
	last                []float32 // B×V logits of each row's last token
	stats               map[string]float64
}

// NewStream starts B empty sequences. tspan is the embedding ODE's output times
// (nil: DefaultTSpan). It returns CanStream's error when the model cannot stream.
func (m *Model) NewStream(ctx context.Context, B int, tspan []float32) (*Stream, error) {
	if err := m.CanStream(); err != nil {
		return nil, fmt.Errorf("model cannot stream: %w", err)
	}
	if B < 1 {
		return nil, fmt.Errorf("stream of %d sequences: need at least one", B)
	}
	if tspan == nil {
		tspan = DefaultTSpan
	}
	if len(tspan) < 2 {
		return nil, fmt.Errorf("t_span has %d times, need at least 2", len(tspan))
	}
	return &Stream{m: m, ctx: ctx, B: B, tspan: append([]float32(nil), tspan...),
		last: make([]float32, B*m.Dims.Vocab), stats: map[string]float64{}}, nil
}

// Pos is the number of tokens fed to each sequence so far.
func (s *Stream) Pos() int { return s.pos }

// Stats are the stages' statistics ("<kind>.<stat>") summed over every Feed.
func (s *Stream) Stats() map[string]float64 { return s.stats }

// Feed appends n tokens to each of the B sequences: ids and timestamps hold
// B×n values, row by row (n = len(ids)/B ≥ 1). Timestamps continue the
// sequence's (a stage such as the scan rejects a step back). It returns the
// logits of each sequence's last new token, B×V, valid until the next Feed.
//
// A Feed that fails (bad input, a stage's error, a cancelled context) leaves
// the stream as it was before the call: stages return new state and never
// modify the state passed in, and the stream keeps the new state only once
// every stage has run.
func (s *Stream) Feed(ids []int64, timestamps []float32) ([]float32, error) {
	if len(ids) == 0 || len(ids)%s.B != 0 {
		return nil, fmt.Errorf("stream: Feed of %d ids for %d sequences: need a positive multiple of %d", len(ids), s.B, s.B)
	}
	n := len(ids) / s.B
	b := &Batch{B: s.B, S: n, IDs: ids, Timestamps: timestamps, TSpan: s.tspan}
	if err := b.validate(s.m.Dims.Vocab, s.m.Dims.H); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if err := s.ctx.Err(); err != nil {
		return nil, err
	}
	v := s.m.Dims.Vocab
	consume := func(blk *Block) error {
		for i, p := range blk.Index {
			if p%n == n-1 {
				row := p / n
				copy(s.last[row*v:(row+1)*v], blk.Logits[i*v:(i+1)*v])
			}
		}
		return nil
	}
	// Only each row's last logits are read: the head and the attention skip
	// the other rows' blocks (RunOptions.Rows; the carried state is the same).
	var read []bool
	if n > 1 {
		read = make([]bool, s.B*n)
		for i := 0; i < s.B; i++ {
			read[i*n+n-1] = true
		}
	}
	r, err := s.run(b, read, consume)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	r.attnState, r.liqState = s.attnState, s.liqState
	if err := r.runChunk(0); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	if len(r.liqState) == 0 || (s.m.attnPerToken && len(r.attnState) == 0) {
		return nil, fmt.Errorf("stream: a stage that declares state returned none to carry")
	}
	s.attnState, s.liqState = r.attnState, r.liqState
	for k, x := range r.res.Stats {
		s.stats[k] += x
	}
	s.pos += n
	return s.last, nil
}

// run returns the batch run for one Feed: the stream's own while the feed fits
// its buffers (the head packed once), else a new one sized for this feed.
func (s *Stream) run(b *Batch, read []bool, consume Consumer) (*batchRun, error) {
	if s.r == nil || b.S > s.cap {
		r, err := s.m.newBatchRun(s.ctx, b, RunOptions{ChunkSize: b.S, Rows: read}, consume)
		if err != nil {
			return nil, err
		}
		s.r, s.cap = r, b.S
		return r, nil
	}
	r := s.r
	r.b, r.consume, r.opt.Rows = b, consume, read
	r.res = &Result{LDJ: make([]float32, b.B*b.S), Stats: map[string]float64{}}
	return r, nil
}
