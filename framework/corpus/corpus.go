// Package corpus is the Go distribution's own source tree as a built-in real
// text corpus: present wherever liquidlab builds, the same files for the same
// Go release, and long enough for 32k-token documents.
//
// The corpus is every .go file under GOROOT/src outside testdata directories.
// The train/valid split is by file and fixed: a file is held out when the
// FNV-1a hash of its slash-separated path relative to GOROOT/src, as a fraction
// of 2⁶⁴, is below the valid fraction; so a file never moves between splits
// when the fraction, the seed or the size bound changes, only when it grows
// past a smaller fraction. Bounded texts take whole files in the order of that
// hash (a fixed pseudo-random order, so a bound samples many packages). Long
// documents are the files of one package (directory) in one split,
// concatenated in file-name order.
//
// Metrics are in bits per byte: total nats / ln 2 / UTF-8 bytes of the text
// whose tokens were scored, comparable across tokenizers.
package corpus

import (
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// File is one source file of the corpus.
type File struct {
	Rel  string // path relative to GOROOT/src, slash-separated
	Size int64
	hash uint64
}

// Pkg is the file's package directory.
func (f File) Pkg() string { return path.Dir(f.Rel) }

// GoRoot is the split file list of GOROOT/src.
type GoRoot struct {
	Src          string // GOROOT/src
	Train, Valid []File // sorted by path
}

// Root returns the Go installation's root: runtime.GOROOT() when it holds a
// src directory, else what `go env GOROOT` says.
func Root() (string, error) {
	// runtime.GOROOT is deprecated for finding the toolchain, but the
	// build's own root is what the corpus promises; `go env` is the fallback.
	if r := runtime.GOROOT(); r != "" {
		if st, err := os.Stat(filepath.Join(r, "src")); err == nil && st.IsDir() {
			return r, nil
		}
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("corpus: finding GOROOT: runtime.GOROOT() has no src directory and `go env GOROOT` failed: %w", err)
	}
	r := strings.TrimSpace(string(out))
	if st, err := os.Stat(filepath.Join(r, "src")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("corpus: GOROOT %q has no src directory (is a Go distribution installed?)", r)
	}
	return r, nil
}

// pathHash is FNV-1a 64 of the relative path.
func pathHash(rel string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(rel))
	return h.Sum64()
}

// InValid reports whether the file at rel belongs to the valid split.
func InValid(rel string, validFraction float64) bool {
	return float64(pathHash(rel)) < validFraction*math.Exp2(64)
}

// Open lists root/src and splits it.
func Open(root string, validFraction float64) (*GoRoot, error) {
	if validFraction < 0 || validFraction >= 1 {
		return nil, fmt.Errorf("corpus: valid fraction %v: want [0, 1)", validFraction)
	}
	src := filepath.Join(root, "src")
	g := &GoRoot{Src: src}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f := File{Rel: rel, Size: info.Size(), hash: pathHash(rel)}
		if InValid(rel, validFraction) {
			g.Valid = append(g.Valid, f)
		} else {
			g.Train = append(g.Train, f)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus: reading %s: %w", src, err)
	}
	if len(g.Train)+len(g.Valid) == 0 {
		return nil, fmt.Errorf("corpus: %s has no .go files", src)
	}
	return g, nil
}

// Split returns the files of "train" or "valid".
func (g *GoRoot) Split(name string) ([]File, error) {
	switch name {
	case "train":
		return g.Train, nil
	case "valid":
		return g.Valid, nil
	}
	return nil, fmt.Errorf("corpus: unknown split %q (train, valid)", name)
}

// Text returns whole files of a split in hash order, as many as fit in
// maxBytes (at least one), joined by newlines; maxBytes ≤ 0 means all.
func (g *GoRoot) Text(split string, maxBytes int64) (string, error) {
	files, err := g.Split(split)
	if err != nil {
		return "", err
	}
	order := append([]File(nil), files...)
	sort.Slice(order, func(i, j int) bool { return order[i].hash < order[j].hash })
	var sb strings.Builder
	for _, f := range order {
		if maxBytes > 0 && sb.Len() > 0 && int64(sb.Len())+f.Size+1 > maxBytes {
			continue
		}
		b, err := os.ReadFile(filepath.Join(g.Src, filepath.FromSlash(f.Rel)))
		if err != nil {
			return "", fmt.Errorf("corpus: %w", err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// Doc is a long document: the files of one package in one split.
type Doc struct {
	Pkg   string
	Files []string
	Bytes int64
}

// Docs returns the split's package documents of at least minBytes, largest
// first (ties by package path).
func (g *GoRoot) Docs(split string, minBytes int64) ([]Doc, error) {
	files, err := g.Split(split)
	if err != nil {
		return nil, err
	}
	byPkg := map[string]*Doc{}
	for _, f := range files { // sorted by path (WalkDir order): file-name order within a package
		d := byPkg[f.Pkg()]
		if d == nil {
			d = &Doc{Pkg: f.Pkg()}
			byPkg[f.Pkg()] = d
		}
		d.Files = append(d.Files, f.Rel)
		d.Bytes += f.Size + 1
	}
	var out []Doc
	for _, d := range byPkg {
		if d.Bytes >= minBytes {
			out = append(out, *d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].Pkg < out[j].Pkg
	})
	return out, nil
}

// Read returns a document's text: its files joined by newlines.
func (g *GoRoot) Read(d Doc) (string, error) {
	var sb strings.Builder
	for _, rel := range d.Files {
		b, err := os.ReadFile(filepath.Join(g.Src, filepath.FromSlash(rel)))
		if err != nil {
			return "", fmt.Errorf("corpus: %w", err)
		}
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// Comments returns the prose of the split's comments: the text of every line
// comment ("// …", not directives such as //go:build, nor the "Copyright …"
// block every file starts with) of its files in hash
// order, joined by single spaces, up to maxBytes (at least one file's). It is
// real English text with the Go tree's vocabulary, varied enough that no two
// passkey training sequences share their filler.
func (g *GoRoot) Comments(split string, maxBytes int64) (string, error) {
	files, err := g.Split(split)
	if err != nil {
		return "", err
	}
	order := append([]File(nil), files...)
	sort.Slice(order, func(i, j int) bool { return order[i].hash < order[j].hash })
	var sb strings.Builder
	for _, f := range order {
		if maxBytes > 0 && int64(sb.Len()) >= maxBytes {
			break
		}
		b, err := os.ReadFile(filepath.Join(g.Src, filepath.FromSlash(f.Rel)))
		if err != nil {
			return "", fmt.Errorf("corpus: %w", err)
		}
		license := false // in a "Copyright …" block, which every file repeats
		for _, line := range strings.Split(string(b), "\n") {
			c, ok := strings.CutPrefix(strings.TrimSpace(line), "//")
			license = ok && (license || strings.HasPrefix(strings.TrimSpace(c), "Copyright "))
			if !ok || license || strings.HasPrefix(c, "go:") || strings.HasPrefix(c, "line ") {
				continue
			}
			if c = strings.Join(strings.Fields(c), " "); c == "" {
				continue
			}
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(c)
		}
	}
	s := sb.String()
	if maxBytes > 0 && int64(len(s)) > maxBytes {
		s = strings.ToValidUTF8(s[:maxBytes], "")
	}
	return s, nil
}
