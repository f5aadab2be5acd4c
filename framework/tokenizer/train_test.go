package tokenizer

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestTrain(t *testing.T) {
	texts := []string{"low lower lowest", "newer wider low", "low low low"}
	tr, err := Train(texts, TrainOptions{VocabSize: 270})
	if err != nil {
		t.Fatal(err)
	}
	// Few pairs occur twice, so training stops before 270 tokens.
	n := len(tr.Vocab)
	if n > 270 || n != 4+256+len(tr.Merges)+1 || tr.Vocab["<s>"] != 0 || tr.Vocab["<pad>"] != 1 || tr.Vocab["</s>"] != 2 || tr.Vocab["<unk>"] != 3 || tr.Vocab["<mask>"] != n-1 {
		t.Fatalf("layout: size %d, <mask>=%d", len(tr.Vocab), tr.Vocab["<mask>"])
	}
	if tr.Vocab["!"] != 4 || tr.Vocab["Ā"] != 4+188 {
		t.Errorf("byte tokens not in GPT-2 order: ! = %d, Ā = %d", tr.Vocab["!"], tr.Vocab["Ā"])
	}
	// Pair counts: (l,o) 7 — 6 in "Ġlow…" words and "low" at the start —
	// (o,w) 7, (Ġ,l) 5. The tie (l,o)/(o,w) goes to "l" < "o".
	if tr.Merges[0] != [2]string{"l", "o"} || tr.Merges[1] != [2]string{"lo", "w"} {
		t.Errorf("first merges %v", tr.Merges[:2])
	}
	again, _ := Train(texts, TrainOptions{VocabSize: 270})
	if !bytes.Equal(tr.VocabJSON(), again.VocabJSON()) || !bytes.Equal(tr.MergesTxt(), again.MergesTxt()) {
		t.Error("training is not deterministic")
	}
	dir := t.TempDir()
	if err := tr.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("low"); !reflect.DeepEqual(got, []int{0, tr.Vocab["low"], 2}) {
		t.Errorf("Encode(low) = %v, want [0 %d 2]", got, tr.Vocab["low"])
	}
	s, err := tok.Decode(tok.Encode("lowest newer\n"), true)
	if err != nil || s != "lowest newer\n" {
		t.Errorf("round trip = %q, %v", s, err)
	}
	if _, err := Train(texts, TrainOptions{VocabSize: 100}); err == nil || !strings.Contains(err.Error(), "100") {
		t.Errorf("tiny vocab size: err = %v", err)
	}
	// Stops early when pairs become rare.
	small, _ := Train([]string{"ab"}, TrainOptions{VocabSize: 1000})
	if len(small.Merges) != 0 || len(small.Vocab) != 261 {
		t.Errorf("one-occurrence corpus: %d merges, %d tokens", len(small.Merges), len(small.Vocab))
	}
}
