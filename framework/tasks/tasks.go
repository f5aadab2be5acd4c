package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

// Task names.
const (
	Passkey       = "passkey"
	MQAR          = "mqar"
	SelectiveCopy = "selective_copy"
)

// Names lists the tasks, in table order.
var Names = []string{Passkey, MQAR, SelectiveCopy}

// Encoder turns text into token ids without framing (<s> … </s>).
type Encoder interface {
	Encode(text string) ([]int64, error)
}

// Vocab is the id range [Lo, Hi) the token-level tasks (MQAR, selective copy)
// draw from; it must hold no special token the loss ignores.
type Vocab struct{ Lo, Hi int64 }

// Options configure the tasks; zero values take the defaults.
type Options struct {
	Seed  uint64
	Vocab Vocab   // MQAR, selective copy
	Enc   Encoder // passkey
	// Passkey.
	KeyDigits int // digits of the key (default 5)
	// TrainKeyDigits, when its upper bound is > 0, is the range of key
	// lengths training samples draw from (uniformly, bounds included);
	// evaluation keeps KeyDigits.
	TrainKeyDigits [2]int
	Filler         string    // filler text, its whitespace runs made single spaces; "" = BuiltinFiller
	Depths         []float64 // evaluation rows: needle depth as a fraction in [0, 1] (default 0, .25, .5, .75, 1)
	// MQAR: evaluation rows (numbers of key–value pairs); training draws from them.
	Pairs []int // default 4, 16, 64
	// Selective copying.
	CopyTokens int // content tokens to copy (default 16)
	CopyVocab  int // distinct content tokens (default 16)
}

// BuiltinFiller is the passkey filler of LongLoRA and landmark attention.
const BuiltinFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

const (
	passkeyPrefix   = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information there."
	passkeyQuestion = " What is the pass key? The pass key is"
	// MaxFillerBytes bounds the filler text used (it cycles): 512 KiB is
	// hundreds of thousands of tokens, far more than 32k.
	MaxFillerBytes = 512 << 10
)

// Defaults.
var (
	DefaultDepths = []float64{0, 0.25, 0.5, 0.75, 1}
	DefaultPairs  = []int{4, 16, 64}
)

// Task is one configured task generator.
type Task struct {
	name string
	o    Options
	rows []string
	// passkey: tokenised pieces
	prefix, question, filler []int64
}

// New returns the named task. The passkey needs o.Enc; MQAR and selective
// copying need o.Vocab.
func New(name string, o Options) (*Task, error) {
	t := &Task{name: name, o: o}
	switch name {
	case Passkey:
		if o.Enc == nil {
			return nil, fmt.Errorf("tasks: passkey needs a tokenizer")
		}
		if t.o.KeyDigits == 0 {
			t.o.KeyDigits = 5
		}
		if t.o.KeyDigits < 1 || t.o.KeyDigits > 18 {
			return nil, fmt.Errorf("tasks: passkey key length %d: want 1 to 18 digits", t.o.KeyDigits)
		}
		if lo, hi := t.o.TrainKeyDigits[0], t.o.TrainKeyDigits[1]; hi != 0 && (lo < 1 || lo > hi || hi > 18) {
			return nil, fmt.Errorf("tasks: passkey training key lengths %d to %d: want 1 ≤ from ≤ to ≤ 18 digits", lo, hi)
		}
		if len(t.o.Depths) == 0 {
			t.o.Depths = DefaultDepths
		}
		for _, d := range t.o.Depths {
			if !(d >= 0 && d <= 1) {
				return nil, fmt.Errorf("tasks: passkey depth %v: want a fraction in [0, 1]", d)
			}
			t.rows = append(t.rows, fmt.Sprintf("depth %s%%", strconv.FormatFloat(d*100, 'f', -1, 64)))
		}
		filler := t.o.Filler
		if strings.TrimSpace(filler) == "" {
			filler = BuiltinFiller
		}
		if len(filler) > MaxFillerBytes {
			filler = filler[:MaxFillerBytes]
		}
		var err error
		if t.prefix, err = encode(o.Enc, passkeyPrefix); err != nil {
			return nil, err
		}
		if t.question, err = encode(o.Enc, passkeyQuestion); err != nil {
			return nil, err
		}
		// A leading space joins the cycle's end to its start as a word break.
		if t.filler, err = encode(o.Enc, " "+strings.Join(strings.Fields(filler), " ")); err != nil {
			return nil, err
		}
	case MQAR:
		if len(t.o.Pairs) == 0 {
			t.o.Pairs = DefaultPairs
		}
		keys := (o.Vocab.Hi - o.Vocab.Lo - 1) / 2
		for _, p := range t.o.Pairs {
			if p < 1 || int64(p) > keys {
				return nil, fmt.Errorf("tasks: mqar with %d pairs: want 1 to %d (the vocabulary range [%d, %d) gives %d distinct keys)", p, keys, o.Vocab.Lo, o.Vocab.Hi, keys)
			}
			t.rows = append(t.rows, fmt.Sprintf("pairs %d", p))
		}
	case SelectiveCopy:
		if t.o.CopyTokens == 0 {
			t.o.CopyTokens = 16
		}
		if t.o.CopyVocab == 0 {
			t.o.CopyVocab = 16
		}
		if t.o.CopyTokens < 1 || t.o.CopyVocab < 2 {
			return nil, fmt.Errorf("tasks: selective copy of %d tokens from %d: want ≥ 1 token and ≥ 2 symbols", t.o.CopyTokens, t.o.CopyVocab)
		}
		if o.Vocab.Hi-o.Vocab.Lo < int64(t.o.CopyVocab)+2 {
			return nil, fmt.Errorf("tasks: selective copy needs %d ids (noise, marker, %d symbols); the vocabulary range [%d, %d) is too small", t.o.CopyVocab+2, t.o.CopyVocab, o.Vocab.Lo, o.Vocab.Hi)
		}
		t.rows = []string{fmt.Sprintf("%d tokens", t.o.CopyTokens)}
	default:
		return nil, fmt.Errorf("tasks: unknown task %q (valid: %s)", name, strings.Join(Names, ", "))
	}
	return t, nil
}

