// Package data turns text into training batches: a built-in generator of
// structured synthetic English (so experiments run with nothing downloaded), or
// text files and directories given by path; the seed's timestamps; labels for the
// seed's copy objective or for next-token prediction.
//
// Everything is seeded: the same seed gives the same corpus, split and batches.
package data

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Encoder turns text into token ids (without <s> … </s> framing).
type Encoder interface {
	Encode(text string) ([]int64, error)
}

// Corpus is a tokenised text split into fixed-length training and validation
// sequences.
type Corpus struct {
	SeqLen       int
	Train, Valid [][]int64
	Source       string // what it was made from, for the results
	// TrainLabels and ValidLabels, when not nil, are the labels of each
	// sequence (a generated task's answers; the ignore id elsewhere), used
	// instead of the objective's labels.
	TrainLabels, ValidLabels [][]int64
	// Bytes is the UTF-8 size of the text the sequences were cut from (0 when
	// not known), so losses can be given in bits per byte.
	TrainBytes, ValidBytes int64
	// MinSeqLen and TrainAt, when TrainAt is not nil, replace Train and
	// TrainLabels: each training step draws a length from MinSeqLen to
	// SeqLen and asks TrainAt for fresh sequences of that length (index
	// counts the sequences handed out so far, from 0).
	MinSeqLen int
	TrainAt   func(length, index int) (ids, labels []int64, err error)
}

// BatchLabels returns the labels of a batch whose row i is sequence picked[i]
// of the training (valid false) or validation split: the corpus's own labels
// when it has them, else Labels(objective, …).
func (c *Corpus) BatchLabels(objective string, valid bool, picked []int, ids []int64, b, s int, ignore int64) ([]int64, error) {
	labs := c.TrainLabels
	if valid {
		labs = c.ValidLabels
	}
	if labs == nil {
		return Labels(objective, ids, b, s, ignore)
	}
	if len(picked) != b {
		return nil, fmt.Errorf("data: %d sequences picked for a batch of %d", len(picked), b)
	}
	out := make([]int64, b*s)
	for i, k := range picked {
		copy(out[i*s:(i+1)*s], labs[k])
	}
	return out, nil
}

// Options control how a corpus is made.
type Options struct {
	Source        string  // "builtin", "goroot" or a path to a .txt file or a directory of them
	SeqLen        int     // tokens per sequence
	ValidFraction float64 // share of sequences held out
	Seed          uint64
	BuiltinTokens int // approximate corpus size of the built-in generator (default 200k tokens)
	// MaxBytes bounds the text read from Source: a file (0: DefaultMaxBytes) or
	// the "goroot" source's training text (0: DefaultGoRootBytes; the validation
	// text gets MaxBytes·ValidFraction).
	MaxBytes int64
}

// DefaultMaxBytes is Options.MaxBytes when not set: 1 GiB, as data.max_bytes.
const DefaultMaxBytes = 1 << 30

// Load makes a corpus.
func Load(enc Encoder, o Options) (*Corpus, error) {
	if o.SeqLen < 2 {
		return nil, fmt.Errorf("data: seq_len %d: need at least 2", o.SeqLen)
	}
	var text string
	switch o.Source {
	case SourceGoRoot:
		return loadGoRoot(enc, o)
	case "", "builtin":
		n := o.BuiltinTokens
		if n <= 0 {
			n = 200_000
		}
		text = Generate(o.Seed, n)
		o.Source = "builtin"
	default:
		var err error
		maxBytes := o.MaxBytes
		if maxBytes <= 0 {
			maxBytes = DefaultMaxBytes
		}
		if text, err = readText(o.Source, maxBytes); err != nil {
			return nil, err
		}
	}
	ids, err := enc.Encode(text)
	if err != nil {
		return nil, fmt.Errorf("data: tokenising %s: %w", o.Source, err)
	}
	nseq := len(ids) / o.SeqLen
	if nseq < 2 {
		return nil, fmt.Errorf("data: %s gives %d tokens, fewer than two sequences of %d: give more text or a shorter seq_len", o.Source, len(ids), o.SeqLen)
	}
	seqs := make([][]int64, nseq)
	for i := range seqs {
		seqs[i] = ids[i*o.SeqLen : (i+1)*o.SeqLen]
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0xda7a))
	rng.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	nv := int(float64(nseq) * o.ValidFraction)
	if o.ValidFraction > 0 && nv == 0 {
		nv = 1
	}
	return &Corpus{SeqLen: o.SeqLen, Train: seqs[nv:], Valid: seqs[:nv], Source: o.Source}, nil
}

