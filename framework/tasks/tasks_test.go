package tasks

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// byteEnc encodes each byte as its value + 4 (ids 0–3 play the specials).
type byteEnc struct{}

func (byteEnc) Encode(s string) ([]int64, error) {
	out := make([]int64, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int64(s[i]) + 4
	}
	return out, nil
}

func decode(ids []int64) string {
	b := make([]byte, len(ids))
	for i, id := range ids {
		b[i] = byte(id - 4)
	}
	return string(b)
}

func newTask(t *testing.T, name string, seed uint64) *Task {
	t.Helper()
	tk, err := New(name, Options{Seed: seed, Enc: byteEnc{}, Vocab: Vocab{Lo: 4, Hi: 260}})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestDeterministicAndStreaming(t *testing.T) {
	for _, name := range Names {
		for _, length := range []int{600, 4096} {
			a, b, c := newTask(t, name, 7), newTask(t, name, 7), newTask(t, name, 8)
			for row := range a.Rows() {
				sa, err := a.Sample(length, row, 3)
				if err != nil {
					t.Fatalf("%s %d row %d: %v", name, length, row, err)
				}
				sb, _ := b.Sample(length, row, 3)
				sc, _ := c.Sample(length, row, 3)
				so, _ := a.Sample(length, row, 4)
				all := sa.Tokens()
				if sa.Len != length || len(all) != length {
					t.Fatalf("%s: %d tokens, want %d", name, len(all), length)
				}
				if !slices.Equal(all, sb.Tokens()) || !slices.Equal(sa.Targets, sb.Targets) {
					t.Errorf("%s row %d: same seed, different samples", name, row)
				}
				if slices.Equal(all, sc.Tokens()) || slices.Equal(all, so.Tokens()) {
					t.Errorf("%s row %d: another seed or index gives the same sample", name, row)
				}
				for _, chunk := range []int{1, 7, 512, length + 5} {
					var got []int64
					err := sa.Chunks(chunk, func(off int, ids []int64) error {
						if off != len(got) || len(ids) > chunk {
							t.Fatalf("chunk at %d of %d tokens after %d", off, len(ids), len(got))
						}
						got = append(got, ids...)
						return nil
					})
					if err != nil || !slices.Equal(got, all) {
						t.Errorf("%s chunk %d: streamed tokens differ from all at once (%v)", name, chunk, err)
					}
				}
				for _, tg := range sa.Targets {
					if all[tg.Pos] != tg.ID {
						t.Errorf("%s: target at %d is %d, the token there %d", name, tg.Pos, tg.ID, all[tg.Pos])
					}
				}
				tr, err := a.TrainSample(512, 1)
				if err != nil || tr.Len != 512 {
					t.Fatalf("%s train sample: %v", name, err)
				}
				if ev, _ := a.Sample(512, row, 1); slices.Equal(ev.Tokens(), tr.Tokens()) {
					t.Errorf("%s: a training sample equals an evaluation sample", name)
				}
			}
		}
	}
}

func TestPasskeyLayout(t *testing.T) {
	tk := newTask(t, Passkey, 1)
	const length = 2000
	for row, depth := range DefaultDepths {
		s, err := tk.Sample(length, row, 0)
		if err != nil {
			t.Fatal(err)
		}
		all := s.Tokens()
		text := decode(all)
		key := strconv.Itoa(s.Info["key"])
		if len(key) != 5 {
			t.Fatalf("key %q", key)
		}
		needle := " The pass key is " + key + ". Remember it. " + key + " is the pass key."
		np := s.Info["needle_pos"]
		if decode(all[np:np+len(needle)]) != needle || strings.Count(text, "pass key is "+key) != 2 {
			t.Fatalf("depth %v: no needle at %d", depth, np)
		}
		prefix := len(passkeyPrefix)
		filler := length - prefix - len(needle) - len(passkeyQuestion) - 6
		if want := prefix + int(math.Round(depth*float64(filler))); np != want {
			t.Errorf("depth %v: needle at %d, want %d", depth, np, want)
		}
		if !strings.HasPrefix(text, passkeyPrefix) || !strings.HasSuffix(text, passkeyQuestion+" "+key) {
			t.Errorf("depth %v: text does not end with the question and key: %q", depth, text[len(text)-60:])
		}
		if s.Groups != 1 || len(s.Targets) != 6 || s.Targets[0].Pos != length-6 {
			t.Errorf("targets %+v", s.Targets)
		}
		if s.Row != "depth "+strconv.Itoa(int(depth*100))+"%" {
			t.Errorf("row %q", s.Row)
		}
	}
	k3, err := New(Passkey, Options{Enc: byteEnc{}, KeyDigits: 3, Depths: []float64{0.5}, Filler: "Some other words."})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := k3.Sample(500, 0, 0)
	if len(strconv.Itoa(s.Info["key"])) != 3 || !strings.Contains(decode(s.Tokens()), "other words. Some") {
		t.Errorf("key length 3 / file filler not used: %q", decode(s.Tokens()))
	}
	if _, err := tk.Sample(100, 0, 0); err == nil {
		t.Error("passkey in 100 tokens accepted")
	}
	if _, err := New(Passkey, Options{Enc: byteEnc{}, Depths: []float64{1.5}}); err == nil {
		t.Error("depth 150% accepted")
	}
	if _, err := New("bogus", Options{}); err == nil {
		t.Error("unknown task accepted")
	}
}

func TestMQARLayout(t *testing.T) {
	tk := newTask(t, MQAR, 2)
	s, err := tk.Sample(1000, 1, 0) // 16 pairs
	if err != nil {
		t.Fatal(err)
	}
	all := s.Tokens()
	val := map[int64]int64{}
	for i := 0; i < 16; i++ {
		k, v := all[2*i], all[2*i+1]
		if k < 5 || k >= 4+1+127 || v < 4+1+127 {
			t.Fatalf("pair %d: key %d value %d outside their ranges", i, k, v)
		}
		if _, dup := val[k]; dup {
			t.Fatalf("key %d twice", k)
		}
		val[k] = v
	}
	for p := 32; p < 1000-32; p++ {
		if all[p] != 4 {
			t.Fatalf("position %d is %d, not noise", p, all[p])
		}
	}
	if s.Groups != 16 || len(s.Targets) != 16 {
		t.Fatalf("%d groups", s.Groups)
	}
	seen := map[int64]bool{}
	for _, tg := range s.Targets {
		k := all[tg.Pos-1]
		if val[k] != tg.ID || seen[k] {
			t.Errorf("query %d: value %d, want %d", k, tg.ID, val[k])
		}
		seen[k] = true
	}
	if _, err := tk.Sample(100, 2, 0); err == nil {
		t.Error("64 pairs in 100 tokens accepted")
	}
}

func TestSelectiveCopyLayout(t *testing.T) {
	tk := newTask(t, SelectiveCopy, 3)
	s, err := tk.Sample(300, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	all := s.Tokens()
	var content []int64
	for _, id := range all[:300-17] {
		if id != 4 {
			content = append(content, id)
		}
	}
	if all[300-17] != 5 || len(content) != 16 {
		t.Fatalf("marker %d, %d content tokens", all[300-17], len(content))
	}
	for i, tg := range s.Targets {
		if tg.Pos != 300-16+i || tg.ID != content[i] || tg.Group != i {
			t.Errorf("target %d: %+v, want content %d at %d", i, tg, content[i], 300-16+i)
		}
	}
}

// logitsFor returns V=8 logits peaked at id.
func logitsFor(id int) []float32 {
	l := make([]float32, 8)
	l[id] = 5
	return l
}

func TestScorer(t *testing.T) {
	s := &Sample{Len: 6, Groups: 2, Targets: []Target{{Pos: 2, ID: 3, Group: 0}, {Pos: 3, ID: 4, Group: 0}, {Pos: 5, ID: 1, Group: 1}}}
	sc := NewScorer(s)
	for pos, id := range []int{0, 3, 4, 7, 1} { // rows 1, 2 right; row 4 right
		if err := sc.Row(pos, logitsFor(id)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := sc.Score()
	if err != nil || got.Correct != 2 || got.Groups != 2 || got.Targets != 3 {
		t.Fatalf("all right: %+v %v", got, err)
	}
	// −log softmax of the peak: log(e^5 + 7) − 5.
	want := 3 * (math.Log(math.Exp(5)+7) - 5)
	if math.Abs(got.NLL-want) > 1e-5 {
		t.Errorf("nll %v, want %v", got.NLL, want)
	}
	sc = NewScorer(s)
	for pos, id := range []int{0, 3, 5, 7, 1} { // row 2 wrong: group 0 fails
		_ = sc.Row(pos, logitsFor(id))
	}
	if got, _ := sc.Score(); got.Correct != 1 || got.Acc() != 0.5 {
		t.Errorf("one digit wrong: %+v", got)
	}
	sc = NewScorer(s)
	_ = sc.Row(1, logitsFor(3))
	if _, err := sc.Score(); err == nil {
		t.Error("missing rows not reported")
	}
	if err := sc.Row(1, make([]float32, 2)); err == nil {
		t.Error("target outside the logits accepted")
	}
}

func TestLabels(t *testing.T) {
	s := &Sample{Len: 6, Groups: 1, Targets: []Target{{Pos: 4, ID: 9}, {Pos: 5, ID: 8}}}
	got := make([]int64, 4)
	s.Labels(got, 2, -1)
	if !slices.Equal(got, []int64{-1, 9, 8, -1}) {
		t.Errorf("labels %v", got)
	}
}

// TestTrainKeyDigits checks that training keys take every length of
// TrainKeyDigits' range, evaluation keys keep KeyDigits, and a bad range is
// refused.
func TestTrainKeyDigits(t *testing.T) {
	tk, err := New(Passkey, Options{Enc: byteEnc{}, KeyDigits: 5, TrainKeyDigits: [2]int{3, 8}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for i := range 200 {
		s, err := tk.TrainSample(300, i)
		if err != nil {
			t.Fatal(err)
		}
		n := len(strconv.Itoa(s.Info["key"]))
		if n < 3 || n > 8 {
			t.Fatalf("training key %d has %d digits, want 3 to 8", s.Info["key"], n)
		}
		seen[n]++
	}
	if len(seen) != 6 {
		t.Errorf("training key lengths %v: want all of 3 to 8", seen)
	}
	for i := range 20 {
		s, err := tk.Sample(300, 0, i)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strconv.Itoa(s.Info["key"])); n != 5 {
			t.Fatalf("evaluation key %d: %d digits, want 5", s.Info["key"], n)
		}
	}
	for _, r := range [][2]int{{0, 3}, {4, 3}, {2, 19}} {
		if _, err := New(Passkey, Options{Enc: byteEnc{}, TrainKeyDigits: r}); err == nil {
			t.Errorf("TrainKeyDigits %v accepted", r)
		}
	}
}
