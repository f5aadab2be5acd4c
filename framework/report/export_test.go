package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"liquidlab/framework/results"
)

// TestCellsCSVIsNumeric parses the CSV export back: every metric field is a
// number at full precision, and the samples are the repeats in run order.
func TestCellsCSVIsNumeric(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, CellsTable(runA(), []string{"loss", "accuracy"}), "csv"); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	r := rows[1] // a0
	med, err := strconv.ParseFloat(r[col["loss"]], 64)
	if err != nil || med != 2.415 {
		t.Errorf("loss median %q (%v), want 2.415", r[col["loss"]], err)
	}
	if n := r[col["loss_n"]]; n != "8" {
		t.Errorf("loss_n = %q, want 8", n)
	}
	got := strings.Fields(r[col["loss_samples"]])
	if len(got) != len(loss8) {
		t.Fatalf("loss_samples %q: want %d values", r[col["loss_samples"]], len(loss8))
	}
	for i, s := range got {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v != loss8[i] {
			t.Errorf("sample %d = %q, want %v (run order, exact)", i, s, loss8[i])
		}
	}
	spread, err := strconv.ParseFloat(r[col["loss_spread_pct"]], 64)
	if err != nil || math.Abs(spread-maxRelDev(finite(loss8), 2.415)) > 1e-12 {
		t.Errorf("loss_spread_pct %q (%v)", r[col["loss_spread_pct"]], err)
	}
}

func TestCellsJSONIsNumeric(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, CellsTable(runA(), []string{"loss"}), "json"); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if v, ok := out.Rows[1]["loss"].(float64); !ok || v != 2.29425 {
		t.Errorf("a1 loss = %#v, want the number 2.29425", out.Rows[1]["loss"])
	}
	if v := out.Rows[3]["loss"]; v != "NaN" {
		t.Errorf("a3 loss = %#v, want \"NaN\" (JSON has no NaN)", v)
	}
}

func TestNullAxisFlagged(t *testing.T) {
	m := func(loss float64, tps float64) *results.Metrics {
		return &results.Metrics{Samples: map[string][]float64{"valid_loss": {loss, loss + 0.5}, "train_tokens_per_s": {tps, tps + 1}}}
	}
	axes := func(p, w string) map[string]string { return map[string]string{"pattern": p, "window": w} }
	recs := []*results.Record{
		rec("x", "c0", 0, "done", axes("all", "8"), m(2.0, 100)),
		rec("x", "c1", 1, "done", axes("last", "8"), m(2.0, 130)),
		rec("x", "c2", 2, "done", axes("all", "16"), m(1.9, 90)),
		rec("x", "c3", 3, "done", axes("last", "16"), m(1.9, 95)),
	}
	notes := strings.Join(CellsTable(recs, nil).Notes, "\n")
	if !strings.Contains(notes, "axis pattern changed no metric") {
		t.Errorf("pattern changes no metric but is not flagged:\n%s", notes)
	}
	if strings.Contains(notes, "axis window changed") {
		t.Errorf("window changes valid_loss but is flagged:\n%s", notes)
	}
	// One repeat differing in the last bit is a change.
	recs[3].Metrics.Samples["valid_loss"][1] = math.Nextafter(2.4, 3)
	notes = strings.Join(CellsTable(recs, nil).Notes, "\n")
	if strings.Contains(notes, "axis pattern changed no metric") {
		t.Errorf("pattern changed one repeat but is still flagged:\n%s", notes)
	}
}

func TestConfigDiff(t *testing.T) {
	mk := func(cfg string, axes map[string]string) *results.Record {
		r := rec("x", "c", 0, "done", axes, &results.Metrics{})
		r.Config = []byte(cfg)
		return r
	}
	a := []*results.Record{
		mk("seed = 1\ntrain.lr = 0.001\nmodel.num_flows = 0\n", map[string]string{"model.num_flows": "0"}),
		mk("seed = 1\ntrain.lr = 0.001\nmodel.num_flows = 4\n", map[string]string{"model.num_flows": "4"}),
	}
	b := []*results.Record{mk("seed = 1\ntrain.lr = 0.002\nmodel.num_flows = 0\n", nil)}
	got := strings.Join(ConfigDiff(a, b), "\n")
	if !strings.Contains(got, "train.lr: A=0.001 B=0.002") || strings.Contains(got, "seed") {
		t.Errorf("diff:\n%s", got)
	}
	if !strings.Contains(got, "model.num_flows: A=(unset or varied) B=0") {
		t.Errorf("the axis varied in A should show as varied:\n%s", got)
	}
	if d := ConfigDiff(a[:1], a[:1]); len(d) != 1 || !strings.Contains(d[0], "share every setting") {
		t.Errorf("same config: %v", d)
	}
}

func TestSplitByAxis(t *testing.T) {
	recs := runA() // lr × method
	values, groups := SplitByAxis(recs, "method")
	if len(values) != 2 || values[0] != "euler" || values[1] != "rk4" || len(groups[0]) != 2 || len(groups[1]) != 2 {
		t.Fatalf("values %v, groups %d/%d", values, len(groups[0]), len(groups[1]))
	}
	if _, ok := groups[0][0].Info.Axes["method"]; ok {
		t.Error("the split axis should be removed from the copies")
	}
	if _, ok := recs[0].Info.Axes["method"]; !ok {
		t.Error("SplitByAxis modified its input")
	}
	tab := Compare(groups[0], groups[1], []string{"loss"}, 0)
	// a0 (lr 0.001, euler) pairs with a1 (lr 0.001, rk4); a3 (rk4, lr 0.01) failed.
	if len(tab.Rows) != 1 || tab.Rows[0][1] != "a0" || !strings.HasPrefix(tab.Rows[0][3], "2.294") {
		t.Errorf("cells should match on lr: %v", tab.Rows)
	}
}

func TestBenchColumns(t *testing.T) {
	r := rec("x", "c0", 0, "done", nil, &results.Metrics{Bench: []results.BenchRow{
		{Mode: "forward", SeqLen: 1024, TimesS: []float64{0.2, 0.1, 0.3}, MedianS: 0.2, TokensPerS: 5120, PeakMemGB: 0.5}}})
	names := MetricNames([]*results.Record{r})
	for _, want := range []string{"forward@1024", "forward@1024.s", "forward@1024.gb"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric names %v lack %s", names, want)
		}
	}
	tab := CellsTable([]*results.Record{r}, []string{"forward@1024", "forward@1024.s", "forward@1024.gb"})
	if got := tab.Rows[0][1:]; got[0] != "5120" || got[1] != "0.2000 ± 50%" || got[2] != "0.5000" {
		t.Errorf("bench columns %q", got)
	}
	if err := CheckMetrics([]*results.Record{r}, []string{"forward@2048"}); err == nil {
		t.Error("a length that was not benchmarked should be unknown")
	}
}
