package tokenizer

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// go test ./framework/tokenizer -run TestDefaultVocab -update regenerates
// testdata/corpus.txt and the built-in vocabulary trained on it.
var update = flag.Bool("update", false, "regenerate testdata/corpus.txt and testdata/default")

// The corpus is generated from these lists (written for this project, so the
// text is ours to ship) by a seeded generator.
var (
	genSubjects = []string{"the model", "a liquid cell", "the network", "our team", "the solver", "this experiment",
		"the tokenizer", "every layer", "the attention head", "a small vocabulary", "the time series", "my colleague",
		"the old river", "a quiet village", "the market", "her brother", "the committee", "a young engineer",
		"the garden", "the city council", "each neuron", "the batch", "the gradient", "the long document", "the reader"}
	genVerbs = []string{"learns", "predicts", "integrates", "reads", "writes", "measures", "compares", "follows",
		"ignores", "remembers", "encodes", "decodes", "describes", "builds", "tests", "changes", "improves", "splits",
		"merges", "counts", "watches", "carries", "explains", "computes", "returns", "saves", "loads", "trains"}
	genObjects = []string{"the hidden state", "a new sequence", "long documents", "the weights", "its own errors",
		"the whole history", "every token", "the evening news", "a careful plan", "the last chapter", "two numbers",
		"the loss curve", "the summer rain", "the training data", "a short story", "the ordinary differential equation",
		"the learning rate", "the attention mask", "the output projection", "the latent space", "the final answer"}
	genAdjectives = []string{"quick", "slow", "stable", "noisy", "careful", "large", "small", "bright", "dark",
		"simple", "complex", "ancient", "modern", "continuous", "discrete", "beautiful", "strange", "useful", "exact"}
	genAdverbs = []string{"quickly", "slowly", "carefully", "often", "rarely", "always", "never", "sometimes",
		"probably", "certainly", "together", "again", "already", "finally", "almost", "really", "usually"}
	genOpeners = []string{"However,", "Then", "Meanwhile,", "In the morning", "After a while", "For example,",
		"Of course", "In 2024", "Last year", "Surprisingly,", "As expected,", "Still,", "Later that day", "Again,"}
	genContractions = []string{"don't", "it's", "we're", "they've", "I'm", "you'll", "he'd", "can't", "won't",
		"isn't", "that's", "there's", "I've", "she'll", "we'd", "didn't", "wasn't", "OUR'S", "let's", "what's"}
	genForeign = []string{"Καλημέρα κόσμε, η μέρα είναι ωραία.", "Привет, мир! Как дела сегодня?",
		"你好，世界。今天天气很好。", "こんにちは、世界。今日はいい天気です。", "مرحبا بالعالم، كيف حالك اليوم؟",
		"नमस्ते दुनिया, आज का दिन अच्छा है।", "Grüße aus München: Straße, Größe, Übermaß.",
		"Ça va très bien, merci beaucoup — à bientôt!", "¿Dónde está la biblioteca? ¡Aquí mismo!",
		"안녕하세요 세계, 오늘 날씨가 좋네요.", "Emoji too: 😀 🚀 🌊 ❤️ 👍🏽 🎉", "Combining: e\u0301te\u0301, n\u0303, a\u0308"}
	genWords = strings.Fields(`about above across after against along among around because before behind below
		beneath beside between beyond during except inside near outside since through toward under until within
		without answer animal autumn balance basket bottle bridge candle castle circle cloud corner country cousin
		danger desert dinner distance doctor dragon engine evening family farmer feather finger forest friend future
		garden giant glass government harbor history holiday island journey kitchen language letter library machine
		market meadow memory message minute moment morning mountain music nature number ocean office orange paper
		pattern pencil picture planet pocket problem question rabbit reason record region river science season shadow
		signal silver sister society spring station stomach student summer surface system teacher theory thunder
		ticket tomorrow tower valley village voice weather window winter wonder yellow accept allow appear arrive
		believe borrow breathe choose collect consider continue create decide deliver discover divide enjoy escape
		explore forgive gather happen imagine include invent listen manage notice observe offer open prepare promise
		protect publish receive recognize reduce refuse repeat replace reply request rescue return search separate
		settle shiver smile suggest support surprise survive travel understand visit wander whisper worry yesterday
		January February March April May June July August September October November December Monday Tuesday
		Wednesday Thursday Friday Saturday Sunday north south east west first second third hundred thousand million`)
	genSyllables = []string{"ka", "lo", "mir", "dan", "vel", "tor", "shi", "bra", "quen", "dor", "ell", "ith", "zar",
		"um", "pel", "ros", "ta", "ven", "gri", "sol", "mun", "ari", "eth", "bel", "cor", "fin", "ga", "hal", "jor", "ny"}
	genCode = []string{"func (m *Model) Forward(x []float32) error {", "\treturn fmt.Errorf(\"layer %d: %w\", i, err)",
		"for i := 0; i < len(ids); i++ {", "x = torch.randn(4, 16, 32)  # batch, seq, dim", "if err != nil {",
		"def forward(self, x, mask=None):", "    return self.proj(x) * 0.5", "}", "loss = -log_softmax(logits)[target]",
		"ids := tok.Encode(\"hello world\")", "print(f\"step {step}: loss={loss:.4f}\")", "# TODO(#4): remove",
		"<s> the quick brown fox </s>", "https://example.org/data/v1?id=42&mode=test", "user@example.com"}
)

