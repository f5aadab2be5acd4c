package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: the experiment loader never panics or hangs on any file; its errors
// are located lines; what it accepts has a canonical form that parses back into
// the same settings (the package manual's promise).
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../../experiments/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("name = \"x\"\n[model]\nhidden_size = 64\n[grid]\n\"model.num_flows\" = [0, 1]\n"))
	f.Add([]byte("[[grid.paired]]\n\"train.lr\" = [1e-3, 1e-4]\n\"train.steps\" = [1, 2]\n"))
	f.Add([]byte("[components.ode]\nimpl = \"./bin/x\"\nsha256 = \"00\"\noptions = { method = \"rk4\" }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse("f.toml", data, nil)
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Error("empty error message")
			}
			return
		}
		c := e.Canonical()
		e2, err := Parse("canonical.toml", c, nil)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c)
		}
		if c2 := e2.Canonical(); !bytes.Equal(c, c2) {
			t.Fatalf("canonical form does not round-trip:\n%s\n---\n%s", c, c2)
		}
	})
}
