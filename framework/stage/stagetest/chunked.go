package stagetest

import (
	"fmt"
	"math"
	"sort"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// chunkLengths cuts S tokens into chunks of different lengths (so an output
// whose second dimension follows the chunk length is told apart from one that
// does not), or returns nil when S is too short.
func chunkLengths(S int) []int {
	switch {
	case S >= 6:
		return []int{2, 1, S - 3}
	case S >= 3:
		return []int{1, S - 1}
	}
	return nil
}

// sliceTokens returns tokens [from,to) of a [B,S,…] tensor.
func sliceTokens(t *tensor.Tensor, from, to int) *tensor.Tensor {
	B, S := t.Shape[0], t.Shape[1]
	inner := 1
	for _, d := range t.Shape[2:] {
		inner *= d
	}
	shape := append([]int{B, to - from}, t.Shape[2:]...)
	out := tensor.New(shape...)
	for b := 0; b < B; b++ {
		copy(out.Data[b*(to-from)*inner:(b+1)*(to-from)*inner], t.Data[(b*S+from)*inner:(b*S+to)*inner])
	}
	return out
}

// checkChunked: for a stage that declares state, the sequence cut into chunks
// with the state carried gives the one-chunk outputs.
func (k *kit) checkChunked() {
	k.t.Helper()
	const check = "chunked = unchunked"
	if len(k.desc.State) == 0 {
		return
	}
	if k.c.SkipChunked != "" {
		k.t.Logf("stagetest: %s: %s: skipped: %s", k.name, check, k.c.SkipChunked)
		return
	}
	lens := chunkLengths(k.c.S)
	if lens == nil {
		k.t.Logf("stagetest: %s: %s: skipped: S = %d is too short to cut (want S ≥ 3)", k.name, check, k.c.S)
		return
	}
	whole, err := k.forward(k.request(false))
	if err != nil {
		return // reported by checkForward
	}
	var state tensor.Map
	parts := map[string][]*tensor.Tensor{}
	var last tensor.Map
	from := 0
	for ci, n := range lens {
		in := tensor.Map{}
		for name, v := range k.inputs {
			if k.token[name] {
				v = sliceTokens(v, from, from+n)
			}
			in[name] = v
		}
		st := snapshot(state)
		res, err := k.forward(&stage.ForwardRequest{Params: k.params, Inputs: in, State: state})
		if err != nil {
			k.errorf(check, "chunk %d (tokens %d..%d) with the carried state: %v", ci, from, from+n, err)
			return
		}
		k.unchanged(check, []string{fmt.Sprintf("carried state (chunk %d)", ci)}, st, state)
		k.checkState(fmt.Sprintf("%s: state after chunk %d", check, ci), res.State)
		for name, o := range res.Outputs {
			parts[name] = append(parts[name], o)
		}
		state, last = res.State, res.Outputs
		from += n
	}
	names := whole.Outputs.Names()
	sort.Strings(names)
	for _, name := range names {
		if why, ok := k.c.ChunkExempt[name]; ok {
			k.t.Logf("stagetest: %s: %s: output %q not compared: %s", k.name, check, name, why)
			continue
		}
		w := whole.Outputs[name]
		ps := parts[name]
		if len(ps) != len(lens) {
			k.errorf(check, "output %q missing from a chunk", name)
			continue
		}
		perToken := len(w.Shape) >= 2 && w.Shape[1] == k.c.S
		for i, p := range ps {
			perToken = perToken && len(p.Shape) == len(w.Shape) && p.Shape[0] == w.Shape[0] &&
				p.Shape[1] == lens[i] && tensor.SameShape(p.Shape[2:], w.Shape[2:]) && len(p.Data) == tensor.Numel(p.Shape)
		}
		got := last[name]
		what := "after the last chunk"
		if perToken {
			got, what = concatTokens(ps), "concatenated over the chunks"
		}
		if !tensor.SameShape(got.Shape, w.Shape) || len(got.Data) != len(w.Data) {
			k.errorf(check, "output %q %s has shape %v, one chunk gives %v", name, what, got.Shape, w.Shape)
			continue
		}
		worst, at := 0.0, -1
		for i := range w.Data {
			a, b := float64(got.Data[i]), float64(w.Data[i])
			if a == b { // also equal infinities
				continue
			}
			d := math.Abs(a-b) / (1 + math.Abs(b))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			if d > worst {
				worst, at = d, i
			}
		}
		if worst > k.c.ChunkTol {
			k.errorf(check, "output %q %s (chunks %v) differs from one chunk: at %d %v vs %v (relative %.3g > %g)",
				name, what, lens, at, got.Data[at], w.Data[at], worst, k.c.ChunkTol)
		}
	}
}

// concatTokens joins [B,Sᵢ,…] tensors along axis 1.
func concatTokens(ps []*tensor.Tensor) *tensor.Tensor {
	B := ps[0].Shape[0]
	inner := 1
	for _, d := range ps[0].Shape[2:] {
		inner *= d
	}
	S := 0
	for _, p := range ps {
		S += p.Shape[1]
	}
	out := tensor.New(append([]int{B, S}, ps[0].Shape[2:]...)...)
	off := 0
	for _, p := range ps {
		n := p.Shape[1]
		for b := 0; b < B; b++ {
			copy(out.Data[(b*S+off)*inner:(b*S+off+n)*inner], p.Data[b*n*inner:(b+1)*n*inner])
		}
		off += n
	}
	return out
}
