package runner

import (
	"math"
	"os"
	"strings"
	"testing"

	"liquidlab/framework/config"
	"liquidlab/framework/data"
	"liquidlab/framework/tokenizer"
)

func taskExperiment(t *testing.T, src string, sets ...string) *config.Experiment {
	t.Helper()
	e, err := config.Parse("x.toml", []byte(src), sets)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestTaskCorpusLabelsAnswersOnly checks that a task:NAME source labels only
// the answer tokens, each with the token that follows its position.
func TestTaskCorpusLabelsAnswersOnly(t *testing.T) {
	tok := tokenizer.Default()
	pad := padID(tok)
	for _, name := range []string{"passkey", "mqar", "selective_copy"} {
		e := taskExperiment(t, "[model]\nvocab_size = 2000\n[data]\nsource = \"task:"+name+"\"\nseq_len = 300\n[train]\nsteps = 3\nbatch = 2\nobjective = \"next_token\"\n[eval]\nbatches = 1\nmqar_pairs = [8]\n")
		c, err := loadCorpus(e, tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.Train) != 6 || len(c.Valid) != 2 || len(c.TrainLabels) != 6 || c.SeqLen != 300 {
			t.Fatalf("%s: %d/%d sequences", name, len(c.Train), len(c.Valid))
		}
		want := map[string]int{"mqar": 8, "selective_copy": 16}[name]
		for i, seq := range c.Train {
			n := 0
			for p, l := range c.TrainLabels[i] {
				if l == pad {
					continue
				}
				n++
				if p+1 >= len(seq) || seq[p+1] != l {
					t.Fatalf("%s: label %d at %d is not the next token", name, l, p)
				}
			}
			if n == 0 || (want > 0 && n != want) || n > 10 && name == "passkey" {
				t.Errorf("%s: %d labelled positions", name, n)
			}
			if c.TrainLabels[i][len(seq)-1] != pad {
				t.Errorf("%s: the last position is labelled", name)
			}
		}
		if string(fmtIDs(c.Train[0])) == string(fmtIDs(c.Valid[0])) {
			t.Errorf("%s: training and validation sequences coincide", name)
		}
	}
	e := taskExperiment(t, "[data]\nsource = \"task:passkey\"\n")
	if _, err := loadCorpus(e, tok); err == nil || !strings.Contains(err.Error(), "next_token") {
		t.Errorf("copy objective on a task: %v", err)
	}
	e = taskExperiment(t, "[data]\nsource = \"task:bogus\"\n[train]\nobjective = \"next_token\"\n")
	if _, err := loadCorpus(e, tok); err == nil {
		t.Error("unknown task accepted")
	}
}

func fmtIDs(ids []int64) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(string(rune(id + 32)))
	}
	return sb.String()
}