func readText(path string, maxBytes int64) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() {
		b, err := readTextFile(path, st, maxBytes)
		return string(b), err
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".txt") || strings.HasSuffix(p, ".raw")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("data: %w", err)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("data: directory %s has no .txt or .raw files", path)
	}
	sort.Strings(files)
	var sb strings.Builder
	left := maxBytes
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("data: %w", err)
		}
		b, err := readTextFile(f, st, left)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return "", fmt.Errorf("data: the files of %s hold more than data.max_bytes = %d bytes; raise data.max_bytes or use less text", path, maxBytes)
			}
			return "", err
		}
		left -= int64(len(b))
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

var errTooLarge = errors.New("too large")

// readTextFile reads a text file of at most maxBytes bytes. It refuses what is
// not a regular file (a FIFO, a device such as /dev/zero, a socket: reading one
// may never end) and binary files (a NUL byte), each with a message that names
// the file; a file larger than maxBytes is refused with an error wrapping
// errTooLarge, even if it grows while being read.
func readTextFile(path string, st os.FileInfo, maxBytes int64) ([]byte, error) {
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("data: %s is not a regular file (%s); data.source must be a text file or a directory of them", path, fileKind(st.Mode()))
	}
	tooLarge := fmt.Errorf("data: %s is larger than data.max_bytes = %d bytes; raise data.max_bytes or use a smaller file: %w", path, maxBytes, errTooLarge)
	if st.Size() > maxBytes {
		return nil, tooLarge
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if int64(len(b)) > maxBytes {
		return nil, tooLarge
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return nil, fmt.Errorf("data: %s is not text: it has a NUL byte at offset %d (a binary file?); data.source must be text", path, i)
	}
	return b, nil
}

// fileKind names the type of a file that is not regular.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "type " + m.Type().String()
}

// Timestamps fills ts (B×S) by the seed's recipe: per row, ⌈S/10⌉ random
// positions get a uniform (0,1) value, the row is cumulatively summed and
// divided by its last value.
func Timestamps(rng *rand.Rand, ts []float32, b, s int) {
	k := max(1, (s+9)/10)
	for i := 0; i < b; i++ {
		row := ts[i*s : (i+1)*s]
		clear(row)
		for _, p := range rng.Perm(s)[:min(k, s)] {
			row[p] = rng.Float32()
		}
		var acc float32
		for j := range row {
			acc += row[j]
			row[j] = acc
		}
		last := max(row[s-1], 1e-5)
		for j := range row {
			row[j] /= last
		}
	}
}

// Labels returns the labels of a batch: the inputs themselves for the seed's
// "copy" objective, or the next token (the last position ignored) for
// "next_token". ignore is the id that the loss skips.
func Labels(objective string, ids []int64, b, s int, ignore int64) ([]int64, error) {
	switch objective {
	case "", "copy":
		return ids, nil
	case "next_token":
		out := make([]int64, len(ids))
		for i := 0; i < b; i++ {
			copy(out[i*s:(i+1)*s-1], ids[i*s+1:(i+1)*s])
			out[(i+1)*s-1] = ignore
		}
		return out, nil
	}
	return nil, fmt.Errorf("data: unknown objective %q (copy, next_token)", objective)
}
