package tokenizer

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched whole in the input before pre-tokenisation
// (the special tokens, and tokenizer.json's added_tokens).
type AddedToken struct {
	ID      int
	Content string
	// Special tokens are left out by Decode(ids, true).
	Special bool
	// LStrip and RStrip swallow the whitespace before / after the token
	// (RoBERTa's and BART's <mask> has LStrip).
	LStrip, RStrip bool
}

// SpecialIDs are the ids of the conventional special tokens, -1 when the
// vocabulary has none.
type SpecialIDs struct {
	BOS, EOS, Pad, Unk, Mask int
}

// piece of a framing template: a special token id, or sequence 0 / 1 (A / B).
type piece struct {
	special int
	seq     int // 0 or 1 when special < 0
}

// Tokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab     map[string]int
	tokens    []string // id → token as spelled in the vocab; "" for unused ids
	model     *bpe
	added     []AddedToken // longest content first
	addedByID map[int]int  // id → index in added
	firstByte [256]bool    // first bytes of added tokens' contents

	addPrefixSpace bool
	useRegex       bool
	specials       SpecialIDs
	single, pair   []piece
}

// Padding selects how EncodeWith and EncodeBatch pad.
type Padding int

const (
	// NoPadding leaves encodings at their own length.
	NoPadding Padding = iota
	// PadToMaxLength pads every encoding to Options.MaxLength.
	PadToMaxLength
	// PadToLongest pads every encoding of a batch to the longest one.
	PadToLongest
)

// Options control EncodeWith, EncodePair and EncodeBatch. The zero value
// encodes without framing, truncation or padding.
type Options struct {
	// AddSpecialTokens frames the ids: <s> A </s>, or <s> A </s></s> B </s>
	// for a pair (whatever the loaded files define; see the package doc).
	AddSpecialTokens bool
	// MaxLength bounds the length with framing included when Truncate is set,
	// and is the target of PadToMaxLength. 0 means no bound.
	MaxLength int
	// Truncate cuts content tokens (never framing) to fit MaxLength; for a
	// pair the longer sequence loses a token first ("longest_first").
	Truncate bool
	Padding  Padding
}

// Encoding is one encoded text.
type Encoding struct {
	IDs []int
	// AttentionMask is 1 for real tokens and 0 for padding.
	AttentionMask []int
	// Offsets are [start, end) byte offsets into the input (for a pair, into
	// the text the token came from). Framing and padding tokens have [0, 0].
	Offsets [][2]int
	// SpecialTokensMask is 1 for framing, padding and special added tokens.
	SpecialTokensMask []int
}

// VocabSize is one more than the largest token id (the embedding size a
// model needs).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Specials returns the ids of <s>, </s>, <pad>, <unk> and <mask>.
func (t *Tokenizer) Specials() SpecialIDs { return t.specials }

// AddedTokens returns a copy of the tokens matched whole in text.
func (t *Tokenizer) AddedTokens() []AddedToken { return append([]AddedToken(nil), t.added...) }

// TokenID returns the id of a token spelled as in the vocab (byte-level,
// e.g. "Ġworld").
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	id, ok := t.vocab[tok]
	return id, ok
}

// Token returns the vocab spelling of id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// IsSpecial reports whether id is a special token (skipped by Decode).
func (t *Tokenizer) IsSpecial(id int) bool {
	k, ok := t.addedByID[id]
	return ok && t.added[k].Special
}

// Encode returns the ids of text framed by the special tokens (<s> … </s>
// for BART files), without truncation or padding.
func (t *Tokenizer) Encode(text string) []int {
	e, _ := t.EncodeWith(text, Options{AddSpecialTokens: true})
	return e.IDs
}

// EncodeWith encodes one text. The error reports invalid options only.
func (t *Tokenizer) EncodeWith(text string, opt Options) (Encoding, error) {
	return t.encode([]string{text}, opt)
}

// EncodePair encodes a pair of texts as one sequence.
func (t *Tokenizer) EncodePair(a, b string, opt Options) (Encoding, error) {
	return t.encode([]string{a, b}, opt)
}