func TestEvalOptionsFor(t *testing.T) {
	o, err := EvalOptionsFor(taskExperiment(t, "[eval]\ntasks = [\"passkey\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Lengths) != 4 || o.Lengths[3] != 32768 || o.Samples != 10 || o.ChunkSize != DefaultEvalChunk {
		t.Errorf("defaults %+v", o)
	}
	o, _ = EvalOptionsFor(taskExperiment(t, "[eval]\ndepths = [0, 50]\n[run]\nchunk_size = 64\n"))
	if o.Depths[1] != 0.5 || o.ChunkSize != 64 {
		t.Errorf("depths %v chunk %d", o.Depths, o.ChunkSize)
	}
	for _, bad := range []string{"[eval]\ntasks = [\"x\"]\n", "[eval]\ndepths = [-1]\n", "[eval]\nlengths = [1]\n", "[eval]\nsamples = -1\n", "[eval]\nfiller = \"/no/such\"\n"} {
		if _, err := EvalOptionsFor(taskExperiment(t, bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestEvalMetricsAndTable(t *testing.T) {
	rows := []EvalRow{
		{Task: "passkey", Length: 4096, Row: "depth 0%", Acc: 1, PeakRSSMB: 30},
		{Task: "passkey", Length: 4096, Row: "depth 50%", Acc: 0.5, PeakRSSMB: 30},
		{Task: "passkey", Length: 32768, Row: "depth 0%", Acc: 0, PeakRSSMB: 31},
		{Task: "goroot", Length: 4096, Row: "bits/byte", Acc: math.NaN(), BPB: 2.5, Buckets: map[string]float64{"0-1k": 3, "1k-4k": 2}, PeakRSSMB: 40},
	}
	m := EvalMetrics(rows)
	if m["eval.passkey@4096"] != 0.75 || m["eval.passkey@32768"] != 0 || m["eval.goroot_bpb@4096"] != 2.5 || m["eval.peak_rss_mb@4096"] != 40 {
		t.Errorf("metrics %v", m)
	}
	var sb strings.Builder
	EvalTable(&sb, rows)
	got := sb.String()
	for _, want := range []string{"4k", "32k", "depth 50%", "0.500", "—", "loss 1k-4k", "2.5000", "peak MB"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	b, err := rows[3].MarshalJSON()
	if err != nil || !strings.Contains(string(b), `"acc":null`) {
		t.Errorf("NaN accuracy as JSON: %s %v", b, err)
	}
}

// TestTrainFiller checks data.filler: the training sequences of task:passkey
// take their filler from a file or the Go tree's comments, and a missing file
// is an error.
func TestTrainFiller(t *testing.T) {
	tok := tokenizer.Default()
	dir := t.TempDir()
	path := dir + "/filler.txt"
	if err := os.WriteFile(path, []byte("Zebras quietly xylophone over marmalade.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	zebra := mustEncode(t, tok, " quietly xylophone over")
	const base = "[model]\nvocab_size = 2000\n[train]\nsteps = 2\nbatch = 2\nobjective = \"next_token\"\n[eval]\nbatches = 1\n[data]\nsource = \"task:passkey\"\nseq_len = 200\n"
	contains := func(seq []int64, sub []int64) bool {
		return strings.Contains(fmtIDs(seq), fmtIDs(sub))
	}
	for _, tc := range []struct {
		filler string
		zebra  bool
	}{{"", false}, {path, true}, {"goroot", false}} {
		e := taskExperiment(t, base+"filler = \""+tc.filler+"\"\n")
		c, err := loadCorpus(e, tok)
		if err != nil {
			t.Fatalf("filler %q: %v", tc.filler, err)
		}
		if got := contains(c.Train[0], zebra); got != tc.zebra {
			t.Errorf("filler %q: the file's words in the training sequence: %v, want %v", tc.filler, got, tc.zebra)
		}
		if tc.filler == "goroot" && strings.Contains(fmtIDs(c.Train[0]), fmtIDs(mustEncode(t, tok, " The grass is green. The sky is blue."))) {
			t.Error("filler goroot: the built-in filler in the training sequence")
		}
	}
	e := taskExperiment(t, base+"filler = \""+dir+"/missing.txt\"\n")
	if _, err := loadCorpus(e, tok); err == nil || !strings.Contains(err.Error(), "data.filler") {
		t.Errorf("missing filler file: %v", err)
	}
}

func mustEncode(t *testing.T, tok *tokenizer.Tokenizer, s string) []int64 {
	t.Helper()
	ids, err := taskEncoder{tok}.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestMinSeqLenCorpus checks the corpus of a task source with
// data.min_seq_len: no fixed training set, fresh samples of the asked length
// with their key labelled, and none equal to a validation sample.
func TestMinSeqLenCorpus(t *testing.T) {
	tok := tokenizer.Default()
	pad := padID(tok)
	e := taskExperiment(t, "[model]\nvocab_size = 2000\n[data]\nsource = \"task:passkey\"\nseq_len = 200\nmin_seq_len = 150\n[train]\nsteps = 3\nbatch = 2\nobjective = \"next_token\"\n[eval]\nbatches = 1\n")
	c, err := loadCorpus(e, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.TrainAt == nil || len(c.Train) != 0 || c.MinSeqLen != 150 || len(c.Valid) != 2 {
		t.Fatalf("corpus: TrainAt %v, %d fixed training sequences, min %d, %d valid; want TrainAt, none, 150, 2", c.TrainAt != nil, len(c.Train), c.MinSeqLen, len(c.Valid))
	}
	valid := map[string]bool{}
	for _, v := range c.Valid {
		valid[fmtIDs(v)] = true
	}
	for _, n := range []int{150, 173, 200} {
		for i := range 10 {
			ids, labs, err := c.TrainAt(n, i)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != n || len(labs) != n {
				t.Fatalf("TrainAt(%d, %d): %d ids, %d labels", n, i, len(ids), len(labs))
			}
			if countLabels(labs, pad) < 1 || labs[n-2] == pad {
				t.Errorf("TrainAt(%d, %d): the key is not labelled", n, i)
			}
			if valid[fmtIDs(ids)] {
				t.Errorf("TrainAt(%d, %d) is a validation sample", n, i)
			}
		}
	}
	for _, bad := range []string{"data.min_seq_len=201", "data.min_seq_len=1"} {
		if _, err := config.Parse("x.toml", []byte("[model]\nvocab_size = 2000\n[data]\nsource = \"task:passkey\"\nseq_len = 200\n[train]\nobjective = \"next_token\"\n"), []string{bad}); err == nil || !strings.Contains(err.Error(), "data.min_seq_len") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := config.Parse("x.toml", []byte("[data]\nsource = \"builtin\"\nseq_len = 200\nmin_seq_len = 100\n"), nil); err == nil || !strings.Contains(err.Error(), "task:") {
		t.Errorf("min_seq_len on a text source: %v", err)
	}
}

// TestKeyDigitsCorpus checks that data.key_digits reaches the passkey's
// training keys and is refused elsewhere.
func TestKeyDigitsCorpus(t *testing.T) {
	tok := tokenizer.Default()
	const base = "[model]\nvocab_size = 2000\n[train]\nsteps = 20\nbatch = 2\nobjective = \"next_token\"\n[eval]\nbatches = 1\n[data]\nsource = \"task:passkey\"\nseq_len = 200\n"
	lengths := func(c *data.Corpus) map[int]bool {
		seen := map[int]bool{}
		for _, seq := range c.Train {
			ints := make([]int, len(seq))
			for i, id := range seq {
				ints[i] = int(id)
			}
			s, err := tok.Decode(ints, true)
			if err != nil {
				t.Fatal(err)
			}
			if i := strings.Index(s, "The pass key is "); i >= 0 {
				key, _, _ := strings.Cut(s[i+len("The pass key is "):], ".")
				seen[len(key)] = true
			}
		}
		return seen
	}
	c, err := loadCorpus(taskExperiment(t, base), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := lengths(c); len(got) != 1 || !got[5] {
		t.Errorf("default key lengths %v, want only 5", got)
	}
	c, err = loadCorpus(taskExperiment(t, base+"key_digits = [6, 7]\n"), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := lengths(c); len(got) != 2 || !got[6] || !got[7] {
		t.Errorf("key_digits = [6, 7]: key lengths %v", got)
	}
	for _, bad := range []string{"data.key_digits=[3]", "data.key_digits=[5, 4]", "data.key_digits=[0, 4]"} {
		if _, err := config.Parse("x.toml", []byte(base), []string{bad}); err == nil || !strings.Contains(err.Error(), "data.key_digits") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
