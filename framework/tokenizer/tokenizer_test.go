package tokenizer

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// tinyVocab and tinyMerges are small enough to derive ids by hand:
//
//	"hello":  h e l l o → (h,e) rank 0 → he l l o → (l,l) → he ll o
//	          → (he,ll) → hell o → (hell,o) → hello = 17
//	" world": Ġ w o r l d → (Ġ,w) → Ġw o r l d → (o,r) → Ġw or l d
//	          → (Ġw,or) → Ġwor l d = 18 6 11
var tinyVocab = map[string]int{
	"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3,
	"h": 4, "e": 5, "l": 6, "o": 7, "Ġ": 8, "w": 9, "r": 10, "d": 11,
	"he": 12, "ll": 13, "hell": 14, "Ġw": 15, "or": 16, "hello": 17, "Ġwor": 18,
	"<mask>": 19,
}

var tinyMerges = [][2]string{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"Ġ", "w"}, {"o", "r"}, {"hell", "o"}, {"Ġw", "or"}}

func tiny(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := New(tinyVocab, tinyMerges)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTinyVocab(t *testing.T) {
	tok := tiny(t)
	cases := []struct {
		in      string
		special bool
		want    []int
	}{
		{"hello world", false, []int{17, 18, 6, 11}},
		{"hello world", true, []int{0, 17, 18, 6, 11, 2}},
		{"", true, []int{0, 2}},
		{"", false, []int{}},
		{"hel", false, []int{12, 6}},
		{"llo", false, []int{13, 7}},
		{"hex", false, []int{12, 3}},           // x is not in the vocab: <unk>
		{"hello <mask>", false, []int{17, 19}}, // <mask> swallows the space before it
		{"hello<mask> ", false, []int{17, 19, 8}},
		{"<s>hello</s>", false, []int{0, 17, 2}},
		{"<s<s>", false, []int{3, 3, 0}}, // "<" and "s" are unknown bytes
		{"<pad><unk>", false, []int{1, 3}},
	}
	for _, c := range cases {
		e, err := tok.EncodeWith(c.in, Options{AddSpecialTokens: c.special})
		if err != nil {
			t.Fatal(err)
		}
		if len(e.IDs) != 0 || len(c.want) != 0 {
			if !reflect.DeepEqual(e.IDs, c.want) {
				t.Errorf("encode(%q, special=%v) = %v, want %v", c.in, c.special, e.IDs, c.want)
			}
		}
	}
	if got := tok.Encode("hello world"); !reflect.DeepEqual(got, []int{0, 17, 18, 6, 11, 2}) {
		t.Errorf("Encode = %v", got)
	}
	want := SpecialIDs{BOS: 0, EOS: 2, Pad: 1, Unk: 3, Mask: 19}
	if got := tok.Specials(); got != want {
		t.Errorf("Specials = %+v, want %+v", got, want)
	}
	if tok.VocabSize() != 20 {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
}

func TestOffsetsAndMasks(t *testing.T) {
	tok := tiny(t)
	e, err := tok.EncodeWith("hello world <mask>", Options{AddSpecialTokens: true, MaxLength: 9, Padding: PadToMaxLength})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []int{0, 17, 18, 6, 11, 19, 2, 1, 1}
	wantOffs := [][2]int{{0, 0}, {0, 5}, {5, 9}, {9, 10}, {10, 11}, {11, 18}, {0, 0}, {0, 0}, {0, 0}}
	if !reflect.DeepEqual(e.IDs, wantIDs) || !reflect.DeepEqual(e.Offsets, wantOffs) {
		t.Fatalf("got ids %v offsets %v", e.IDs, e.Offsets)
	}
	if !reflect.DeepEqual(e.AttentionMask, []int{1, 1, 1, 1, 1, 1, 1, 0, 0}) {
		t.Errorf("attention mask %v", e.AttentionMask)
	}
	if !reflect.DeepEqual(e.SpecialTokensMask, []int{1, 0, 0, 0, 0, 1, 1, 1, 1}) {
		t.Errorf("special tokens mask %v", e.SpecialTokensMask)
	}
}

func TestTruncationAndPairs(t *testing.T) {
	tok := tiny(t)
	e, err := tok.EncodeWith("hello world hello", Options{AddSpecialTokens: true, MaxLength: 4, Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.IDs, []int{0, 17, 18, 2}) {
		t.Errorf("truncated = %v", e.IDs)
	}
	p, err := tok.EncodePair("hello", "hello world", Options{AddSpecialTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 17, 2, 2, 17, 18, 6, 11, 2}; !reflect.DeepEqual(p.IDs, want) {
		t.Errorf("pair = %v, want %v", p.IDs, want)
	}
	// longest_first: content 1 + 4 must fit 6-4 = 2; B loses three tokens.
	p, err = tok.EncodePair("hello", "hello world", Options{AddSpecialTokens: true, MaxLength: 6, Truncate: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 17, 2, 2, 17, 2}; !reflect.DeepEqual(p.IDs, want) {
		t.Errorf("truncated pair = %v, want %v", p.IDs, want)
	}
	if _, err := tok.EncodeWith("x", Options{AddSpecialTokens: true, MaxLength: 1, Truncate: true}); err == nil {
		t.Error("max length below the framing: no error")
	}
	if _, err := tok.EncodeWith("x", Options{Padding: PadToMaxLength}); err == nil {
		t.Error("padding to max length without one: no error")
	}
	if _, err := tok.EncodeWith("x", Options{MaxLength: -1}); err == nil {
		t.Error("negative max length: no error")
	}
}

func TestEncodeBatch(t *testing.T) {
	tok := Default()
	texts := []string{"a", "", "The model learns the hidden state.", "ok <mask> then"}
	batch, err := tok.EncodeBatch(texts, Options{AddSpecialTokens: true, Padding: PadToLongest})
	if err != nil {
		t.Fatal(err)
	}
	longest := 0
	for i, s := range texts {
		one := tok.Encode(s)
		longest = max(longest, len(one))
		if !reflect.DeepEqual(batch[i].IDs[:len(one)], one) {
			t.Errorf("batch[%d] = %v, want prefix %v", i, batch[i].IDs, one)
		}
		for k := len(one); k < len(batch[i].IDs); k++ {
			if batch[i].IDs[k] != tok.Specials().Pad || batch[i].AttentionMask[k] != 0 {
				t.Errorf("batch[%d] not padded at %d", i, k)
			}
		}
	}
	for i := range batch {
		if len(batch[i].IDs) != longest {
			t.Errorf("batch[%d] has length %d, want %d", i, len(batch[i].IDs), longest)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := Default()
	for _, s := range []string{"", "plain text", "a\xff\xfe invalid \xc3", "tabs\tand\nnewlines  ", "日本語 😀"} {
		ids := tok.Encode(s)
		got, err := tok.Decode(ids, true)
		if err != nil || got != s {
			t.Errorf("Decode(Encode(%q), true) = %q, %v", s, got, err)
		}
		got, err = tok.Decode(ids, false)
		if err != nil || got != "<s>"+s+"</s>" {
			t.Errorf("Decode(Encode(%q), false) = %q, %v", s, got, err)
		}
	}
	if _, err := tok.Decode([]int{5, DefaultVocabSize}, false); err == nil || !strings.Contains(err.Error(), "position 1") {
		t.Errorf("decoding an id out of range: err = %v", err)
	}
	if _, err := tok.Decode([]int{-1}, false); err == nil {
		t.Error("decoding -1: no error")
	}
}

// TestHFReference compares with ids that Hugging Face tokenizers 0.23.2 (the
// Rust library behind the fast LED/BART/RoBERTa tokenizers) produced for the
// built-in vocabulary with RoBERTa's post-processor and <mask> lstrip=true.
// testdata/hf_default_tokenizer.json is the tokenizer.json it saved.
func TestHFReference(t *testing.T) {
	fromJSON, err := LoadJSON(filepath.Join("testdata", "hf_default_tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "hf_reference.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var row struct {
			Text string `json:"text"`
			IDs  []int  `json:"ids"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]*Tokenizer{"Default": Default(), "LoadJSON": fromJSON} {
			if got := tok.Encode(row.Text); !reflect.DeepEqual(got, row.IDs) {
				t.Errorf("%s: Encode(%q)\n got %v\nwant %v", name, row.Text, got, row.IDs)
			}
		}
		n++
	}
	if n < 100 {
		t.Fatalf("only %d reference rows", n)
	}
}

func TestMergeHeapMatchesSimple(t *testing.T) {
	tok := Default()
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "e", "t", "h", "n", "s", "r", "o", "i", "l", "ü", "я"}
	for trial := 0; trial < 300; trial++ {
		var b strings.Builder
		for n := 1 + r.IntN(200); n > 0; n-- {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		w := b.String()
		var ids, lens []int32
		for k := 0; k < len(w); k++ {
			ids = append(ids, tok.model.byteIDs[w[k]])
			lens = append(lens, 1)
		}
		ids2, lens2 := append([]int32(nil), ids...), append([]int32(nil), lens...)
		a, al := tok.model.mergeSimple(ids, lens, 0)
		h, hl := tok.model.mergeHeap(ids2, lens2, 0)
		if !reflect.DeepEqual(a, h) || !reflect.DeepEqual(al, hl) {
			t.Fatalf("word %q: simple %v, heap %v", w, a, h)
		}
	}
}

func TestLongAndOddInputs(t *testing.T) {
	tok := Default()
	long := strings.Repeat("the quick brown fox ", 20000) + strings.Repeat("z", 100000) + strings.Repeat(" ", 5000)
	for _, s := range []string{long, "\x00\x01\x02\x1f\x7f", strings.Repeat("\xff", 1000), "<s></s><pad><unk><mask>"} {
		got, err := tok.Decode(tok.Encode(s), true)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, "<") {
			continue // special tokens are skipped by Decode
		}
		if got != s {
			t.Errorf("round trip of a %d-byte input failed", len(s))
		}
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok, err := New(tinyVocab, tinyMerges)
	if err != nil {
		t.Fatal(err)
	}
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = strings.Repeat("hello world ", i%7) + string(rune('a'+i%26))
	}
	batch, err := tok.EncodeBatch(texts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		e, _ := tok.EncodeWith(s, Options{})
		if !reflect.DeepEqual(e.IDs, batch[i].IDs) {
			t.Fatalf("text %d: batch %v, single %v", i, batch[i].IDs, e.IDs)
		}
	}
}

// FuzzRoundTrip checks decode(encode(s)) == s for valid UTF-8 without
// special tokens, with the built-in vocabulary.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", " ", "hello world", "I'M here, it's 2024!", "a  \n\t b  ", "Καλημέρα 你好 😀👍🏽", "e\u0301\u0303", "\x00\x1b[0m", "x²½", strings.Repeat("ab", 100)} {
		f.Add(s)
	}
	tok := Default()
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		for _, a := range tok.AddedTokens() {
			if strings.Contains(s, a.Content) {
				t.Skip()
			}
		}
		e, err := tok.EncodeWith(s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := tok.Decode(e.IDs, false)
		if err != nil {
			t.Fatal(err)
		}
		if got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		end := 0
		for i, o := range e.Offsets {
			if o[0] != end || o[1] <= o[0] {
				t.Fatalf("offset %d = %v does not continue at %d", i, o, end)
			}
			end = o[1]
		}
		if end != len(s) {
			t.Fatalf("offsets cover %d of %d bytes", end, len(s))
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	tok := Default()
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok.Encode(text)
	}
}

// BenchmarkEncodeCold measures encoding without the word cache's help.
func BenchmarkEncodeCold(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "corpus.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	b.SetBytes(int64(len(text)))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tok, err := Parse("vocab.json", defaultVocab, "merges.txt", defaultMerges)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		tok.Encode(text)
	}
}
