package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps the position of every key private (MetaData only exposes
// positions inside its ParseError), so keyLines re-reads the source to find the
// line each key is written on. It runs only on text toml.Decode has accepted, so
// it can be lenient: it tracks table headers, dotted and quoted keys, inline
// tables and arrays, and skips strings and comments.

// keySep joins the segments of a key path in the map keyLines returns; it cannot
// occur in a TOML key that matters to us.
const keySep = "\x00"

// joinKey is the map key of a path; elements of arrays are "#i" segments.
func joinKey(path []string) string { return strings.Join(path, keySep) }

type lineScanner struct {
	src   string
	pos   int
	line  int
	lines map[string]int
	// aot holds the current index of each array of tables ([[x]]), by the path
	// of the array with indexes of enclosing arrays.
	aot map[string]int
}

// keyLines maps every key path in src (see joinKey) to the line it is first
// written on (1-based).
func keyLines(src []byte) map[string]int {
	s := &lineScanner{src: string(src), line: 1, lines: map[string]int{}, aot: map[string]int{}}
	s.document()
	return s.lines
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.src) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.pos]
}

func (s *lineScanner) advance() {
	if s.src[s.pos] == '\n' {
		s.line++
	}
	s.pos++
}

func (s *lineScanner) record(path []string) {
	k := joinKey(path)
	if _, ok := s.lines[k]; !ok {
		s.lines[k] = s.line
	}
}

// skipSpace skips blanks and, when newlines is set, newlines and comments.
func (s *lineScanner) skipSpace(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case newlines && c == '\n':
			s.advance()
		case newlines && c == '#':
			for !s.eof() && s.peek() != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *lineScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *lineScanner) document() {
	var table []string
	for {
		s.skipSpace(true)
		if s.eof() {
			return
		}
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			table = s.header(s.key(), array)
			s.skipLine()
			continue
		}
		before := s.pos
		s.keyValue(table)
		if s.pos == before { // not a key: never loop forever on odd input
			s.advance()
		}
		s.skipLine()
	}
}

// header resolves a table header to its path, inserting the current index of
// every array of tables it passes through, and records each prefix.
func (s *lineScanner) header(key []string, array bool) []string {
	var path, plain []string
	for i, seg := range key {
		path = append(path, seg)
		plain = append(plain, seg)
		s.record(path)
		last := i == len(key)-1
		k := joinKey(plain)
		if last && array {
			idx, ok := s.aot[k]
			if ok {
				idx++
			}
			s.aot[k] = idx
			path = append(path, "#"+strconv.Itoa(idx))
			s.record(path)
			continue
		}
		if idx, ok := s.aot[k]; ok {
			path = append(path, "#"+strconv.Itoa(idx))
		}
	}
	return path
}

func (s *lineScanner) keyValue(prefix []string) {
	key := s.key()
	if len(key) == 0 {
		return
	}
	path := append(append([]string(nil), prefix...), key[0])
	s.record(path)
	for _, seg := range key[1:] {
		path = append(path, seg)
		s.record(path)
	}
	s.skipSpace(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skipSpace(false)
	s.value(path)
}

// key reads a dotted key of bare and quoted segments.
func (s *lineScanner) key() []string {
	var segs []string
	for {
		s.skipSpace(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			segs = append(segs, s.quoted())
		case isBare(c):
			start := s.pos
			for !s.eof() && isBare(s.peek()) {
				s.advance()
			}
			segs = append(segs, s.src[start:s.pos])
		default:
			return segs
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return segs
		}
		s.advance()
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// quoted reads a single-line string and returns its text; escapes other than
// \" and \\ are kept as written (keys of interest never use them).
func (s *lineScanner) quoted() string {
	q := s.peek()
	s.advance()
	var b strings.Builder
	for !s.eof() && s.peek() != q && s.peek() != '\n' {
		c := s.peek()
		if c == '\\' && q == '"' && s.pos+1 < len(s.src) {
			s.advance()
			c = s.peek()
		}
		b.WriteByte(c)
		s.advance()
	}
	if s.peek() == q {
		s.advance()
	}
	return b.String()
}

// value skips a value, recording the keys of inline tables inside it.
func (s *lineScanner) value(path []string) {
	switch c := s.peek(); c {
	case '"', '\'':
		if delim := string([]byte{c, c, c}); strings.HasPrefix(s.src[s.pos:], delim) {
			p := s.pos + 3
			for p < len(s.src) && !strings.HasPrefix(s.src[p:], delim) {
				if c == '"' && s.src[p] == '\\' {
					p++
				}
				p++
			}
			// The closing delimiter is the last three of a run of quotes.
			for p+3 < len(s.src) && s.src[p+3] == c {
				p++
			}
			end := min(p+3, len(s.src))
			s.line += strings.Count(s.src[s.pos:end], "\n")
			s.pos = end
			return
		}
		s.quoted()
	case '{':
		s.advance()
		for {
			s.skipSpace(false)
			if s.eof() || s.peek() == '}' || s.peek() == '\n' {
				break
			}
			before := s.pos
			s.keyValue(path)
			s.skipSpace(false)
			if s.peek() == ',' {
				s.advance()
			} else if s.pos == before {
				break
			}
		}
		if s.peek() == '}' {
			s.advance()
		}
	case '[':
		s.advance()
		for i := 0; ; i++ {
			s.skipSpace(true)
			if s.eof() || s.peek() == ']' {
				break
			}
			elem := append(append([]string(nil), path...), "#"+strconv.Itoa(i))
			s.record(elem)
			before := s.pos
			s.value(elem)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance()
			} else if s.pos == before {
				break
			}
		}
		if s.peek() == ']' {
			s.advance()
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.advance()
		}
	}
}
