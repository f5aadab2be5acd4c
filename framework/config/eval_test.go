package config

import (
	"bytes"
	"testing"
)

func TestEvalKeysCanonical(t *testing.T) {
	plain, err := Parse("x.toml", []byte(""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Canonical(), []byte("eval.tasks")) || bytes.Contains(plain.Canonical(), []byte("data.max_bytes")) {
		t.Errorf("unset long-context keys in the canonical form:\n%s", plain.Canonical())
	}
	e, err := Parse("x.toml", []byte("[eval]\ntasks = [\"passkey\"]\nlengths = [4096]\ndepths = [50]\nkey_digits = 7\n[data]\nmax_bytes = 1000\n"), []string{"eval.samples=3"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Eval.Tasks[0] != "passkey" || e.Eval.Lengths[0] != 4096 || e.Eval.Depths[0] != 50 || e.Eval.KeyDigits != 7 || e.Eval.Samples != 3 || e.Data.MaxBytes != 1000 {
		t.Fatalf("eval %+v", e.Eval)
	}
	c := e.Canonical()
	for _, want := range []string{`eval.tasks = ["passkey"]`, "eval.samples = 3", "data.max_bytes = 1000"} {
		if !bytes.Contains(c, []byte(want)) {
			t.Errorf("canonical form lacks %s:\n%s", want, c)
		}
	}
	back, err := Parse("y.toml", c, nil)
	if err != nil || !bytes.Equal(back.Canonical(), c) {
		t.Errorf("canonical form does not round-trip: %v", err)
	}
	if _, err := Parse("x.toml", []byte("[eval]\nlengths = \"long\"\n"), nil); err == nil {
		t.Error("eval.lengths as a string accepted")
	}
}