// EncodeBatch encodes texts in parallel; with PadToLongest all encodings are
// padded to the longest.
func (t *Tokenizer) EncodeBatch(texts []string, opt Options) ([]Encoding, error) {
	out := make([]Encoding, len(texts))
	if err := t.checkOptions(opt, 1); err != nil {
		return nil, err
	}
	inner := opt
	if opt.Padding == PadToLongest {
		inner.Padding = NoPadding
	}
	if err := t.checkOptions(inner, 1); err != nil {
		return nil, err
	}
	workers := min(runtime.GOMAXPROCS(0), len(texts))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], _ = t.encode([]string{texts[i]}, inner)
			}
		}()
	}
	for i := range texts {
		next <- i
	}
	close(next)
	wg.Wait()
	if opt.Padding == PadToLongest {
		longest := 0
		for _, e := range out {
			longest = max(longest, len(e.IDs))
		}
		for i := range out {
			t.pad(&out[i], longest)
		}
	}
	return out, nil
}

func (t *Tokenizer) checkOptions(opt Options, nseq int) error {
	if opt.MaxLength < 0 {
		return fmt.Errorf("tokenizer: max length %d is negative", opt.MaxLength)
	}
	if opt.Padding != NoPadding && t.specials.Pad < 0 {
		return fmt.Errorf("tokenizer: cannot pad: the vocabulary has no <pad>, </s> or <|endoftext|>")
	}
	if opt.Padding == PadToMaxLength && opt.MaxLength == 0 {
		return fmt.Errorf("tokenizer: padding to max length needs a max length")
	}
	if opt.Truncate && opt.MaxLength > 0 && opt.AddSpecialTokens {
		if n := t.numFraming(nseq); n > opt.MaxLength {
			return fmt.Errorf("tokenizer: max length %d is shorter than the %d framing tokens", opt.MaxLength, n)
		}
	}
	return nil
}

func (t *Tokenizer) numFraming(nseq int) int {
	tpl := t.single
	if nseq == 2 {
		tpl = t.pair
	}
	n := 0
	for _, p := range tpl {
		if p.special >= 0 {
			n++
		}
	}
	return n
}

type seqEnc struct {
	ids, offs []int32 // offs: start, end pairs
	special   []bool
}

func (t *Tokenizer) encode(texts []string, opt Options) (Encoding, error) {
	if err := t.checkOptions(opt, len(texts)); err != nil {
		return Encoding{}, err
	}
	seqs := make([]seqEnc, len(texts))
	for i, s := range texts {
		seqs[i] = t.encodeText(s)
	}
	if opt.Truncate && opt.MaxLength > 0 {
		budget := opt.MaxLength
		if opt.AddSpecialTokens {
			budget -= t.numFraming(len(texts))
		}
		keep := make([]int, len(seqs))
		total := 0
		for i := range seqs {
			keep[i] = len(seqs[i].ids)
			total += keep[i]
		}
		for ; total > budget; total-- {
			// longest_first: the longer sequence loses a token, the second on a tie.
			if len(keep) == 1 || keep[0] > keep[1] {
				keep[0]--
			} else {
				keep[1]--
			}
		}
		for i := range seqs {
			s := &seqs[i]
			s.ids, s.offs, s.special = s.ids[:keep[i]], s.offs[:2*keep[i]], s.special[:keep[i]]
		}
	}
	tpl := []piece{{-1, 0}, {-1, 1}}[:len(texts)]
	if opt.AddSpecialTokens {
		tpl = t.single
		if len(texts) == 2 {
			tpl = t.pair
		}
	}
	n := 0
	for _, p := range tpl {
		if p.special >= 0 {
			n++
		} else {
			n += len(seqs[p.seq].ids)
		}
	}
	e := Encoding{
		IDs:               make([]int, 0, n),
		AttentionMask:     make([]int, 0, n),
		Offsets:           make([][2]int, 0, n),
		SpecialTokensMask: make([]int, 0, n),
	}
	for _, p := range tpl {
		if p.special >= 0 {
			e.IDs = append(e.IDs, p.special)
			e.Offsets = append(e.Offsets, [2]int{})
			e.SpecialTokensMask = append(e.SpecialTokensMask, 1)
			e.AttentionMask = append(e.AttentionMask, 1)
			continue
		}
		s := seqs[p.seq]
		for k, id := range s.ids {
			e.IDs = append(e.IDs, int(id))
			e.Offsets = append(e.Offsets, [2]int{int(s.offs[2*k]), int(s.offs[2*k+1])})
			sp := 0
			if s.special[k] {
				sp = 1
			}
			e.SpecialTokensMask = append(e.SpecialTokensMask, sp)
			e.AttentionMask = append(e.AttentionMask, 1)
		}
	}
	if opt.Padding == PadToMaxLength {
		t.pad(&e, opt.MaxLength)
	}
	return e, nil
}

