package report

import (
	"bytes"
	"liquidlab/framework/golden"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/results"
)

func renderAll(t *testing.T, base string, tab *Table) {
	t.Helper()
	ext := map[string]string{"text": "txt", "markdown": "md", "csv": "csv", "json": "json"}
	for _, f := range Formats {
		var b bytes.Buffer
		if err := Render(&b, tab, f); err != nil {
			t.Fatalf("Render %s as %s: %v", base, f, err)
		}
		golden.Check(t, base+"."+ext[f]+".golden", b.Bytes())
	}
}

func rec(exp, id string, index int, status string, axes map[string]string, m *results.Metrics) *results.Record {
	return &results.Record{
		Cell: results.Cell{Dir: filepath.Join("results", exp, id), Experiment: exp, ID: id},
		Info: results.RunInfo{
			Experiment: exp, CellIndex: index, Axes: axes,
			Commit: "0123456789abcdef0123456789abcdef01234567",
			Machine: results.Machine{Host: "box", CPU: "Test CPU", Cores: 8, MemGB: 31.3,
				GoVersion: "go1.26.8", OS: "linux/amd64", BLAS: "openblas"},
			BLAS: "openblas", Start: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		},
		Status:  status,
		Metrics: m,
	}
}

func ax(lr, method string) map[string]string {
	return map[string]string{"lr": lr, "method": method, "hidden_size": "64"}
}

// scaled returns base·f for every repeat.
func scaled(base []float64, f float64) []float64 {
	out := make([]float64, len(base))
	for i, x := range base {
		out[i] = x * f
	}
	return out
}

var loss8 = []float64{2.41, 2.39, 2.44, 2.40, 2.43, 2.38, 2.42, 2.45}
var step8 = []float64{0.101, 0.099, 0.103, 0.100, 0.098, 0.102, 0.104, 0.097}

func runA() []*results.Record {
	return []*results.Record{
		rec("baseline", "a0", 0, "done", ax("0.001", "euler"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.31},
			Samples: map[string][]float64{"loss": loss8, "step_s": step8}}),
		rec("baseline", "a1", 1, "done", ax("0.001", "rk4"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.33},
			Samples: map[string][]float64{"loss": scaled(loss8, 0.95), "step_s": scaled(step8, 3.9)}}),
		rec("baseline", "a2", 2, "done", ax("0.01", "euler"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.28},
			Samples: map[string][]float64{"loss": {2.61, 2.58, 2.66}, "step_s": {0.1, 0.11, 0.105}}}),
		rec("baseline", "a3", 3, "failed", ax("0.01", "rk4"), &results.Metrics{
			Values:  map[string]float64{"loss": math.NaN(), "steps": 120},
			Samples: map[string][]float64{"step_s": {0.41, math.NaN(), 0.4}}}),
	}
}

func runB() []*results.Record {
	recs := []*results.Record{
		rec("chunked", "b0", 0, "done", ax("0.001", "euler"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.31},
			Samples: map[string][]float64{"loss": scaled(loss8, 1.001), "step_s": scaled(step8, 0.8)}}),
		rec("chunked", "b1", 1, "done", ax("0.001", "rk4"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.34},
			Samples: map[string][]float64{"loss": scaled(loss8, 0.9), "step_s": scaled(step8, 3.1)}}),
		rec("chunked", "b2", 2, "done", ax("0.01", "euler"), &results.Metrics{
			Values:  map[string]float64{"accuracy": 0.29},
			Samples: map[string][]float64{"loss": {2.5, 2.47, 2.55}, "step_s": {0.08, 0.085, 0.09}}}),
		rec("chunked", "b4", 4, "running", ax("0.1", "euler"), nil),
		rec("chunked", "b5", 5, "done", ax("0.1", "rk4"), &results.Metrics{Values: map[string]float64{"loss": 3}}),
	}
	return recs
}

func TestCellsTableGolden(t *testing.T) {
	recs := runA()
	recs[3].Error = "loss is NaN at step 120\n(plugin liquid)"
	renderAll(t, "cells", CellsTable(recs, nil))
	renderAll(t, "cells_selected", CellsTable(recs[:3], []string{"loss", "accuracy", "missing"}))
}

func TestSeqTableGolden(t *testing.T) {
	rows := []results.BenchRow{
		{Mode: "chunked", SeqLen: 8192, Batch: 1, ChunkSize: 1024, PeakMemGB: 1.92,
			TimesS: []float64{1.71, 1.65, 1.69}, TokensPerS: 4848},
		{Mode: "chunked", SeqLen: 4096, Batch: 1, ChunkSize: 1024, PeakMemGB: 1.1,
			TimesS: []float64{0.84, 0.81, 0.83, 0.95, 0.82}, MedianS: 0.83, SpreadS: 0.12, TokensPerS: 4935},
		{Mode: "full", SeqLen: 4096, Batch: 2, PeakMemGB: 3.4, MedianS: 2.2},
		{Mode: "full", SeqLen: 8192, Batch: 2, Notes: []string{"out of memory"}},
		{Mode: "chunked", SeqLen: 65536, Batch: 1, ChunkSize: 2048, PeakMemGB: 5.5, TimesS: []float64{14.2}},
	}
	renderAll(t, "seq", SeqTable(rows, SeedREADME, "box, AMD EPYC, 2 cores, 7.8 GB, linux/amd64, go1.26.8, BLAS openblas"))
	renderAll(t, "seq_empty", SeqTable(nil, nil, ""))
}

