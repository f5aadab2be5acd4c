package data

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

type wordEnc map[string]int64

func (w wordEnc) Encode(text string) ([]int64, error) {
	var out []int64
	for _, f := range strings.Fields(text) {
		id, ok := w[f]
		if !ok {
			id = int64(len(w))
			w[f] = id
		}
		out = append(out, id)
	}
	return out, nil
}

func TestLoadBuiltinDeterministic(t *testing.T) {
	a, err := Load(wordEnc{}, Options{SeqLen: 16, ValidFraction: 0.1, Seed: 3, BuiltinTokens: 5000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Load(wordEnc{}, Options{SeqLen: 16, ValidFraction: 0.1, Seed: 3, BuiltinTokens: 5000})
	if len(a.Train) == 0 || len(a.Valid) == 0 || len(a.Train) != len(b.Train) {
		t.Fatalf("split %d/%d", len(a.Train), len(a.Valid))
	}
	for i := range a.Train[0] {
		if a.Train[0][i] != b.Train[0][i] {
			t.Fatal("not deterministic")
		}
	}
	if _, err := Load(wordEnc{}, Options{Source: "/no/such/file", SeqLen: 16}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := Load(wordEnc{}, Options{SeqLen: 1}); err == nil {
		t.Error("seq_len 1 accepted")
	}
}

func TestTimestamps(t *testing.T) {
	ts := make([]float32, 2*25)
	Timestamps(rand.New(rand.NewPCG(1, 1)), ts, 2, 25)
	for r := 0; r < 2; r++ {
		row := ts[r*25 : (r+1)*25]
		if row[24] != 1 {
			t.Errorf("row %d ends at %v", r, row[24])
		}
		for j := 1; j < 25; j++ {
			if row[j] < row[j-1] {
				t.Errorf("row %d decreases at %d", r, j)
			}
		}
	}
}

func TestLabels(t *testing.T) {
	ids := []int64{5, 6, 7, 8, 9, 10}
	got, _ := Labels("next_token", ids, 2, 3, 1)
	want := []int64{6, 7, 1, 9, 10, 1}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("next_token labels %v, want %v", got, want)
		}
	}
	if _, err := Labels("bogus", ids, 2, 3, 1); err == nil {
		t.Error("unknown objective accepted")
	}
}

func TestLoadGoRoot(t *testing.T) {
	a, err := Load(wordEnc{}, Options{Source: SourceGoRoot, SeqLen: 64, ValidFraction: 0.1, Seed: 1, MaxBytes: 200_000})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Train) == 0 || len(a.Valid) == 0 || a.TrainBytes > 200_000 || a.ValidBytes >= a.TrainBytes {
		t.Fatalf("goroot: %d/%d sequences, %d/%d bytes", len(a.Train), len(a.Valid), a.TrainBytes, a.ValidBytes)
	}
	if _, err := Load(wordEnc{}, Options{Source: SourceGoRoot, SeqLen: 1 << 30, MaxBytes: 1000}); err == nil {
		t.Error("a sequence longer than the text accepted")
	}
}

func TestBatchLabels(t *testing.T) {
	c := &Corpus{SeqLen: 2, Train: [][]int64{{5, 6}, {7, 8}}, TrainLabels: [][]int64{{-1, 1}, {2, -1}}}
	got, err := c.BatchLabels("copy", false, []int{1, 0}, []int64{7, 8, 5, 6}, 2, 2, -1)
	if err != nil || !slices.Equal(got, []int64{2, -1, -1, 1}) {
		t.Errorf("task labels %v %v", got, err)
	}
	got, _ = c.BatchLabels("copy", true, []int{0}, []int64{3, 4}, 1, 2, -1)
	if !slices.Equal(got, []int64{3, 4}) {
		t.Errorf("objective labels %v", got)
	}
}

// TestSourceLimits: data.source=/dev/zero grew to 18.8 GB, a FIFO blocked until
// its writer closed, and a binary file trained without a warning. Each is now
// refused with one clear line, as is a file or directory above MaxBytes.
func TestSourceLimits(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "a.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("hello world. ", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "b.bin")
	if err := os.WriteFile(bin, []byte("text\x00\x01\x02"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cases := []struct {
		src      string
		maxBytes int64
		want     string
	}{
		{"/dev/zero", 0, "/dev/zero is not a regular file (a character device)"},
		{fifo, 0, "is not a regular file (a FIFO)"},
		{bin, 0, "b.bin is not text: it has a NUL byte at offset 4"},
		{text, 100, "a.txt is larger than data.max_bytes = 100 bytes"},
		{dir, 2000, "hold more than data.max_bytes = 2000 bytes"},
	}
	for _, c := range cases {
		if c.src == dir {
			os.Remove(bin) // the directory reader only takes .txt and .raw files
			if err := os.WriteFile(filepath.Join(dir, "c.txt"), []byte(strings.Repeat("more text. ", 100)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(byteEncoder{}, Options{Source: c.src, SeqLen: 8, MaxBytes: c.maxBytes})
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line containing %q", c.src, err, c.want)
		}
	}
	// Within the limit, the same text loads.
	if _, err := Load(byteEncoder{}, Options{Source: text, SeqLen: 8, MaxBytes: 1300}); err != nil {
		t.Errorf("text within the limit: %v", err)
	}
}

// byteEncoder encodes each byte as one token.
type byteEncoder struct{}

func (byteEncoder) Encode(s string) ([]int64, error) {
	ids := make([]int64, len(s))
	for i := range s {
		ids[i] = int64(s[i])
	}
	return ids, nil
}
