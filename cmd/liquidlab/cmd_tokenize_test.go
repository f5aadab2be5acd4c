package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/tokenizer"
)

func runTok(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(&env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, append([]string{"tokenize"}, args...))
	return out.String(), errb.String(), err
}

func TestTokenizeDefault(t *testing.T) {
	tok := tokenizer.Default()
	in := "Hello world\n\nit's a time  \n\tcontrol \x01 and 日本 \nno newline at end"
	out, _, err := runTok(t, in)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	inLines := strings.Split(in, "\n")
	if len(lines) != len(inLines) {
		t.Fatalf("%d output lines for %d input lines:\n%s", len(lines), len(inLines), out)
	}
	for i, l := range inLines {
		var want []string
		for _, id := range tok.Encode(l) {
			want = append(want, itoa(id))
		}
		if lines[i] != strings.Join(want, " ") {
			t.Errorf("line %d: got %q, want %q", i, lines[i], strings.Join(want, " "))
		}
	}
	if lines[1] != "0 2" {
		t.Errorf("empty line gives %q, want \"0 2\"", lines[1])
	}

	// --no-special, then --decode gives the text back.
	plain, _, err := runTok(t, in, "--no-special")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Split(plain, "\n")[1] != "" {
		t.Errorf("--no-special: empty line gives %q", strings.Split(plain, "\n")[1])
	}
	back, _, err := runTok(t, out, "--decode")
	if err != nil {
		t.Fatal(err)
	}
	if back != in+"\n" {
		t.Errorf("--decode gives %q, want %q", back, in+"\n")
	}
	kept, _, err := runTok(t, "0 2\n", "--decode", "--keep-special")
	if err != nil || kept != "<s></s>\n" {
		t.Errorf("--keep-special gives %q, %v", kept, err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestTokenizeJSON(t *testing.T) {
	out, _, err := runTok(t, "ab c\n", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		IDs     []int    `json:"ids"`
		Tokens  []string `json:"tokens"`
		Offsets [][2]int `json:"offsets"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	n := len(got.IDs)
	if n < 3 || len(got.Tokens) != n || len(got.Offsets) != n || got.Tokens[0] != "<s>" || got.Tokens[n-1] != "</s>" {
		t.Fatalf("bad JSON line %q", out)
	}
	if got.Offsets[1][0] != 0 || got.Offsets[n-2][1] != 4 {
		t.Errorf("offsets %v do not span the 4 bytes", got.Offsets)
	}
}

func TestTokenizeFiles(t *testing.T) {
	dir := t.TempDir()
	tr, err := tokenizer.Train([]string{"hello hello world world"}, tokenizer.TrainOptions{VocabSize: 300})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	tok, _ := tr.Tokenizer()
	want := ""
	for i, id := range tok.Encode("hello world") {
		if i > 0 {
			want += " "
		}
		want += itoa(id)
	}
	for _, args := range [][]string{
		{"--dir", dir},
		{"--vocab", filepath.Join(dir, "vocab.json"), "--merges", filepath.Join(dir, "merges.txt")},
	} {
		out, _, err := runTok(t, "hello world\n", args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if strings.TrimSpace(out) != want {
			t.Errorf("%v: got %q, want %q", args, out, want)
		}
	}
}

func TestTokenizeErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "vocab.json")
	if err := os.WriteFile(bad, []byte("{oops"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		stdin string
		args  []string
		usage bool
		want  string
	}{
		{"vocab without merges", "", []string{"--vocab", bad}, true, "--merges"},
		{"two sources", "", []string{"--dir", dir, "--tokenizer", "x.json"}, true, "only one"},
		{"corrupt vocab", "", []string{"--vocab", bad, "--merges", bad}, false, "vocab.json"},
		{"missing tokenizer.json", "", []string{"--tokenizer", filepath.Join(dir, "none.json")}, false, "none.json"},
		{"empty dir", "", []string{"--dir", t.TempDir()}, false, "neither"},
		{"bad id", "1 x 2\n", []string{"--decode"}, false, `line 1: "x"`},
		{"id out of range", "0\n999999\n", []string{"--decode"}, false, "line 2"},
		{"argument", "", []string{"extra"}, true, "extra"},
		{"unknown flag", "", []string{"--nope"}, true, "nope"},
		{"json and decode", "", []string{"--json", "--decode"}, true, "--json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runTok(t, c.stdin, c.args...)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, errUsage) != c.usage {
				t.Errorf("usage error = %v, want %v (%v)", errors.Is(err, errUsage), c.usage, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestTokenizeHelp(t *testing.T) {
	_, stderr, err := runTok(t, "", "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, w := range []string{"--no-special", "--decode", "--json", "built-in", "tokenizer.json", "-vocab"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("help does not mention %q", w)
		}
	}
}
