package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Character classes of GPT-2's pre-tokenisation pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
const (
	clsOther  = iota // [^\s\p{L}\p{N}], and bytes that are not valid UTF-8
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s (Unicode White_Space)
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for c := 0; c < utf8.RuneSelf; c++ {
		asciiClass[c] = runeClass(rune(c))
	}
}

func runeClass(r rune) uint8 {
	switch {
	case unicode.IsSpace(r):
		return clsSpace
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	}
	return clsOther
}

// classAt returns the class and byte length of the character at s[i]. An
// invalid UTF-8 byte is one character of class other.
func classAt(s string, i int) (uint8, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && n <= 1 {
		return clsOther, 1
	}
	return runeClass(r), n
}

// nextPiece returns the end of the pre-token that starts at s[i] (i < len(s)).
// It is the leftmost-first match of the pattern above; the lookahead case
// `\s+(?!\S)` is a whitespace run that gives up its last character when a
// non-space follows, so that character can start the next word (" world").
func nextPiece(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	cls, n := classAt(s, i)
	j := i + n
	if s[i] == ' ' && j < len(s) {
		if c2, n2 := classAt(s, j); c2 != clsSpace {
			cls = c2
			j += n2
		}
	}
	if cls != clsSpace {
		for j < len(s) {
			c, n := classAt(s, j)
			if c != cls {
				break
			}
			j += n
		}
		return j
	}
	last, count := i, 1
	for j < len(s) {
		c, n := classAt(s, j)
		if c != clsSpace {
			break
		}
		last = j
		j += n
		count++
	}
	if j == len(s) || count == 1 {
		return j
	}
	return last
}

// PreTokenize splits text the way GPT-2's pattern does (see the package
// documentation). The pieces concatenate to text.
func PreTokenize(text string) []string {
	var out []string
	for i := 0; i < len(text); {
		j := nextPiece(text, i)
		out = append(out, text[i:j])
		i = j
	}
	return out
}