func encode(enc Encoder, s string) ([]int64, error) {
	ids, err := enc.Encode(s)
	if err != nil {
		return nil, fmt.Errorf("tasks: tokenising %q: %w", s, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("tasks: %q encodes to no tokens", s)
	}
	return ids, nil
}

// Name is the task's name.
func (t *Task) Name() string { return t.name }

// Rows are the evaluation rows (passkey depths, MQAR pair counts, one row for
// selective copying).
func (t *Task) Rows() []string { return append([]string(nil), t.rows...) }

// Random streams: training and evaluation never share one.
const (
	streamTrain = 0x7a1
	streamEval  = 0xe7a1
)

func (t *Task) rng(stream uint64, length, row, index int) *rand.Rand {
	h := mix(mix(mix(stream^uint64(length))^uint64(row)) ^ uint64(index))
	return rand.New(rand.NewPCG(t.o.Seed, h))
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Sample returns evaluation sample index of the given row at length tokens.
func (t *Task) Sample(length, row, index int) (*Sample, error) {
	if row < 0 || row >= len(t.rows) {
		return nil, fmt.Errorf("tasks: %s has rows 0 … %d, not %d", t.name, len(t.rows)-1, row)
	}
	rng := t.rng(streamEval, length, row, index)
	var s *Sample
	var err error
	switch t.name {
	case Passkey:
		s, err = t.passkey(rng, length, t.o.Depths[row], t.o.KeyDigits)
	case MQAR:
		s, err = t.mqar(rng, length, t.o.Pairs[row])
	default:
		s, err = t.selectiveCopy(rng, length)
	}
	if err != nil {
		return nil, err
	}
	s.Row = t.rows[row]
	return s, nil
}

// TrainSample returns training sample index at length tokens: the passkey at a
// uniformly drawn depth, MQAR with a pair count drawn from those that fit.
func (t *Task) TrainSample(length, index int) (*Sample, error) {
	rng := t.rng(streamTrain, length, 0, index)
	switch t.name {
	case Passkey:
		depth, digits := rng.Float64(), t.o.KeyDigits
		if lo, hi := t.o.TrainKeyDigits[0], t.o.TrainKeyDigits[1]; hi > 0 {
			digits = lo + rng.IntN(hi-lo+1)
		}
		return t.passkey(rng, length, depth, digits)
	case MQAR:
		var fit []int
		for _, p := range t.o.Pairs {
			if 4*p <= length {
				fit = append(fit, p)
			}
		}
		if len(fit) == 0 {
			return nil, fmt.Errorf("tasks: mqar: no pair count of %v fits in %d tokens (need 4 per pair)", t.o.Pairs, length)
		}
		return t.mqar(rng, length, fit[rng.IntN(len(fit))])
	default:
		return t.selectiveCopy(rng, length)
	}
}

// passkey: prefix, filler, the needle at depth·(filler length), filler, the
// question, the key (the targets: one group).
func (t *Task) passkey(rng *rand.Rand, length int, depth float64, digits int) (*Sample, error) {
	key := strconv.Itoa(1 + rng.IntN(9))
	for i := 1; i < digits; i++ {
		key += strconv.Itoa(rng.IntN(10))
	}
	needle, err := encode(t.o.Enc, " The pass key is "+key+". Remember it. "+key+" is the pass key.")
	if err != nil {
		return nil, err
	}
	answer, err := encode(t.o.Enc, " "+key)
	if err != nil {
		return nil, err
	}
	fixed := len(t.prefix) + len(needle) + len(t.question) + len(answer)
	nf := length - fixed
	if nf < 0 {
		return nil, fmt.Errorf("tasks: passkey needs at least %d tokens (prefix, needle, question and key), not %d", fixed, length)
	}
	before := int(math.Round(depth * float64(nf)))
	off := rng.IntN(len(t.filler))
	s := &Sample{Groups: 1, Info: map[string]int{}}
	b := builder{s}
	b.fixed(t.prefix)
	b.cycle(t.filler, off, before)
	s.Info["needle_pos"] = b.fixed(needle)
	s.Info["needle_len"] = len(needle)
	b.cycle(t.filler, off+before, nf-before)
	s.Info["question_pos"] = b.fixed(t.question)
	p := b.fixed(answer)
	s.Info["key"], _ = strconv.Atoi(key)
	for i, id := range answer {
		s.Targets = append(s.Targets, Target{Pos: p + i, ID: id})
	}
	return s, nil
}

// mqar: pairs key–value pairs, noise, then every key again (in random order)
// followed by its value; each query's value is a target group.
func (t *Task) mqar(rng *rand.Rand, length, pairs int) (*Sample, error) {
	if 4*pairs > length {
		return nil, fmt.Errorf("tasks: mqar with %d pairs needs at least %d tokens, not %d", pairs, 4*pairs, length)
	}
	v := t.o.Vocab
	noise := v.Lo
	nk := (v.Hi - v.Lo - 1) / 2
	keyLo, valLo := v.Lo+1, v.Lo+1+nk
	nv := v.Hi - valLo
	// Distinct keys (Floyd's sampling: memory in the pairs, not the range).
	chosen := map[int64]bool{}
	keys := make([]int64, 0, pairs)
	for j := nk - int64(pairs); j < nk; j++ {
		k := rng.Int64N(j + 1)
		if chosen[k] {
			k = j
		}
		chosen[k] = true
		keys = append(keys, keyLo+k)
	}
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	vals := make([]int64, pairs)
	kv := make([]int64, 0, 2*pairs)
	for i, k := range keys {
		vals[i] = valLo + rng.Int64N(nv)
		kv = append(kv, k, vals[i])
	}
	order := rng.Perm(pairs)
	q := make([]int64, 0, 2*pairs)
	for _, i := range order {
		q = append(q, keys[i], vals[i])
	}
	s := &Sample{Groups: pairs, Info: map[string]int{"pairs": pairs}}
	b := builder{s}
	b.fixed(kv)
	b.cycle([]int64{noise}, 0, length-4*pairs)
	p := b.fixed(q)
	s.Info["query_pos"] = p
	for j := range order {
		s.Targets = append(s.Targets, Target{Pos: p + 2*j + 1, ID: q[2*j+1], Group: j})
	}
	return s, nil
}

// selectiveCopy: CopyTokens content tokens at random positions among noise,
// a marker, then the content tokens in order (each one a target group).
func (t *Task) selectiveCopy(rng *rand.Rand, length int) (*Sample, error) {
	c := t.o.CopyTokens
	region := length - 1 - c
	if region < c {
		return nil, fmt.Errorf("tasks: selective copy of %d tokens needs at least %d tokens, not %d", c, 2*c+1, length)
	}
	noise, marker, lo := t.o.Vocab.Lo, t.o.Vocab.Lo+1, t.o.Vocab.Lo+2
	chosen := map[int]bool{}
	pos := make([]int, 0, c)
	for j := region - c; j < region; j++ {
		k := rng.IntN(j + 1)
		if chosen[k] {
			k = j
		}
		chosen[k] = true
		pos = append(pos, k)
	}
	sort.Ints(pos)
	content := make([]int64, c)
	for i := range content {
		content[i] = lo + rng.Int64N(int64(t.o.CopyVocab))
	}
	s := &Sample{Groups: c, Info: map[string]int{}}
	b := builder{s}
	noiseTok := []int64{noise}
	prev := 0
	for i, p := range pos {
		b.cycle(noiseTok, 0, p-prev)
		b.fixed(content[i : i+1])
		prev = p + 1
	}
	b.cycle(noiseTok, 0, region-prev)
	s.Info["marker_pos"] = b.fixed([]int64{marker})
	p := b.fixed(content)
	for i, id := range content {
		s.Targets = append(s.Targets, Target{Pos: p + i, ID: id, Group: i})
	}
	s.Info["first_content_pos"] = pos[0]
	return s, nil
}
