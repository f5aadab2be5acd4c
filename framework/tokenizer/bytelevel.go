package tokenizer

import "unicode/utf8"

// byteToRune is GPT-2's bytes_to_unicode table: printable Latin-1 bytes map to
// themselves, the other 68 bytes to U+0100.. in byte order, so every byte has a
// visible, non-space character and vocab files stay plain JSON text.
var byteToRune [256]rune

// runeToByte inverts byteToRune; -1 where a rune is not in the alphabet.
var runeToByte = map[rune]byte{}

// byteOrder lists the bytes in GPT-2's table order ("!".."~", "¡".."¬",
// "®".."ÿ", then the rest), the order in which GPT-2's vocab lists them.
var byteOrder [256]byte

// byteString[b] is the UTF-8 encoding of byteToRune[b].
var byteString [256]string

func init() {
	n := 0
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	k := 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteToRune[b] = rune(b)
			byteOrder[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		if !printable(b) {
			byteToRune[b] = rune(256 + n)
			n++
			byteOrder[k] = byte(b)
			k++
		}
	}
	for b := 0; b < 256; b++ {
		runeToByte[byteToRune[b]] = byte(b)
		byteString[b] = string(byteToRune[b])
	}
}

// ByteLevel maps raw bytes to GPT-2's byte-level alphabet (the form in which
// vocab.json and merges.txt spell tokens).
func ByteLevel(raw string) string {
	buf := make([]byte, 0, 2*len(raw))
	for i := 0; i < len(raw); i++ {
		buf = utf8.AppendRune(buf, byteToRune[raw[i]])
	}
	return string(buf)
}

// FromByteLevel maps a byte-level token string back to raw bytes. ok is false
// if tok contains a character outside the byte-level alphabet.
func FromByteLevel(tok string) (raw []byte, ok bool) {
	raw = make([]byte, 0, len(tok))
	for _, r := range tok {
		b, in := runeToByte[r]
		if !in {
			return raw, false
		}
		raw = append(raw, b)
	}
	return raw, true
}