func TestCompareGolden(t *testing.T) {
	renderAll(t, "compare", Compare(runA(), runB(), nil, 0))
	// One cell each, no axes, different ids: paired with each other.
	a := []*results.Record{rec("x", "id1", 0, "done", nil, &results.Metrics{Samples: map[string][]float64{"t": {1, 2, 3, 4, 5}}})}
	b := []*results.Record{rec("y", "id2", 0, "done", nil, &results.Metrics{Samples: map[string][]float64{"t": {6, 7, 8, 9, 10}}})}
	renderAll(t, "compare_single", Compare(a, b, []string{"t"}, 0.01))
}

func TestCompareMatchesByID(t *testing.T) {
	mk := func(exp, id string, xs []float64) *results.Record {
		return rec(exp, id, 0, "done", nil, &results.Metrics{Samples: map[string][]float64{"t": xs}})
	}
	a := []*results.Record{mk("x", "c1", []float64{1, 2, 3, 4}), mk("x", "c2", []float64{1, 1, 1, 1})}
	b := []*results.Record{mk("y", "c2", []float64{5, 5, 5, 5}), mk("y", "c1", []float64{5, 6, 7, 8})}
	tab := Compare(a, b, nil, 0.05)
	want := [][]string{
		{"t", "c1", "2.500 ± ∞ ¹", "6.500 ± ∞ ¹", "+160.00% (p=0.029 n=4)"},
		{"t", "c2", "1 ± ∞ ¹", "5 ± ∞ ¹", "+400.00% (p=0.029 n=4)"},
		{"t", "geomean", "1.581", "5.701", "+260.56%"},
	}
	if !reflect.DeepEqual(tab.Rows, want) {
		t.Errorf("rows = %q\nwant %q", tab.Rows, want)
	}
}

func TestInputsNotModified(t *testing.T) {
	a, b := runA(), runB()
	a0, b0 := runA(), runB()
	CellsTable(a, nil)
	Compare(a, b, nil, 0)
	SeqTable([]results.BenchRow{{Mode: "m", SeqLen: 1, TimesS: []float64{3, 1, 2}}}, SeedREADME, "")
	for i := range a {
		if !reflect.DeepEqual(a[i].Metrics.Samples["loss"], a0[i].Metrics.Samples["loss"]) {
			t.Errorf("A cell %d samples modified", i)
		}
	}
	for i := range b {
		if b[i].Metrics != nil && !reflect.DeepEqual(b[i].Metrics.Samples["step_s"], b0[i].Metrics.Samples["step_s"]) {
			t.Errorf("B cell %d samples modified", i)
		}
	}
	// Nil records and nil metrics do not panic.
	CellsTable([]*results.Record{nil, rec("e", "c", 0, "", nil, nil)}, nil)
	Compare([]*results.Record{nil}, nil, []string{"loss"}, math.NaN())
}

// bruteMW enumerates every split of the pooled midranks: an oracle for the
// exact test.
func bruteMW(x, y []float64) float64 {
	r2, _ := midranks(x, y)
	n1, n := len(x), len(r2)
	w := 0
	for _, r := range r2[:n1] {
		w += r
	}
	var lo, hi, tot float64
	for mask := 0; mask < 1<<n; mask++ {
		if popcount(mask) != n1 {
			continue
		}
		s := 0
		for i := range n {
			if mask&(1<<i) != 0 {
				s += r2[i]
			}
		}
		tot++
		if s <= w {
			lo++
		}
		if s >= w {
			hi++
		}
	}
	return math.Min(1, 2*math.Min(lo, hi)/tot)
}

func popcount(m int) int {
	c := 0
	for ; m != 0; m &= m - 1 {
		c++
	}
	return c
}

