package causal

import (
	"math/rand/v2"
	"slices"
)

// span is a run of key rows: rows row, row+stride, …, cnt of them. Rows index
// the keys and values of one batch row: the carried cache followed by the chunk.
type span struct{ row, cnt, stride, pos int } // pos: the first row's absolute position

// planner is *posPlanner or *lshPlanner: which keys each query sees.
type planner any

// The cache of the softmax patterns holds the positions [0,P) ∪ [base,pos) of
// the tokens seen so far (pos of them), P = min(prefix, base): P rows for the
// prefix (global positions or blocks), then the tail. prefix, base and capacity
// depend only on the options and pos, so the layout of a state is known from
// its pos.

// prefix is the number of leading positions every later token may see.
func (o *options) prefix() int {
	switch o.pattern {
	case Global:
		return o.G
	case BigBird:
		return o.gblocks * o.block
	}
	return 0
}

// base is the first position of the tail the cache keeps after pos tokens.
func (o *options) base(pos int) int {
	switch o.pattern {
	case Window:
		return max(0, pos-o.W)
	case Dilated:
		return max(0, pos-(o.W-1)*o.dil)
	case Global:
		return max(0, pos-(o.W-1))
	case BigBird:
		return max(0, (pos/o.block-o.wblocks-o.reach+1)*o.block)
	}
	return 0 // full, lsh: everything
}

// capacity is the number of cache rows of the declared state, or -1 when the
// cache grows with the sequence (full, lsh).
func (o *options) capacity() int {
	switch o.pattern {
	case Window:
		return o.W
	case Dilated:
		return max(1, (o.W-1)*o.dil)
	case Global:
		return max(1, o.G+o.W-1)
	case BigBird:
		return (o.gblocks + o.wblocks + o.reach) * o.block
	}
	return -1
}

// cacheRows is the number of rows the cache holds after pos tokens.
func (o *options) cacheRows(pos int) int {
	b := o.base(pos)
	return min(o.prefix(), b) + pos - b
}

// posPlanner plans the positional patterns (all but lsh and linear): the same
// keys for every batch row and head.
type posPlanner struct {
	o       *options
	pos0    int // absolute position of the chunk's first token
	P, base int // cache layout (see prefix)
	// need, when set, is the input "rows" [B·Sc]: query blocks with no row
	// > 0.5 are skipped (their attention and log-sum-exp are zero).
	need []float32
}

// skip reports whether the query block qb of batch row b has no needed row.
func (p *posPlanner) skip(b, Sc int, qb qblock) bool {
	if p.need == nil {
		return false
	}
	for i := 0; i < qb.n; i++ {
		if p.need[b*Sc+qb.j0+i*qb.stride] > 0.5 {
			return false
		}
	}
	return true
}

func newPosPlanner(o *options, pos0 int) *posPlanner {
	b := o.base(pos0)
	return &posPlanner{o: o, pos0: pos0, P: min(o.prefix(), b), base: b}
}

// add appends the absolute positions s0, s0+stride, … (cnt) as row spans.
func (p *posPlanner) add(sp []span, s0, cnt, stride int) []span {
	if cnt <= 0 {
		return sp
	}
	if s0 < p.P { // the part below P lies in the prefix rows
		n := min(cnt, (p.P-s0+stride-1)/stride)
		sp = append(sp, span{s0, n, stride, s0})
		s0, cnt = s0+n*stride, cnt-n
		if cnt == 0 {
			return sp
		}
	}
	return append(sp, span{p.P + s0 - p.base, cnt, stride, s0})
}

func (p *posPlanner) keys(_, _, j int, sp []span) []span {
	o, t := p.o, p.pos0+j
	switch o.pattern {
	case Full:
		return p.add(sp, 0, t+1, 1)
	case Window:
		lo := max(0, t-o.W+1)
		return p.add(sp, lo, t+1-lo, 1)
	case Dilated:
		n := min(o.W-1, t/o.dil)
		return p.add(sp, t-n*o.dil, n+1, o.dil)
	case Global:
		lo := max(0, t-o.W+1)
		sp = p.add(sp, 0, min(o.G, lo), 1)
		return p.add(sp, lo, t+1-lo, 1)
	case BigBird:
		var buf [64]int
		blocks := o.bigbirdBlocks(t/o.block, buf[:0])
		for k := 0; k < len(blocks); {
			m := k + 1
			for m < len(blocks) && blocks[m] == blocks[m-1]+1 {
				m++
			}
			lo := blocks[k] * o.block
			hi := min(blocks[m-1]*o.block+o.block, t+1)
			sp = p.add(sp, lo, hi-lo, 1)
			k = m
		}
		return sp
	}
	panic("causal: posPlanner for pattern " + o.pattern)
}

