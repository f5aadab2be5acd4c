package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// maxID bounds token ids read from files, so a corrupt id cannot make us
// allocate gigabytes.
const maxID = 1 << 24

// Well-known special token strings.
const (
	BOSToken        = "<s>"
	PadToken        = "<pad>"
	EOSToken        = "</s>"
	UnkToken        = "<unk>"
	MaskToken       = "<mask>"
	EndOfTextToken  = "<|endoftext|>"
	mergesHeaderTag = "#version"
)

// Load reads a vocab.json and merges.txt pair (the GPT-2, RoBERTa, BART and
// LED layout). Special tokens follow the BART convention described in the
// package documentation.
func Load(vocabPath, mergesPath string) (*Tokenizer, error) {
	vdata, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: reading vocab: %w", err)
	}
	mdata, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: reading merges: %w", err)
	}
	return Parse(vocabPath, vdata, mergesPath, mdata)
}

// Parse is Load on file contents; the names are used in error messages.
func Parse(vocabName string, vocabJSON []byte, mergesName string, mergesTxt []byte) (*Tokenizer, error) {
	vocab, err := parseVocab(vocabName, vocabJSON)
	if err != nil {
		return nil, err
	}
	merges, err := parseMergesTxt(mergesName, mergesTxt)
	if err != nil {
		return nil, err
	}
	t, err := New(vocab, merges)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", vocabName, mergesName, err)
	}
	return t, nil
}

// LoadDir loads dir/tokenizer.json if it exists, else dir/vocab.json with
// dir/merges.txt.
func LoadDir(dir string) (*Tokenizer, error) {
	tj := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(tj); err == nil {
		return LoadJSON(tj)
	}
	v, m := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	_, verr := os.Stat(v)
	_, merr := os.Stat(m)
	if verr == nil && merr == nil {
		return Load(v, m)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("tokenizer: %s is not a directory", dir)
	}
	return nil, fmt.Errorf("tokenizer: %s has neither tokenizer.json nor vocab.json with merges.txt", dir)
}

// New builds a tokenizer from a vocabulary (byte-level token → id) and merges
// in rank order, with the BART conventions for special tokens. Every merge's
// parts and result must be in the vocabulary.
func New(vocab map[string]int, merges [][2]string) (*Tokenizer, error) {
	t, err := newBase(vocab, merges, "")
	if err != nil {
		return nil, err
	}
	for _, s := range []string{BOSToken, PadToken, EOSToken, UnkToken, MaskToken, EndOfTextToken} {
		if id, ok := vocab[s]; ok {
			// BART's and RoBERTa's tokenizers create <mask> with lstrip.
			t.added = append(t.added, AddedToken{ID: id, Content: s, Special: true, LStrip: s == MaskToken})
		}
	}
	t.sortAdded()
	t.specials = SpecialIDs{BOS: t.lookup(BOSToken), EOS: t.lookup(EOSToken), Pad: t.lookup(PadToken), Unk: t.lookup(UnkToken), Mask: t.lookup(MaskToken)}
	t.model.unk = int32(t.specials.Unk)
	t.defaultFraming()
	return t, nil
}

func (t *Tokenizer) lookup(s string) int {
	for _, a := range t.added {
		if a.Content == s {
			return a.ID
		}
	}
	if id, ok := t.vocab[s]; ok {
		return id
	}
	return -1
}

// defaultFraming uses <s> and </s> where they exist (none for GPT-2 files, as
// GPT-2's own tokenizers add none) and picks a pad id.
func (t *Tokenizer) defaultFraming() {
	bos, eos := t.specials.BOS, t.specials.EOS
	var single, pair []piece
	if bos >= 0 {
		single = append(single, piece{bos, 0})
		pair = append(pair, piece{bos, 0})
	}
	single = append(single, piece{-1, 0})
	pair = append(pair, piece{-1, 0})
	if eos >= 0 {
		single = append(single, piece{eos, 0})
		pair = append(pair, piece{eos, 0}, piece{eos, 0})
	}
	pair = append(pair, piece{-1, 1})
	if eos >= 0 {
		pair = append(pair, piece{eos, 0})
	}
	t.single, t.pair = single, pair
	t.fallbackPad()
}