// pad extends e to n tokens with the pad id (see the package doc for files
// without <pad>).
func (t *Tokenizer) pad(e *Encoding, n int) {
	for len(e.IDs) < n {
		e.IDs = append(e.IDs, t.specials.Pad)
		e.AttentionMask = append(e.AttentionMask, 0)
		e.Offsets = append(e.Offsets, [2]int{})
		e.SpecialTokensMask = append(e.SpecialTokensMask, 1)
	}
}

// encodeText encodes one text without framing.
func (t *Tokenizer) encodeText(text string) seqEnc {
	var s seqEnc
	ids := make([]int32, 0, len(text)/3+4)
	lens := make([]int32, 0, cap(ids))
	pos := 0 // start of the text not yet encoded
	emit := func(seg string, base int) {
		i0 := len(ids)
		prefix := false
		if t.addPrefixSpace && len(seg) > 0 && seg[0] != ' ' {
			seg = " " + seg
			prefix = true
		}
		if t.useRegex {
			for i := 0; i < len(seg); {
				j := nextPiece(seg, i)
				ids, lens = t.model.word(seg[i:j], ids, lens)
				i = j
			}
		} else if len(seg) > 0 {
			ids, lens = t.model.word(seg, ids, lens)
		}
		off := base
		if prefix {
			off-- // the added space takes no input bytes
		}
		for k := i0; k < len(ids); k++ {
			start := max(off, base)
			off += int(lens[k])
			s.offs = append(s.offs, int32(start), int32(max(off, base)))
			s.special = append(s.special, false)
		}
	}
	for len(t.added) > 0 {
		m, ok := t.findAdded(text, pos)
		if !ok {
			break
		}
		emit(text[pos:m.start], pos)
		ids = append(ids, int32(t.added[m.k].ID))
		lens = append(lens, 0)
		s.offs = append(s.offs, int32(m.start), int32(m.end))
		s.special = append(s.special, t.added[m.k].Special)
		pos = m.end
	}
	emit(text[pos:], pos)
	s.ids = ids
	return s
}

type addedMatch struct {
	k          int // index in t.added
	start, end int // span in text, stripped whitespace included
	tokStart   int
}

// findAdded finds the leftmost-longest added token in text[from:], extending
// the match over whitespace for LStrip (not before from) and RStrip.
func (t *Tokenizer) findAdded(text string, from int) (addedMatch, bool) {
	for i := from; i < len(text); i++ {
		if !t.firstByte[text[i]] {
			continue
		}
		for k := range t.added {
			a := &t.added[k]
			if !strings.HasPrefix(text[i:], a.Content) {
				continue
			}
			m := addedMatch{k: k, start: i, end: i + len(a.Content), tokStart: i}
			if a.LStrip {
				for m.start > from {
					r, n := utf8.DecodeLastRuneInString(text[from:m.start])
					if !unicode.IsSpace(r) || (r == utf8.RuneError && n <= 1) {
						break
					}
					m.start -= n
				}
			}
			if a.RStrip {
				for m.end < len(text) {
					r, n := utf8.DecodeRuneInString(text[m.end:])
					if !unicode.IsSpace(r) || (r == utf8.RuneError && n <= 1) {
						break
					}
					m.end += n
				}
			}
			return m, true
		}
	}
	return addedMatch{}, false
}

// Decode turns ids back into text: byte-level tokens give back their exact
// bytes (so invalid UTF-8 survives a round trip), added tokens their content.
// With skipSpecial, special tokens are left out. An id outside the vocab is an
// error.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	var b strings.Builder
	for i, id := range ids {
		if k, ok := t.addedByID[id]; ok {
			if skipSpecial && t.added[k].Special {
				continue
			}
			b.WriteString(t.added[k].Content)
			continue
		}
		tok, ok := t.Token(id)
		if !ok {
			return "", fmt.Errorf("tokenizer: decode: id %d at position %d is not in the vocabulary (size %d)", id, i, len(t.tokens))
		}
		for _, r := range tok {
			if c, in := runeToByte[r]; in {
				b.WriteByte(c)
			} else {
				b.WriteRune(r)
			}
		}
	}
	return b.String(), nil
}

// sortAdded orders added tokens longest first so the first match at a
// position is the longest, and indexes them.
func (t *Tokenizer) sortAdded() {
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].Content) > len(t.added[j].Content) })
	t.addedByID = make(map[int]int, len(t.added))
	t.firstByte = [256]bool{}
	kept := t.added[:0]
	for _, a := range t.added {
		if a.Content == "" {
			continue
		}
		kept = append(kept, a)
	}
	t.added = kept
	for k, a := range t.added {
		t.addedByID[a.ID] = k
		t.firstByte[a.Content[0]] = true
	}
}
