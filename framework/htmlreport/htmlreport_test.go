package htmlreport

import (
	"bytes"
	"context"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

// testCells is a two-cell run: three repeats of a falling loss curve each,
// validation every 10 steps, and a bench at four lengths.
func testCells() []Cell {
	var cells []Cell
	for ci, scale := range []float64{1, 1.3} {
		rec := &results.Record{
			Cell:   results.Cell{ID: []string{"c0", "c1"}[ci], Experiment: "t"},
			Info:   results.RunInfo{Axes: map[string]string{"num_flows": []string{"0", "4"}[ci]}},
			Status: results.StatusDone,
			Metrics: &results.Metrics{Values: map[string]float64{"valid_loss": 2 * scale},
				Bench: []results.BenchRow{}},
		}
		for _, n := range []int{1024, 2048, 4096, 8192} {
			s := float64(n) / 8000 * scale
			rec.Metrics.Bench = append(rec.Metrics.Bench, results.BenchRow{Mode: "forward", SeqLen: n, Batch: 1,
				MedianS: s, TokensPerS: float64(n) / s, PeakMemGB: 0.5 + float64(n)/1e5})
		}
		c := Cell{Record: rec, Label: "num_flows=" + rec.Info.Axes["num_flows"]}
		for rep := 1; rep <= 3; rep++ {
			for step := 1; step <= 40; step++ {
				r := results.StepRecord{Repeat: rep, Step: step,
					Loss: results.Num(scale * (2 + 3*math.Exp(-float64(step)/10) + 0.05*float64(rep)))}
				if step%10 == 0 {
					v := float64(r.Loss) + 0.1
					r.ValidLoss = &v
				}
				c.Steps = append(c.Steps, r)
			}
		}
		cells = append(cells, c)
	}
	return cells
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	cells := testCells()
	recs := []*results.Record{cells[0].Record, cells[1].Record}
	rep, err := Write(dir, "liquidlab: t", report.CellsTable(recs, nil), cells)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"train_loss", "valid_loss", "bench_time", "bench_tokens", "bench_memory"}
	if len(rep.Figures) != len(want) {
		t.Fatalf("figures %v, want %v", rep.Figures, want)
	}
	page, err := os.ReadFile(rep.Index)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		if _, err := os.Stat(filepath.Join(dir, name+".svg")); err != nil {
			t.Error(err)
		}
		f, err := os.Open(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Error(err)
			continue
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s.png: %v", name, err)
		}
		f.Close()
		if !bytes.Contains(page, []byte(`<figure id="`+name+`">`)) {
			t.Errorf("index.html lacks figure %s", name)
		}
	}
	if bytes.Count(page, []byte("<svg")) != len(want) || bytes.Contains(page, []byte("<?xml")) {
		t.Errorf("index.html should inline %d SVGs without XML prologs", len(want))
	}
	for _, bad := range []string{"<script", "http://", "https://"} {
		if bytes.Contains(bytes.ReplaceAll(page, []byte("http://www.w3.org/"), nil), []byte(bad)) {
			t.Errorf("index.html contains %q: it must be self-contained", bad)
		}
	}
	if !strings.Contains(string(page), "num_flows=4") {
		t.Error("legend/table lacks the axis label")
	}
}

func TestNoDataNoFigures(t *testing.T) {
	rec := &results.Record{Cell: results.Cell{ID: "x"}, Status: results.StatusDone, Metrics: &results.Metrics{}}
	rep, err := Write(t.TempDir(), "empty", report.CellsTable([]*results.Record{rec}, nil), []Cell{{Record: rec, Label: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Figures) != 0 {
		t.Errorf("figures %v from no data", rep.Figures)
	}
}

// TestPageRendersInChromium opens the page in headless Chromium, takes a
// screenshot and checks that the plots were drawn: the lines' colours (not
// grey: text, grid and borders are grey) cover a good number of pixels.
func TestPageRendersInChromium(t *testing.T) {
	browser := ""
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
	}
	dir := t.TempDir()
	cells := testCells()
	rep, err := Write(dir, "liquidlab: t", report.CellsTable([]*results.Record{cells[0].Record, cells[1].Record}, nil), cells)
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,4000",
		"--screenshot="+shot, "file://"+rep.Index)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", browser, err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	colored := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			mx, mn := max(r, g, bl), min(r, g, bl)
			if mx-mn > 0x4000 { // saturated: a plot line, point or band
				colored++
			}
		}
	}
	if keep := os.Getenv("HTMLREPORT_SHOT"); keep != "" {
		if b, err := os.ReadFile(shot); err == nil {
			os.WriteFile(keep, b, 0o644) // for a person to look at
		}
	}
	t.Logf("%d coloured pixels in a %dx%d screenshot", colored, b.Dx(), b.Dy())
	if colored < 5000 {
		t.Errorf("only %d coloured pixels: the plots did not render (screenshot %s)", colored, shot)
	}
}
