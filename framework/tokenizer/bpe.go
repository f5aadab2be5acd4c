package tokenizer

import (
	"container/heap"
	"sync"
)

// merge is one entry of merges.txt: the pair (left, right) with this rank
// becomes token id.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpe is the merge table over token ids.
type bpe struct {
	merges  map[uint64]merge
	byteIDs [256]int32 // id of each byte's single-character token, -1 if absent
	unk     int32      // id for a byte missing from the vocab, -1 to drop it
	// ignoreMerges returns a word found whole in the vocab as that token
	// (tokenizer.json "ignore_merges"); vocab is consulted only then.
	ignoreMerges bool
	vocab        map[string]int

	mu    sync.RWMutex
	cache map[string][]int32 // word → ids followed by byte lengths
}

const (
	cacheMaxEntries = 1 << 16
	cacheMaxWord    = 128 // longer words are not cached
	heapThreshold   = 64  // words with more bytes merge with a heap
)

// word appends the ids and byte lengths of the pre-token w (raw bytes).
func (m *bpe) word(w string, ids, lens []int32) ([]int32, []int32) {
	if len(w) <= cacheMaxWord {
		m.mu.RLock()
		v, ok := m.cache[w]
		m.mu.RUnlock()
		if ok {
			n := len(v) / 2
			return append(ids, v[:n]...), append(lens, v[n:]...)
		}
	}
	i0 := len(ids)
	if m.ignoreMerges {
		if id, ok := m.vocab[ByteLevel(w)]; ok {
			ids = append(ids, int32(id))
			lens = append(lens, int32(len(w)))
			return ids, lens
		}
	}
	for k := 0; k < len(w); k++ {
		id := m.byteIDs[w[k]]
		if id < 0 {
			if m.unk < 0 {
				continue
			}
			id = m.unk
		}
		ids = append(ids, id)
		lens = append(lens, 1)
	}
	if len(w) > heapThreshold {
		ids, lens = m.mergeHeap(ids, lens, i0)
	} else {
		ids, lens = m.mergeSimple(ids, lens, i0)
	}
	if len(w) <= cacheMaxWord {
		n := len(ids) - i0
		v := make([]int32, 2*n)
		copy(v, ids[i0:])
		copy(v[n:], lens[i0:])
		m.mu.Lock()
		if len(m.cache) < cacheMaxEntries {
			m.cache[w] = v
		}
		m.mu.Unlock()
	}
	return ids, lens
}

// mergeSimple applies merges to ids[i0:] as GPT-2's encoder.py does: find the
// lowest-ranked adjacent pair, merge all its occurrences left to right, repeat.
func (m *bpe) mergeSimple(ids, lens []int32, i0 int) ([]int32, []int32) {
	s, l := ids[i0:], lens[i0:]
	for len(s) > 1 {
		best := merge{rank: -1}
		var a, b int32
		for i := 0; i+1 < len(s); i++ {
			if mg, ok := m.merges[pairKey(s[i], s[i+1])]; ok && (best.rank < 0 || mg.rank < best.rank) {
				best, a, b = mg, s[i], s[i+1]
			}
		}
		if best.rank < 0 {
			break
		}
		w := 0
		for r := 0; r < len(s); {
			if r+1 < len(s) && s[r] == a && s[r+1] == b {
				s[w], l[w] = best.id, l[r]+l[r+1]
				r += 2
			} else {
				s[w], l[w] = s[r], l[r]
				r++
			}
			w++
		}
		s, l = s[:w], l[:w]
	}
	return ids[:i0+len(s)], lens[:i0+len(l)]
}

type heapItem struct {
	rank, id int32
	pos      int32
}

type mergeHeap []heapItem

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(heapItem)) }
func (h *mergeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeHeap gives the same result as mergeSimple in O(n log n): pairs wait in
// a queue ordered by (rank, position) and stale entries are skipped, as in the
// Hugging Face tokenizers crate.
func (m *bpe) mergeHeap(ids, lens []int32, i0 int) ([]int32, []int32) {
	s, l := ids[i0:], lens[i0:]
	n := len(s)
	prev := make([]int32, n)
	next := make([]int32, n)
	for i := range s {
		prev[i], next[i] = int32(i-1), int32(i+1)
	}
	if n > 0 {
		next[n-1] = -1
	}
	h := make(mergeHeap, 0, n)
	for i := 0; i+1 < n; i++ {
		if mg, ok := m.merges[pairKey(s[i], s[i+1])]; ok {
			h = append(h, heapItem{mg.rank, mg.id, int32(i)})
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		top := heap.Pop(&h).(heapItem)
		p := top.pos
		if l[p] == 0 || next[p] < 0 {
			continue
		}
		q := next[p]
		if mg, ok := m.merges[pairKey(s[p], s[q])]; !ok || mg.id != top.id || mg.rank != top.rank {
			continue
		}
		s[p] = top.id
		l[p] += l[q]
		l[q] = 0
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if pp := prev[p]; pp >= 0 {
			if mg, ok := m.merges[pairKey(s[pp], s[p])]; ok {
				heap.Push(&h, heapItem{mg.rank, mg.id, pp})
			}
		}
		if nn := next[p]; nn >= 0 {
			if mg, ok := m.merges[pairKey(s[p], s[nn])]; ok {
				heap.Push(&h, heapItem{mg.rank, mg.id, p})
			}
		}
	}
	w := 0
	for i := int32(0); n > 0 && i >= 0; i = next[i] {
		s[w], l[w] = s[i], l[i]
		w++
	}
	return ids[:i0+w], lens[:i0+w]
}