func (t *Tokenizer) fallbackPad() {
	if t.specials.Pad < 0 {
		t.specials.Pad = t.specials.EOS
	}
	if t.specials.Pad < 0 {
		t.specials.Pad = t.lookup(EndOfTextToken)
	}
}

// newBase builds vocab, id table and merge table; name prefixes errors about
// merges.
func newBase(vocab map[string]int, merges [][2]string, name string) (*Tokenizer, error) {
	t := &Tokenizer{vocab: vocab, useRegex: true}
	size := 0
	for tok, id := range vocab {
		if id < 0 || id >= maxID {
			return nil, fmt.Errorf("vocab: token %q has id %d outside [0, %d)", tok, id, maxID)
		}
		size = max(size, id+1)
	}
	t.tokens = make([]string, size)
	for tok, id := range vocab {
		if tok == "" {
			return nil, fmt.Errorf("vocab: empty token with id %d", id)
		}
		if prev := t.tokens[id]; prev != "" {
			a, b := min(prev, tok), max(prev, tok)
			return nil, fmt.Errorf("vocab: id %d is used by both %q and %q", id, a, b)
		}
		t.tokens[id] = tok
	}
	m := &bpe{merges: make(map[uint64]merge, len(merges)), unk: -1, vocab: vocab, cache: map[string][]int32{}}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := vocab[byteString[b]]; ok {
			m.byteIDs[b] = int32(id)
		}
	}
	for r, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		c, okC := vocab[mg[0]+mg[1]]
		switch {
		case !okA:
			return nil, fmt.Errorf("%smerge %d (%q %q): %q is not in the vocab", name, r+1, mg[0], mg[1], mg[0])
		case !okB:
			return nil, fmt.Errorf("%smerge %d (%q %q): %q is not in the vocab", name, r+1, mg[0], mg[1], mg[1])
		case !okC:
			return nil, fmt.Errorf("%smerge %d (%q %q): the merged token %q is not in the vocab", name, r+1, mg[0], mg[1], mg[0]+mg[1])
		}
		m.merges[pairKey(int32(a), int32(b))] = merge{rank: int32(r), id: int32(c)}
	}
	t.model = m
	return t, nil
}

func parseVocab(name string, data []byte) (map[string]int, error) {
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, jsonError(data, err))
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("tokenizer: %s: the vocab is empty", name)
	}
	return vocab, nil
}

// parseMergesTxt reads "left right" lines, skipping "#version" lines and
// blank lines.
func parseMergesTxt(name string, data []byte) ([][2]string, error) {
	var merges [][2]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), len(data)+1)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || strings.HasPrefix(s, mergesHeaderTag) {
			continue
		}
		parts := strings.Split(s, " ")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("tokenizer: %s:%d: want two tokens separated by one space, got %q", name, line, s)
		}
		merges = append(merges, [2]string{parts[0], parts[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	return merges, nil
}

// jsonError adds the line and column to a JSON syntax error.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var off int64
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		return err
	}
	off = min(off, int64(len(data)))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(data[:off], '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}

// tokenizerJSON is the part of a Hugging Face tokenizer.json we read.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID         *int   `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         *struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		Dropout                 *float64        `json:"dropout"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
	} `json:"model"`
}

type component struct {
	Type           string            `json:"type"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	PreTokenizers  []json.RawMessage `json:"pretokenizers"`
	Processors     []json.RawMessage `json:"processors"`
	Sep            []any             `json:"sep"`
	Cls            []any             `json:"cls"`
	Single         []map[string]struct {
		ID string `json:"id"`
	} `json:"single"`
	Pair []map[string]struct {
		ID string `json:"id"`
	} `json:"pair"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// LoadJSON reads a Hugging Face tokenizer.json whose model is a byte-level
// BPE (GPT-2, RoBERTa, BART, LED).
func LoadJSON(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: reading tokenizer.json: %w", err)
	}
	return ParseJSON(path, data)
}

