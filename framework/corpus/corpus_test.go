package corpus

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"a/x.go": "package a\n", "a/y.go": "package a // y\n", "b/z.go": "package b\n",
		"b/testdata/skip.go": "not go", "c/README": "no", "c/sub/w.go": "package sub\n",
	}
	for i := 0; i < 40; i++ {
		files["many/f"+string(rune('a'+i%26))+string(rune('a'+i/26))+".go"] = "package many\n"
	}
	for rel, body := range files {
		p := filepath.Join(root, "src", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestSplitFixedByFile(t *testing.T) {
	root := writeTree(t)
	g, err := Open(root, 0.3)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g.Train) + len(g.Valid); n != 44 {
		t.Fatalf("%d files, want 44 (.go outside testdata)", n)
	}
	if len(g.Valid) == 0 || len(g.Train) == 0 {
		t.Fatalf("split %d/%d", len(g.Train), len(g.Valid))
	}
	for _, f := range g.Valid {
		if !InValid(f.Rel, 0.3) {
			t.Errorf("%s in valid", f.Rel)
		}
		if !InValid(f.Rel, 0.5) {
			t.Errorf("%s leaves valid when the fraction grows", f.Rel)
		}
	}
	for _, f := range g.Train {
		if InValid(f.Rel, 0.3) || strings.Contains(f.Rel, "testdata") {
			t.Errorf("%s in train", f.Rel)
		}
	}
	g0, _ := Open(root, 0)
	if len(g0.Valid) != 0 {
		t.Error("fraction 0 holds files out")
	}
	a, _ := g.Text("train", 60)
	b, _ := g.Text("train", 60)
	if a != b || len(a) > 60 || len(a) == 0 {
		t.Errorf("bounded text %q", a)
	}
	all, _ := g.Text("train", 0)
	if int64(len(all)) <= 60 {
		t.Error("unbounded text is short")
	}
	docs, err := g.Docs("train", 20)
	if err != nil || len(docs) == 0 || docs[0].Pkg != "many" {
		t.Fatalf("docs %+v %v", docs, err)
	}
	txt, _ := g.Read(docs[0])
	if int64(len(txt)) != docs[0].Bytes || !strings.HasPrefix(txt, "package many\n\npackage many") {
		t.Errorf("doc text %d bytes, want %d", len(txt), docs[0].Bytes)
	}
	if _, err := Open(t.TempDir(), 0.1); err == nil {
		t.Error("a tree without .go files accepted")
	}
	if _, err := g.Text("test", 0); err == nil {
		t.Error("unknown split accepted")
	}
}

func TestRealGoRoot(t *testing.T) {
	r, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Open(r, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	frac := float64(len(g.Valid)) / float64(len(g.Train)+len(g.Valid))
	if len(g.Train) < 1000 || frac < 0.07 || frac > 0.13 {
		t.Errorf("GOROOT split %d/%d", len(g.Train), len(g.Valid))
	}
	if _, err := os.Stat(filepath.Join(g.Src, "runtime", "proc.go")); err != nil {
		t.Errorf("%s is not a Go source tree: %v", g.Src, err)
	}
}

func TestMeterBitsPerByte(t *testing.T) {
	// Uniform logits over 4 tokens of 2 bytes each: ln 4 nats = 2 bits per
	// token, 1 bit per byte.
	m := NewMeter([]int{2, 2, 2, 2})
	uniform := []float32{0.5, 0.5, 0.5, 0.5}
	for pos := 0; pos < 2000; pos++ {
		if err := m.Row(pos, uniform, int64(pos%4)); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(m.BPB()-1) > 1e-9 {
		t.Errorf("bpb %v, want 1", m.BPB())
	}
	if m.BucketTokens[0] != 1023 || m.BucketTokens[1] != 2000-1023 || !math.IsNaN(m.BucketLoss(2)) {
		t.Errorf("buckets %v", m.BucketTokens)
	}
	if math.Abs(m.BucketLoss(0)-math.Log(4)) > 1e-9 {
		t.Errorf("bucket loss %v", m.BucketLoss(0))
	}
	// A sure prediction costs nothing; bytes still count.
	m2 := NewMeter([]int{1, 3})
	_ = m2.Row(0, []float32{0, 100}, 1)
	if m2.Bytes != 3 || m2.BPB() > 1e-30 {
		t.Errorf("sure prediction: %v nats over %d bytes", m2.Nats, m2.Bytes)
	}
	if err := m2.Row(0, []float32{0, 1}, 5); err == nil {
		t.Error("token outside the logits accepted")
	}
	if !math.IsNaN(BitsPerByte(1, 0)) {
		t.Error("no bytes gives a number")
	}
}

func TestComments(t *testing.T) {
	root := t.TempDir()
	src := "// Copyright 2009 The Go Authors.\n// Use of this source code\npackage a\n\n//go:build linux\n\n// Hello,   world.\n//\n// It reads\tfiles.\nfunc f() {} // trailing comments are code lines\n  // indented one\n"
	if err := os.MkdirAll(filepath.Join(root, "src", "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "src", "a", "a.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := Open(root, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Comments("train", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hello, world. It reads files. indented one"; got != want {
		t.Errorf("Comments = %q, want %q", got, want)
	}
	if got, _ := g.Comments("train", 8); got != "Hello, w" {
		t.Errorf("Comments bounded to 8 bytes = %q", got)
	}
}