// bigbirdBlocks appends the sorted key blocks of query block i: the global
// blocks, the window blocks i−window_blocks+1…i, and random_blocks blocks
// drawn (by seed and i alone, so chunking cannot change them) from the
// random_reach blocks before the window that are not global.
func (o *options) bigbirdBlocks(i int, dst []int) []int {
	for j := 0; j < min(o.gblocks, i+1); j++ {
		dst = append(dst, j)
	}
	wlo := max(0, i-o.wblocks+1)
	for j := max(wlo, o.gblocks); j <= i; j++ {
		dst = append(dst, j)
	}
	clo, chi := max(o.gblocks, wlo-o.reach), wlo-1 // candidates clo..chi
	if n := chi - clo + 1; n > 0 && o.rblocks > 0 {
		if n <= o.rblocks {
			for j := clo; j <= chi; j++ {
				dst = append(dst, j)
			}
		} else {
			cand := make([]int, n)
			for k := range cand {
				cand[k] = clo + k
			}
			r := rand.New(rand.NewPCG(o.seed, uint64(i)))
			for k := 0; k < o.rblocks; k++ {
				m := k + r.IntN(n-k)
				cand[k], cand[m] = cand[m], cand[k]
				dst = append(dst, cand[k])
			}
		}
	}
	slices.Sort(dst)
	return slices.Compact(dst)
}

// qblock is a block of queries of a chunk: chunk positions j0, j0+stride, …
// (n of them), which share one list of key spans.
type qblock struct{ j0, n, stride int }

// qBlock is the number of queries per block of the blocked kernel.
const qBlock = 64

// qblocks cuts the chunk into query blocks: runs of qBlock consecutive
// queries; bigbird cuts at its block boundaries too; dilated takes every
// dilation-th query, one residue class at a time, so that its keys are a
// single span of stride dilation.
func (p *posPlanner) qblocks(Sc int) []qblock {
	o := p.o
	var qs []qblock
	switch o.pattern {
	case Dilated:
		r := o.dil
		for j := 0; j < min(r, Sc); j++ {
			n := (Sc - j + r - 1) / r
			for i := 0; i < n; i += qBlock {
				qs = append(qs, qblock{j + i*r, min(qBlock, n-i), r})
			}
		}
	case BigBird:
		for j := 0; j < Sc; {
			t := p.pos0 + j
			end := min(Sc, j+(o.block-t%o.block), j+qBlock)
			qs = append(qs, qblock{j, end - j, 1})
			j = end
		}
	default:
		for j := 0; j < Sc; j += qBlock {
			qs = append(qs, qblock{j, min(qBlock, Sc-j), 1})
		}
	}
	return qs
}

// bkeys appends the key spans of a query block: every key any of its queries
// sees (allowed then says which of them each query sees).
func (p *posPlanner) bkeys(qb qblock, sp []span) []span {
	o := p.o
	tf, tl := p.pos0+qb.j0, p.pos0+qb.j0+(qb.n-1)*qb.stride
	switch o.pattern {
	case Full:
		return p.add(sp, 0, tl+1, 1)
	case Window:
		lo := max(0, tf-o.W+1)
		return p.add(sp, lo, tl+1-lo, 1)
	case Global:
		lo := max(0, tf-o.W+1)
		sp = p.add(sp, 0, min(o.G, lo), 1)
		return p.add(sp, lo, tl+1-lo, 1)
	case Dilated:
		start := tf - min(o.W-1, tf/o.dil)*o.dil
		return p.add(sp, start, (tl-start)/o.dil+1, o.dil)
	case BigBird:
		return p.keys(0, 0, qb.j0+(qb.n-1)*qb.stride, sp)
	}
	panic("causal: bkeys for pattern " + o.pattern)
}

// allowed reports whether query position t sees key position s, for a key
// among its block's keys.
func (p *posPlanner) allowed(t, s int) bool {
	o := p.o
	if s > t {
		return false
	}
	switch o.pattern {
	case Window:
		return t-s < o.W
	case Global:
		return s < o.G || t-s < o.W
	case Dilated:
		return (t-s)%o.dil == 0 && (t-s)/o.dil < o.W
	}
	return true // full; bigbird (the block's keys are the query block's)
}