// ParseJSON is LoadJSON on file contents; name is used in error messages.
func ParseJSON(name string, data []byte) (*Tokenizer, error) {
	fail := func(format string, args ...any) (*Tokenizer, error) {
		return nil, fmt.Errorf("tokenizer: %s: "+format, append([]any{name}, args...)...)
	}
	var tj tokenizerJSON
	if err := json.Unmarshal(data, &tj); err != nil {
		return fail("%w", jsonError(data, err))
	}
	if tj.Model == nil {
		return fail("no \"model\" section")
	}
	if tj.Model.Type != "BPE" && tj.Model.Type != "" {
		return fail("model type %q is not supported (want \"BPE\")", tj.Model.Type)
	}
	if len(tj.Model.Vocab) == 0 {
		return fail("model.vocab is missing or empty")
	}
	md := tj.Model
	if (md.ContinuingSubwordPrefix != nil && *md.ContinuingSubwordPrefix != "") || (md.EndOfWordSuffix != nil && *md.EndOfWordSuffix != "") {
		return fail("BPE with continuing_subword_prefix or end_of_word_suffix is not byte-level BPE and is not supported")
	}
	if md.ByteFallback {
		return fail("BPE with byte_fallback is not supported")
	}
	if md.Dropout != nil && *md.Dropout != 0 {
		return fail("BPE dropout %g is not supported (encoding would be random)", *md.Dropout)
	}
	if !isNull(tj.Normalizer) {
		var c component
		_ = json.Unmarshal(tj.Normalizer, &c)
		return fail("normalizer %q is not supported (byte-level BPE files have none)", c.Type)
	}
	merges, err := parseJSONMerges(tj.Model.Merges)
	if err != nil {
		return fail("model.merges: %w", jsonError(tj.Model.Merges, err))
	}
	t, err := newBase(tj.Model.Vocab, merges, "model.")
	if err != nil {
		return fail("%w", err)
	}
	t.model.ignoreMerges = md.IgnoreMerges
	for i, a := range tj.AddedTokens {
		if a.ID == nil || *a.ID < 0 || *a.ID >= maxID {
			return fail("added_tokens[%d] (%q): missing or invalid id", i, a.Content)
		}
		if a.Content == "" {
			return fail("added_tokens[%d]: empty content", i)
		}
		id := *a.ID
		if id >= len(t.tokens) {
			t.tokens = append(t.tokens, make([]string, id+1-len(t.tokens))...)
		}
		if t.tokens[id] == "" {
			t.tokens[id] = a.Content
		}
		t.added = append(t.added, AddedToken{ID: id, Content: a.Content, Special: a.Special, LStrip: a.LStrip, RStrip: a.RStrip})
	}
	t.sortAdded()
	if err := t.readPreTokenizer(tj.PreTokenizer); err != nil {
		return fail("pre_tokenizer: %w", err)
	}
	t.specials = SpecialIDs{BOS: t.lookup(BOSToken), EOS: t.lookup(EOSToken), Pad: t.lookup(PadToken), Unk: t.lookup(UnkToken), Mask: t.lookup(MaskToken)}
	if md.UnkToken != nil {
		id, ok := t.vocab[*md.UnkToken]
		if !ok {
			return fail("model.unk_token %q is not in the vocab", *md.UnkToken)
		}
		t.model.unk = int32(id)
		t.specials.Unk = id
	}
	t.single = []piece{{-1, 0}}
	t.pair = []piece{{-1, 0}, {-1, 1}}
	if err := t.readPostProcessor(tj.PostProcessor); err != nil {
		return fail("post_processor: %w", err)
	}
	t.fallbackPad()
	return t, nil
}

func parseJSONMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			parts := strings.Split(s, " ")
			if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
				return nil, fmt.Errorf("entry %d: want \"left right\", got %q", i, s)
			}
			out[i] = [2]string{parts[0], parts[1]}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("want a list of \"left right\" strings or [left, right] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 || p[0] == "" || p[1] == "" {
			return nil, fmt.Errorf("entry %d: want [left, right], got %q", i, p)
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func (t *Tokenizer) readPreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("missing; a byte-level BPE needs a ByteLevel pre-tokenizer")
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	switch c.Type {
	case "ByteLevel":
		if c.AddPrefixSpace != nil {
			t.addPrefixSpace = *c.AddPrefixSpace
		}
		if c.UseRegex != nil {
			t.useRegex = *c.UseRegex
		}
		return nil
	case "Sequence":
		if len(c.PreTokenizers) == 1 {
			return t.readPreTokenizer(c.PreTokenizers[0])
		}
		return fmt.Errorf("a Sequence of %d pre-tokenizers is not supported (want one ByteLevel)", len(c.PreTokenizers))
	}
	return fmt.Errorf("type %q is not supported (want ByteLevel)", c.Type)
}

// readPostProcessor sets the framing templates.
func (t *Tokenizer) readPostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	tokID := func(field string, v []any) (int, error) {
		if len(v) != 2 {
			return 0, fmt.Errorf("%s: want [token, id]", field)
		}
		f, ok := v[1].(float64)
		if !ok || f < 0 || f >= maxID || f != float64(int(f)) {
			return 0, fmt.Errorf("%s: bad id %v", field, v[1])
		}
		return int(f), nil
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "RobertaProcessing", "BertProcessing":
		cls, err := tokID("cls", c.Cls)
		if err != nil {
			return err
		}
		sep, err := tokID("sep", c.Sep)
		if err != nil {
			return err
		}
		t.specials.BOS, t.specials.EOS = cls, sep
		t.single = []piece{{cls, 0}, {-1, 0}, {sep, 0}}
		t.pair = []piece{{cls, 0}, {-1, 0}, {sep, 0}, {sep, 0}, {-1, 1}, {sep, 0}}
		if c.Type == "BertProcessing" {
			t.pair = []piece{{cls, 0}, {-1, 0}, {sep, 0}, {-1, 1}, {sep, 0}}
		}
		return nil
	case "TemplateProcessing":
		conv := func(field string, items []map[string]struct {
			ID string `json:"id"`
		}) ([]piece, error) {
			var out []piece
			for i, it := range items {
				if s, ok := it["Sequence"]; ok {
					switch s.ID {
					case "A":
						out = append(out, piece{-1, 0})
					case "B":
						out = append(out, piece{-1, 1})
					default:
						return nil, fmt.Errorf("%s[%d]: sequence %q (want A or B)", field, i, s.ID)
					}
					continue
				}
				if s, ok := it["SpecialToken"]; ok {
					st, ok := c.SpecialTokens[s.ID]
					if !ok {
						return nil, fmt.Errorf("%s[%d]: special token %q missing from special_tokens", field, i, s.ID)
					}
					for _, id := range st.IDs {
						out = append(out, piece{id, 0})
					}
					continue
				}
				return nil, fmt.Errorf("%s[%d]: want Sequence or SpecialToken", field, i)
			}
			return out, nil
		}
		single, err := conv("single", c.Single)
		if err != nil {
			return err
		}
		pair, err := conv("pair", c.Pair)
		if err != nil {
			return err
		}
		t.single, t.pair = single, pair
		return nil
	case "Sequence":
		for i, p := range c.Processors {
			if err := t.readPostProcessor(p); err != nil {
				return fmt.Errorf("processors[%d]: %w", i, err)
			}
		}
		return nil
	}
	return fmt.Errorf("type %q is not supported", c.Type)
}

// sortedVocab lists tokens by id.
func sortedVocab(vocab map[string]int) []string {
	toks := make([]string, 0, len(vocab))
	for tok := range vocab {
		toks = append(toks, tok)
	}
	sort.Slice(toks, func(i, j int) bool { return vocab[toks[i]] < vocab[toks[j]] })
	return toks
}
