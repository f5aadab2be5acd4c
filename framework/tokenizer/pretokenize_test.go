package tokenizer

import (
	"reflect"
	"strings"
	"testing"
)

// The expectations were produced by Python's regex module running GPT-2's
// pattern (see the package doc).
func TestPreTokenize(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", []string{}},
		{"contractions", "I'm sure it's what we've said they'll do, we'd've", []string{"I", "'m", " sure", " it", "'s", " what", " we", "'ve", " said", " they", "'ll", " do", ",", " we", "'d", "'ve"}},
		{"uppercase contraction is not one", "HE'S IT'S I'M", []string{"HE", "'", "S", " IT", "'", "S", " I", "'", "M"}},
		{"apostrophe then letters", "'sup 'twas 'reading", []string{"'s", "up", " '", "twas", " '", "reading"}},
		{"space before apostrophe", "you 're", []string{"you", " '", "re"}},
		{"quotes", "''s '' 'x", []string{"''", "s", " ''", " '", "x"}},
		{"digits", "in 2024 we had 3.14 and 1,000,000 x2 v1", []string{"in", " 2024", " we", " had", " 3", ".", "14", " and", " 1", ",", "000", ",", "000", " x", "2", " v", "1"}},
		{"unicode digits", "x² ½ ٣٤ Ⅻ", []string{"x", "²", " ½", " ٣٤", " Ⅻ"}},
		{"two spaces before word", "a  b", []string{"a", " ", " b"}},
		{"many spaces", "a     b", []string{"a", "    ", " b"}},
		{"space before newline", "a \nb", []string{"a", " ", "\n", "b"}},
		{"spaces before newline", "a   \n  b", []string{"a", "   \n ", " b"}},
		{"trailing spaces", "end   ", []string{"end", "   "}},
		{"leading spaces", "   start", []string{"  ", " start"}},
		{"tabs", "a\tb\t\tc \t d", []string{"a", "\t", "b", "\t", "\t", "c", " \t", " d"}},
		{"only spaces", "    ", []string{"    "}},
		{"newlines", "a\n\n\nb\n", []string{"a", "\n\n", "\n", "b", "\n"}},
		{"crlf", "a\r\nb", []string{"a", "\r", "\n", "b"}},
		{"nbsp and ideographic space", "a\u00a0b\u3000c", []string{"a", "\u00a0", "b", "\u3000", "c"}},
		{"greek cyrillic", "Καλημέρα κόσμε Привет мир", []string{"Καλημέρα", " κόσμε", " Привет", " мир"}},
		{"cjk", "你好，世界。", []string{"你好", "，", "世界", "。"}},
		{"arabic", "مرحبا بالعالم", []string{"مرحبا", " بالعالم"}},
		{"devanagari marks", "नमस्ते", []string{"नमस", "्", "त", "े"}},
		{"emoji", "hi 😀👍🏽 🚀!", []string{"hi", " 😀👍🏽", " 🚀!"}},
		{"zwj sequence", "👨\u200d👩\u200d👧", []string{"👨\u200d👩\u200d👧"}},
		{"combining marks", "e\u0301te\u0301 n\u0303", []string{"e", "\u0301", "te", "\u0301", " n", "\u0303"}},
		{"punctuation runs", "wait...what?! (yes) [no] {x}", []string{"wait", "...", "what", "?!", " (", "yes", ")", " [", "no", "]", " {", "x", "}"}},
		{"space before punctuation", "a , b .", []string{"a", " ,", " b", " ."}},
		{"control characters", "a\x00b\x01 \x1bc\x7f", []string{"a", "\x00", "b", "\x01", " \x1b", "c", "\x7f"}},
		{"mixed letter digit", "abc123def", []string{"abc", "123", "def"}},
		{"url", "http://x.org/a?b=1", []string{"http", "://", "x", ".", "org", "/", "a", "?", "b", "=", "1"}},
		{"underscore", "__init__ snake_case", []string{"__", "init", "__", " snake", "_", "case"}},
		{"invalid utf-8 is other", "a\xff\xfeb \xc3", []string{"a", "\xff\xfe", "b", " \xc3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PreTokenize(c.in)
			if len(got) == 0 && len(c.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("PreTokenize(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if j := strings.Join(got, ""); j != c.in {
				t.Errorf("pieces join to %q, want %q", j, c.in)
			}
		})
	}
}

func TestByteLevelAlphabet(t *testing.T) {
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		r := byteToRune[b]
		if seen[r] {
			t.Fatalf("rune %q used twice", r)
		}
		seen[r] = true
	}
	if byteToRune[' '] != 'Ġ' || byteToRune['\n'] != 'Ċ' || byteToRune['A'] != 'A' || byteToRune[0] != 'Ā' {
		t.Fatalf("byte map differs from GPT-2's: space→%q newline→%q", byteToRune[' '], byteToRune['\n'])
	}
	raw := "a \xff\n"
	back, ok := FromByteLevel(ByteLevel(raw))
	if !ok || string(back) != raw {
		t.Fatalf("FromByteLevel(ByteLevel(%q)) = %q, %v", raw, back, ok)
	}
	if _, ok := FromByteLevel("<s>x€"); ok {
		t.Fatalf("FromByteLevel accepted a character outside the alphabet")
	}
}