func genSentence(r *rand.Rand) string {
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	var b strings.Builder
	name := func() string {
		var n strings.Builder
		for k := 1 + r.IntN(3); k >= 0; k-- {
			n.WriteString(pick(genSyllables))
		}
		return capitalize(n.String())
	}
	switch r.IntN(12) {
	case 9:
		fmt.Fprintf(&b, "%s and %s %s to %s on %s, %d %s.", name(), name(), pick([]string{"went", "walked", "sailed", "wrote", "came back"}), name(), pick(genWords), 1+r.IntN(28), pick(genWords))
	case 10, 11:
		n := 4 + r.IntN(8)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteString(" ")
			}
			w := pick(genWords)
			if i == 0 {
				w = capitalize(w)
			}
			b.WriteString(w)
		}
		b.WriteString(pick([]string{".", ".", "?", "!", "...", ";"}))
	case 0:
		fmt.Fprintf(&b, "%s %s %s %s.", pick(genOpeners), pick(genSubjects), pick(genAdverbs), pick(genVerbs)+" "+pick(genObjects))
	case 1:
		fmt.Fprintf(&b, "%s %s, and %s %s.", capitalize(pick(genContractions)), pick(genAdjectives), pick(genSubjects), pick(genVerbs))
	case 2:
		fmt.Fprintf(&b, "In %d, %s %s %d of %d samples (%.1f%%).", 1900+r.IntN(130), pick(genSubjects), pick(genVerbs), r.IntN(1000), 1000+r.IntN(9000), 100*r.Float64())
	case 3:
		fmt.Fprintf(&b, "\"%s,\" said %s, \"%s %s %s.\"", capitalize(pick(genContractions)), pick(genSubjects), pick(genSubjects), pick(genVerbs), pick(genObjects))
	case 4:
		fmt.Fprintf(&b, "%s %s %s %s and %s %s.", capitalize(pick(genSubjects)), pick(genAdverbs), pick(genVerbs), pick(genObjects), pick(genVerbs), pick(genObjects))
	case 5:
		fmt.Fprintf(&b, "The %s %s %s %s; %s %s %s.", pick(genAdjectives), strings.TrimPrefix(pick(genSubjects), "the "), pick(genVerbs), pick(genObjects), pick(genContractions), pick(genAdverbs), pick(genAdjectives))
	case 6:
		fmt.Fprintf(&b, "Step %d: loss %.4f, accuracy %.2f, lr %.0e at %02d:%02d.", r.IntN(100000), 5*r.Float64(), r.Float64(), r.Float64()/100, r.IntN(24), r.IntN(60))
	case 7:
		fmt.Fprintf(&b, "Is %s %s?  %s %s!", pick(genSubjects), pick(genAdjectives), capitalize(pick(genAdverbs)), pick(genAdjectives))
	default:
		fmt.Fprintf(&b, "%s %s %s %s %s.", capitalize(pick(genSubjects)), pick(genVerbs), pick(genAdjectives), strings.TrimPrefix(pick(genObjects), "the "), pick(genAdverbs))
	}
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// genCorpus returns about size bytes of text in paragraphs.
func genCorpus(size int) string {
	r := rand.New(rand.NewPCG(4, 2026))
	var b strings.Builder
	for b.Len() < size {
		switch k := r.IntN(20); {
		case k < 15:
			n := 2 + r.IntN(5)
			for i := 0; i < n; i++ {
				if i > 0 {
					b.WriteString(" ")
				}
				b.WriteString(genSentence(r))
			}
		case k < 17:
			b.WriteString(genForeign[r.IntN(len(genForeign))])
		default:
			n := 1 + r.IntN(4)
			for i := 0; i < n; i++ {
				b.WriteString(genCode[r.IntN(len(genCode))] + "\n")
			}
		}
		b.WriteString([]string{"\n", "\n\n", "  \n", "\n\t\n"}[r.IntN(4)])
	}
	return b.String()
}

func TestDefaultVocab(t *testing.T) {
	corpusPath := filepath.Join("testdata", "corpus.txt")
	if *update {
		if err := os.WriteFile(corpusPath, []byte(genCorpus(250_000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	corpus, err := os.ReadFile(corpusPath)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Train(strings.SplitAfter(string(corpus), "\n"), TrainOptions{VocabSize: DefaultVocabSize})
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := tr.WriteFiles(filepath.Join("testdata", "default")); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(tr.VocabJSON(), defaultVocab) || !bytes.Equal(tr.MergesTxt(), defaultMerges) {
		t.Fatalf("testdata/default differs from training on testdata/corpus.txt; rerun with -update (and rebuild)")
	}
	d := Default()
	if d.VocabSize() != DefaultVocabSize {
		t.Fatalf("VocabSize = %d, want %d", d.VocabSize(), DefaultVocabSize)
	}
	want := SpecialIDs{BOS: 0, Pad: 1, EOS: 2, Unk: 3, Mask: DefaultVocabSize - 1}
	if got := d.Specials(); got != want {
		t.Fatalf("Specials = %+v, want %+v", got, want)
	}
}
