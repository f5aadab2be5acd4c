package results_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

func TestCellName(t *testing.T) {
	id := results.CellID([]byte("a = 1\n"), nil)
	tests := []struct {
		axes []results.AxisValue
		want string
	}{
		{nil, id},
		{[]results.AxisValue{{"model.num_flows", "4"}, {"components.flows.options.share_params", "false"}},
			"num_flows=4,share_params=false-" + id[:8]},
		// Two axes with the same last segment keep their full keys.
		{[]results.AxisValue{{"components.ode.options.method", "rk4"}, {"components.liquid.options.method", "euler"}},
			"components.ode.options.method=rk4,components.liquid.options.method=euler-" + id[:8]},
		// Path separators and other characters are sanitised.
		{[]results.AxisValue{{"components.flows.impl", "./bin/my flows"}}, "impl=._bin_my_flows-" + id[:8]},
	}
	for _, tt := range tests {
		if got := results.CellName(tt.axes, id); got != tt.want {
			t.Errorf("CellName(%v) = %q, want %q", tt.axes, got, tt.want)
		}
	}
	long := results.CellName([]results.AxisValue{{"data.source", strings.Repeat("x", 300)}}, id)
	if len(long) != 96+9 || !strings.HasSuffix(long, "-"+id[:8]) {
		t.Errorf("long name %q (%d bytes): want 96 bytes of axes and the hash suffix", long, len(long))
	}
	ok := regexp.MustCompile(`^[A-Za-z0-9_+=,-][A-Za-z0-9._+=,-]*$`)
	for _, v := range []string{".hidden", "a/b", `c\d`, "e\x00f", "ü"} {
		n := results.CellName([]results.AxisValue{{"k", v}}, id)
		if !ok.MatchString(n) {
			t.Errorf("CellName with value %q = %q: not a safe directory name", v, n)
		}
		if err := (results.Store{Root: t.TempDir()}).Cell("exp", n).Begin(results.RunInfo{}, nil, nil); err != nil {
			t.Errorf("CellName with value %q = %q: %v", v, n, err)
		}
	}
}

// Runs recorded before cells had readable names (directories named by a
// 12-digit hash) still load and tabulate, next to a cell of the new layout.
func TestOldLayoutReads(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/oldlayout")); err != nil {
		t.Fatal(err)
	}
	store := results.Store{Root: root}
	c := store.Cell("ablation-flows", results.CellName([]results.AxisValue{{"model.num_flows", "8"}}, "0123456789ab"))
	if err := c.Begin(results.RunInfo{CellIndex: 2, Axes: map[string]string{"model.num_flows": "8"}}, []byte("model.num_flows = 8\n"), nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Finish(results.Metrics{Values: map[string]float64{"train_loss": 0.5, "valid_loss": 0.5, "params": 1000}}, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := store.Records("ablation-flows")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range recs {
		if r.Status != results.StatusDone || r.Metrics == nil {
			t.Errorf("cell %s: status %q metrics %v, want a done cell with metrics (%s)", r.Cell.ID, r.Status, r.Metrics, r.Error)
		}
		ids = append(ids, r.Cell.ID)
	}
	if want := "3f2a9c0d51e7 8b41e6a2c90f num_flows=8-01234567"; strings.Join(ids, " ") != want {
		t.Fatalf("cells %v, want %s", ids, want)
	}
	var sb strings.Builder
	if err := report.Render(&sb, report.CellsTable(recs, []string{"train_loss"}), "csv"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3f2a9c0d51e7", "1.25", "8b41e6a2c90f", "0.75", "num_flows=8-01234567", "0.5"} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("table has no %q:\n%s", want, sb.String())
		}
	}
}

// KeepSteps keeps the per-step lines of the finished repeats only and appends.
func TestKeepSteps(t *testing.T) {
	c := results.Store{Root: t.TempDir()}.Cell("exp", "c")
	if err := c.Begin(results.RunInfo{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.CreateSteps()
	if err != nil {
		t.Fatal(err)
	}
	for rep := 1; rep <= 3; rep++ {
		w.SetRepeat(rep)
		for s := 1; s <= 2; s++ {
			if err := w.Write(results.StepRecord{Step: s}); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()
	if w, err = c.KeepSteps(2); err != nil {
		t.Fatal(err)
	}
	w.SetRepeat(3)
	w.Write(results.StepRecord{Step: 1})
	w.Close()
	recs, err := results.ReadSteps(c.StepsPath())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, filepath.Join(string(rune('0'+r.Repeat)), string(rune('0'+r.Step))))
	}
	if strings.Join(got, " ") != "1/1 1/2 2/1 2/2 3/1" {
		t.Errorf("records (repeat/step) %v, want repeats 1 and 2 kept and one new line of repeat 3", got)
	}
}

func TestRepeatsFile(t *testing.T) {
	c := results.Store{Root: t.TempDir()}.Cell("exp", "c")
	if err := c.Begin(results.RunInfo{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if recs, err := c.Repeats(); err != nil || recs != nil {
		t.Fatalf("no file: %v, %v; want none", recs, err)
	}
	in := []results.RepeatRecord{{Repeat: 1, Seed: 1, Metrics: map[string]results.Num{"loss": 1}}, {Repeat: 2, Seed: 2, Metrics: map[string]results.Num{"loss": 2}}}
	if err := c.SaveRepeats(in); err != nil {
		t.Fatal(err)
	}
	recs, err := c.Repeats()
	if err != nil || len(recs) != 2 || recs[1].Metrics["loss"] != 2 || recs[1].Seed != 2 {
		t.Fatalf("read back %v, %v", recs, err)
	}
	if err := c.SaveRepeats([]results.RepeatRecord{{Repeat: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Repeats(); err == nil || !strings.Contains(err.Error(), "is repeat 2, want 1") {
		t.Errorf("misnumbered repeats: %v, want an error", err)
	}
	if err := c.SaveRepeats(nil); err != nil {
		t.Fatal(err)
	}
	if recs, err := c.Repeats(); err != nil || recs != nil {
		t.Errorf("after removal: %v, %v", recs, err)
	}
}

func TestRewriteMetrics(t *testing.T) {
	c := results.Store{Root: t.TempDir()}.Cell("exp", "c")
	if err := c.Begin(results.RunInfo{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	m := results.Metrics{Values: map[string]float64{"loss": 2}}
	if err := c.RewriteMetrics(m); err == nil || !strings.Contains(err.Error(), `status "running"`) {
		t.Errorf("rewrite of a running cell: %v, want an error", err)
	}
	if err := c.Finish(results.Metrics{Values: map[string]float64{"loss": 1}}, nil); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Load()
	if err := c.RewriteMetrics(m); err != nil {
		t.Fatal(err)
	}
	after, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	if after.Metrics.Values["loss"] != 2 || after.Status != results.StatusDone || !after.Info.End.Equal(before.Info.End) {
		t.Errorf("after rewrite: loss %v status %s end %v (was %v)", after.Metrics.Values["loss"], after.Status, after.Info.End, before.Info.End)
	}
}
