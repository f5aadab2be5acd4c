package data

import (
	"math/rand/v2"
	"slices"
	"strings"
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
