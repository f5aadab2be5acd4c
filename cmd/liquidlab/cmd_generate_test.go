package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/model"
	"liquidlab/framework/num"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/causal"
	"liquidlab/plugins/flows/coupling"
	"liquidlab/plugins/liquid/scan"
	"liquidlab/plugins/ode/odefunc"
)

// TestGenerateStreamMatchesRerun: on a model that can stream (causal window
// attention + scan), greedy generation streamed token by token (the prompt in
// chunks of 3) and generation re-running the whole sequence per token, both on
// the same timeline, see the same logits at every step and so pick the same
// tokens.
func TestGenerateStreamMatchesRerun(t *testing.T) {
	d := model.Dims{Vocab: 30, D: 8, L: 4, H: 6, F: 5, K: 1}
	st := map[string]stage.Stage{stage.KindFlows: coupling.New(), stage.KindODE: odefunc.New(),
		stage.KindAttention: causal.New(), stage.KindLiquid: scan.New()}
	opts := map[string]map[string]string{stage.KindODE: {"method": "euler"}, stage.KindAttention: {"window": "4"}}
	m, err := model.New(context.Background(), d, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Init(3); err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Params.List { // open the attention's zero-initialised output
		for i := range p.Value.Data {
			p.Value.Data[i] += 0.1 * float32(math.Sin(float64(i)))
		}
	}
	prompt := []int{5, 9, 2, 2, 17, 3, 28}
	const tokens = 12
	run := func(stream bool) ([]int, [][]float32) {
		var seen [][]float32
		g := &generation{m: m, ids: append([]int(nil), prompt...), tokens: tokens, chunk: 3,
			next: func(logits []float32) (int, error) {
				seen = append(seen, append([]float32(nil), logits...))
				// Greedy, shifted by the step so that the tokens vary (an
				// untrained model's argmax tends to repeat one token).
				_, i := num.MaxArg(logits)
				return (i + 7*len(seen)) % d.Vocab, nil
			}}
		tl := evenTimeline(len(prompt) + tokens - 1)
		var err error
		if stream {
			err = g.stream(context.Background(), tl)
		} else {
			err = g.rerun(context.Background(), tl)
		}
		if err != nil {
			t.Fatal(err)
		}
		if g.generated != tokens || len(g.ids) != len(prompt)+tokens {
			t.Fatalf("stream %v: %d tokens generated, %d ids", stream, g.generated, len(g.ids))
		}
		return g.ids, seen
	}
	sIDs, sLogits := run(true)
	rIDs, rLogits := run(false)
	for step := range sLogits {
		for j, w := range rLogits[step] {
			if got := sLogits[step][j]; math.Abs(float64(got-w)) > 1e-5*(1+math.Abs(float64(w))) {
				t.Fatalf("step %d: streamed logit %d = %v, re-run %v", step, j, got, w)
			}
		}
	}
	if !equalInts(sIDs, rIDs) {
		t.Errorf("streamed tokens %v, re-run %v", sIDs, rIDs)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGenerateStreamFlag trains two tiny cells (causal attention with the scan,
// and with the seed's ltc cell) and checks -stream: auto streams the scan cell
// and re-runs the ltc cell, on refuses the ltc cell saying why, off re-runs, a
// bad value is a usage error; stderr reports the speed; -prompt-file reads the
// prompt.
func TestGenerateStreamFlag(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "gen.toml")
	os.WriteFile(exp, []byte(`name = "gen"
seed = 1
[model]
vocab_size = 2000
embedding_dim = 16
latent_dim = 8
hidden_size = 16
hidden_dim = 8
num_flows = 1
[components.ode]
options = { method = "euler" }
[components.attention]
impl = "causal"
[data]
seq_len = 32
[train]
steps = 1
batch = 2
objective = "next_token"
[eval]
batches = 1
[bench]
lengths = []
[run]
mode = "inprocess"
chunk_size = 8
[grid]
"components.liquid.impl" = ["ltc", "scan"]
`), 0o644)
	res := filepath.Join(dir, "results")
	var out bytes.Buffer
	if err := run(&env{stdout: &out, stderr: &out}, []string{"run", "-results", res, exp}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	cells := map[string]string{}
	cfgs, err := filepath.Glob(filepath.Join(res, "gen", "*", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range cfgs {
		raw, _ := os.ReadFile(cfg)
		for _, liq := range []string{"ltc", "scan"} {
			if strings.Contains(string(raw), `impl = "`+liq+`"`) {
				cells[liq] = filepath.Dir(cfg)
			}
		}
	}
	if len(cells) != 2 {
		t.Fatalf("cells %v", cells)
	}
	promptFile := filepath.Join(dir, "prompt.txt")
	os.WriteFile(promptFile, []byte(strings.Repeat("The quiet cat sat on the mat. ", 5)), 0o644)
	for _, c := range []struct {
		cell, flag string
		want       string // in stderr; "" when generate must fail
		fail       string // in the error
	}{
		{"scan", "auto", "streaming (prompt fed in chunks of 8 tokens", ""},
		{"scan", "on", "streaming", ""},
		{"scan", "off", "re-running the whole sequence", ""},
		{"ltc", "auto", "re-running the whole sequence", ""},
		{"ltc", "off", "re-running the whole sequence", ""},
		{"ltc", "on", "", `the liquid stage "ltc" is not per-token`},
		{"scan", "always", "", "want auto, on or off"},
		{"scan", "auto -prompt x", "", "-prompt and -prompt-file both given"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(&env{stdout: &stdout, stderr: &stderr}, append(append([]string{"generate", "-tokens", "5", "-stream"}, strings.Fields(c.flag)...), "-prompt-file", promptFile, cells[c.cell]))
		if c.want == "" {
			if err == nil || !strings.Contains(err.Error(), c.fail) {
				t.Errorf("%s -stream=%s: err %v, want one saying %q", c.cell, c.flag, err, c.fail)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s -stream=%s: %v\n%s", c.cell, c.flag, err, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), c.want) || !strings.Contains(stderr.String(), "5 tokens after a prompt of") ||
			!strings.Contains(stderr.String(), "tokens/s") {
			t.Errorf("%s -stream=%s: stderr %q, want %q and the speed", c.cell, c.flag, stderr.String(), c.want)
		}
		if strings.Contains(stdout.String(), "quiet cat") {
			t.Errorf("%s -stream=%s: the prompt file was echoed: %q", c.cell, c.flag, stdout.String())
		}
	}
}