func TestMannWhitney(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		want float64
	}{
		{"separated 5+5", []float64{1, 2, 3, 4, 5}, []float64{6, 7, 8, 9, 10}, 2.0 / 252},
		{"separated 4+4", []float64{5, 6, 7, 8}, []float64{1, 2, 3, 4}, 2.0 / 70},
		{"separated 3+3", []float64{1, 2, 3}, []float64{4, 5, 6}, 0.1},
		// R: wilcox.test(x, y, alternative = "g") gives W = 35, p = 0.1272.
		{"R wilcox.test example", []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46},
			[]float64{1.15, 0.88, 0.90, 0.74, 1.21}, 0.2544122544122544},
		{"ties", []float64{1, 2, 2, 3}, []float64{2, 3, 3, 4}, 0.2857142857142857},
		{"ties, unequal sizes", []float64{1, 1, 2, 2, 3}, []float64{2, 2, 3, 3, 3, 4}, 0.12987012987012986},
		{"all equal", []float64{5, 5, 5}, []float64{5, 5, 5}, 1},
		// benchmath (go-moremath's exact test with ties) gives p = 0 here.
		{"ties, 4+1", []float64{4, 3, 4, 3}, []float64{2}, 0.4},
		{"one each", []float64{1}, []float64{2}, 1},
		{"empty", nil, []float64{1, 2}, 1},
	}
	for _, tt := range tests {
		if got := mannWhitneyP(tt.x, tt.y); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s: p = %.15g, want %.15g", tt.name, got, tt.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n1, n2 := 1+rng.IntN(7), 1+rng.IntN(7)
		draw := func(n int, shift int) []float64 {
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(rng.IntN(5) + shift) // small range: many ties
			}
			return xs
		}
		x, y := draw(n1, 0), draw(n2, rng.IntN(3))
		if got, want := mannWhitneyP(x, y), bruteMW(x, y); math.Abs(got-want) > 1e-12 {
			t.Fatalf("trial %d: x=%v y=%v: p = %v, brute force %v", trial, x, y, got, want)
		}
	}
	// Beyond exactLimit the normal approximation is used; it must agree
	// closely with the exact distribution where both are available.
	for _, shift := range []float64{0, 0.3, 0.6} {
		x, y := make([]float64, 35), make([]float64, 35)
		for i := range x {
			x[i] = rng.NormFloat64()
			y[i] = math.Round((rng.NormFloat64()+shift)*4) / 4
		}
		exact, approx := mannWhitneyExact(x, y), mannWhitneyNormal(x, y)
		if math.Abs(exact-approx) > 0.01 {
			t.Errorf("shift %v: exact %v vs normal %v", shift, exact, approx)
		}
		if got := mannWhitneyP(x, y); got != approx {
			t.Errorf("n=70 should use the normal approximation: %v vs %v", got, approx)
		}
	}
}

func TestMedianCI(t *testing.T) {
	seq := func(n int) []float64 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i + 1)
		}
		return xs
	}
	tests := []struct {
		n      int
		ok     bool
		lo, hi float64
	}{
		{1, false, 0, 0}, {5, false, 0, 0}, {6, true, 1, 6}, {8, true, 1, 8},
		{9, true, 2, 8}, {10, true, 2, 9}, {20, true, 6, 15},
	}
	for _, tt := range tests {
		lo, hi, ok := medianCI(seq(tt.n), 0.95)
		if ok != tt.ok || ok && (lo != tt.lo || hi != tt.hi) {
			t.Errorf("n=%d: CI = [%v, %v] %v, want [%v, %v] %v", tt.n, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
	if n := minSamplesForCI(0.95); n != 6 {
		t.Errorf("minSamplesForCI(0.95) = %d, want 6", n)
	}
	for alpha, want := range map[float64]int{0.05: 4, 0.01: 5, 0.1: 4, 0.2: 3} {
		if n := minSamplesForTest(alpha); n != want {
			t.Errorf("minSamplesForTest(%v) = %d, want %d", alpha, n, want)
		}
	}
}

func TestFmtNum(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {120, "120"}, {-3, "-3"}, {2.5, "2.500"}, {0.25, "0.2500"}, {123.45, "123.5"}, {9637.6, "9638"},
		{-1.5, "-1.500"}, {20000, "20000"}, {0.00001234, "1.234e-05"}, {2e15, "2.000e+15"},
		{math.NaN(), "NaN"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"},
	}
	for _, tt := range tests {
		if got := fmtNum(tt.v); got != tt.want {
			t.Errorf("fmtNum(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for n, want := range map[int]string{4096: "4k", 32768: "32k", 1000: "1000", 0: "0"} {
		if got := lengthLabel(n); got != want {
			t.Errorf("lengthLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name   string
		tab    *Table
		format string
		want   string
	}{
		{"nil table", nil, "text", "nil table"},
		{"no columns", &Table{Title: "t"}, "csv", "no columns"},
		{"short row", &Table{Columns: []string{"a", "b"}, Rows: [][]string{{"1", "2"}, {"1"}}}, "json", "row 2 has 1 cells, want 2"},
		{"unknown format", &Table{Columns: []string{"a"}}, "html", `unknown format "html"`},
	}
	for _, tt := range tests {
		err := Render(&bytes.Buffer{}, tt.tab, tt.format)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
	// Markdown escapes pipes; empty tables render.
	var b bytes.Buffer
	if err := Render(&b, &Table{Columns: []string{"a|b"}, Rows: [][]string{{"x|y"}}}, "markdown"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `x\|y`) || !strings.Contains(b.String(), `a\|b`) {
		t.Errorf("markdown did not escape pipes:\n%s", b.String())
	}
	if err := Render(&b, &Table{Columns: []string{"a"}}, "text"); err != nil {
		t.Errorf("empty table: %v", err)
	}
}
