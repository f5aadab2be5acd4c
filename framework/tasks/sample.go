package tasks

import "fmt"

// Target is a token the model must predict at Pos (from the logits of Pos−1).
type Target struct {
	Pos   int
	ID    int64
	Group int // 0 … Sample.Groups−1
}

// Sample is one generated sequence, described by segments; its tokens are
// written on demand by Fill or Chunks.
type Sample struct {
	Len     int
	Row     string // the evaluation row it belongs to, e.g. "depth 25%"
	Targets []Target
	Groups  int
	// Info holds what the generator chose (e.g. "needle_pos"), for tests and logs.
	Info map[string]int
	segs []segment
}

// segment is tokens [start, start+n) of a sample: ids itself (len n) or, when
// loop is set, ids read cyclically from offset off.
type segment struct {
	start, n int
	ids      []int64
	loop     bool
	off      int
}

// builder appends segments.
type builder struct{ s *Sample }

func (b *builder) fixed(ids []int64) int {
	p := b.s.Len
	if len(ids) > 0 {
		b.s.segs = append(b.s.segs, segment{start: p, n: len(ids), ids: ids})
		b.s.Len += len(ids)
	}
	return p
}

func (b *builder) cycle(ids []int64, off, n int) int {
	p := b.s.Len
	if n > 0 {
		b.s.segs = append(b.s.segs, segment{start: p, n: n, ids: ids, loop: true, off: off % len(ids)})
		b.s.Len += n
	}
	return p
}

// Fill writes tokens [off, off+len(dst)) of the sample into dst.
func (s *Sample) Fill(dst []int64, off int) error {
	if off < 0 || off+len(dst) > s.Len {
		return fmt.Errorf("tasks: tokens [%d, %d) of a %d-token sample", off, off+len(dst), s.Len)
	}
	end := off + len(dst)
	for _, g := range s.segs {
		lo, hi := max(off, g.start), min(end, g.start+g.n)
		for p := lo; p < hi; p++ {
			i := p - g.start
			if g.loop {
				i = (g.off + i) % len(g.ids)
			}
			dst[p-off] = g.ids[i]
		}
	}
	return nil
}

// Tokens returns all the sample's tokens.
func (s *Sample) Tokens() []int64 {
	out := make([]int64, s.Len)
	_ = s.Fill(out, 0)
	return out
}

// Chunks streams the sample through one buffer of at most chunk tokens; fn
// must not keep ids after it returns.
func (s *Sample) Chunks(chunk int, fn func(off int, ids []int64) error) error {
	if chunk <= 0 {
		return fmt.Errorf("tasks: chunk size %d: need ≥ 1", chunk)
	}
	buf := make([]int64, min(chunk, s.Len))
	for off := 0; off < s.Len; off += chunk {
		b := buf[:min(chunk, s.Len-off)]
		if err := s.Fill(b, off); err != nil {
			return err
		}
		if err := fn(off, b); err != nil {
			return err
		}
	}
	return nil
}

// Labels writes the sample's next-token labels for positions [off,
// off+len(dst)): at position p−1 the target at p, elsewhere ignore. Training
// puts the loss on the answer tokens only.
func (s *Sample) Labels(dst []int64, off int, ignore int64) {
	for i := range dst {
		dst[i] = ignore
	}
	for _, t := range s.Targets {
		if p := t.Pos - 1 - off; p >= 0 && p < len(dst) {
			dst[p] = t.ID
		}
	}
}
