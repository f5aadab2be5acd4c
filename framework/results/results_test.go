package results

import (
	"encoding/json"
	"errors"
	"liquidlab/framework/golden"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testInfo(i int, axes map[string]string) RunInfo {
	return RunInfo{
		CellIndex: i, Axes: axes, Commit: "0123456789abcdef0123456789abcdef01234567", Dirty: true,
		Machine: Machine{Host: "box", CPU: "Test CPU", Cores: 8, MemGB: 31.3, GoVersion: "go1.26.8", OS: "linux/amd64"},
		BLAS:    "openblas", Start: t0,
	}
}

var testPlugins = []PluginInfo{
	{Kind: "flows", Impl: "coupling", Version: "0.1.0", Path: "bin/flows", SHA256: strings.Repeat("ab", 32)},
	{Kind: "ode", Impl: "odefunc", Version: "0.1.0", Path: "bin/ode", SHA256: strings.Repeat("cd", 32)},
}

func TestCellID(t *testing.T) {
	base := CellID([]byte("a = 1\n"), []string{"x", "y"})
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(base) {
		t.Fatalf("CellID = %q, want 12 hex digits", base)
	}
	if again := CellID([]byte("a = 1\n"), []string{"x", "y"}); again != base {
		t.Errorf("CellID not deterministic: %q vs %q", again, base)
	}
	tests := []struct {
		name string
		cfg  string
		sums []string
	}{
		{"config changed", "a = 2\n", []string{"x", "y"}},
		{"checksum changed", "a = 1\n", []string{"x", "z"}},
		{"checksum order", "a = 1\n", []string{"y", "x"}},
		{"boundary moved", "a = 1\n", []string{"xy"}},
		{"no plugins", "a = 1\n", nil},
		{"checksum moved into config", "a = 1\nx", []string{"y"}},
	}
	for _, tt := range tests {
		if got := CellID([]byte(tt.cfg), tt.sums); got == base {
			t.Errorf("%s: CellID collides with base %q", tt.name, base)
		}
	}
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") || strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	for _, content := range []string{"first", "second, longer content", ""} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
		noTemps(t, dir)
	}
	// Renaming onto a directory fails after the temp file was written: it
	// must be cleaned up.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "sub", "keep"), nil, 0o644)
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x")); err == nil {
		t.Error("writing over a non-empty directory succeeded")
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
	noTemps(t, dir)
}

func TestLifecycle(t *testing.T) {
	s := Store{Root: t.TempDir()}
	c := s.Cell("exp", "abc123")
	want := func(step, status string) {
		t.Helper()
		got, err := c.Status()
		if err != nil || got != status {
			t.Fatalf("%s: Status() = %q, %v; want %q", step, got, err, status)
		}
	}
	want("before Begin", "")
	steps := []struct {
		name   string
		runErr error
		status string
	}{
		{"first attempt fails", errors.New("loss is NaN at step 7"), StatusFailed},
		{"redo succeeds", nil, StatusDone},
		{"forced rerun fails again", errors.New("plugin crashed"), StatusFailed},
	}
	for i, st := range steps {
		if err := c.Begin(testInfo(3, map[string]string{"lr": "0.01"}), []byte("lr = 0.01\n"), testPlugins); err != nil {
			t.Fatalf("%s: Begin: %v", st.name, err)
		}
		want(st.name+": after Begin", StatusRunning)
		if i > 0 {
			if _, err := os.Stat(filepath.Join(c.Dir, MetricsFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: Begin kept stale metrics.json (err %v)", st.name, err)
			}
		}
		w, err := c.Log()
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(st.name + "\n"))
		w.Close()
		m := Metrics{Values: map[string]float64{"attempt": float64(i)}}
		if err := c.Finish(m, st.runErr); err != nil {
			t.Fatalf("%s: Finish: %v", st.name, err)
		}
		want(st.name+": after Finish", st.status)
		r, err := c.Load()
		if err != nil {
			t.Fatal(err)
		}
		if r.Metrics == nil || r.Metrics.Values["attempt"] != float64(i) {
			t.Errorf("%s: metrics = %+v", st.name, r.Metrics)
		}
		wantErr := ""
		if st.runErr != nil {
			wantErr = st.runErr.Error()
		}
		if r.Error != wantErr {
			t.Errorf("%s: Error = %q", st.name, r.Error)
		}
		if r.Info.End.Before(r.Info.Start) {
			t.Errorf("%s: end %v before start %v", st.name, r.Info.End, r.Info.Start)
		}
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, LogFile))
	for _, st := range steps {
		if !strings.Contains(string(log), st.name) {
			t.Errorf("log lost the line of %q:\n%s", st.name, log)
		}
	}
	if n := strings.Count(string(log), "--- begin cell abc123"); n != len(steps) {
		t.Errorf("log has %d begin markers, want %d", n, len(steps))
	}
	noTemps(t, c.Dir)
}

func TestFailedCellKeepsPartialMetrics(t *testing.T) {
	c := Store{Root: t.TempDir()}.Cell("exp", "c1")
	if err := c.Begin(testInfo(0, nil), []byte(`{"lr": 0.1}`), nil); err != nil {
		t.Fatal(err)
	}
	m := Metrics{
		Values:  map[string]float64{"loss": math.NaN(), "steps": 7, "grad_norm": math.Inf(1), "min": math.Inf(-1)},
		Samples: map[string][]float64{"step_s": {0.5, math.NaN()}},
		Bench:   []BenchRow{{Mode: "full", SeqLen: 4096, PeakMemGB: math.NaN(), TimesS: []float64{1}}},
		Notes:   []string{"diverged"},
	}
	if err := c.Finish(m, errors.New("loss diverged")); err != nil {
		t.Fatal(err)
	}
	r, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusFailed || r.Error != "loss diverged" || r.ConfigFile != ConfigJSON {
		t.Errorf("status %q error %q config %q", r.Status, r.Error, r.ConfigFile)
	}
	got := r.Metrics
	if got == nil || got.Values["steps"] != 7 || !math.IsNaN(got.Values["loss"]) ||
		!math.IsInf(got.Values["grad_norm"], 1) || !math.IsInf(got.Values["min"], -1) ||
		!math.IsNaN(got.Samples["step_s"][1]) || !math.IsNaN(got.Bench[0].PeakMemGB) ||
		!reflect.DeepEqual(got.Notes, m.Notes) {
		t.Errorf("partial metrics not kept: %+v", got)
	}
}

func TestOnDiskFormat(t *testing.T) {
	c := Store{Root: t.TempDir()}.Cell("exp", "c1")
	info := testInfo(2, map[string]string{"seq_len": "4096", "mode": "chunked"})
	info.Machine.BLAS = "openblas"
	if err := c.Begin(info, []byte("[model]\nhidden_size = 64\n"), testPlugins); err != nil {
		t.Fatal(err)
	}
	run, _ := os.ReadFile(filepath.Join(c.Dir, RunFile))
	golden.Check(t, "run.json.golden", run)
	plugins, _ := os.ReadFile(filepath.Join(c.Dir, PluginsFile))
	golden.Check(t, "plugins.json.golden", plugins)
	m := Metrics{
		Values:  map[string]float64{"loss": 2.5, "accuracy": 0.25, "nan": math.NaN()},
		Samples: map[string][]float64{"loss": {2.4, 2.5, 2.7}},
		Bench: []BenchRow{{Mode: "chunked", SeqLen: 4096, Batch: 2, ChunkSize: 512, PeakMemGB: 1.25,
			TimesS: []float64{0.8, 0.9, 0.85}, MedianS: 0.85, SpreadS: 0.05, TokensPerS: 9637.6, Notes: []string{"warm"}}},
	}
	if err := c.Finish(m, nil); err != nil {
		t.Fatal(err)
	}
	metrics, _ := os.ReadFile(filepath.Join(c.Dir, MetricsFile))
	golden.Check(t, "metrics.json.golden", metrics)
	var back Metrics
	if err := json.Unmarshal(metrics, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.Values["nan"]) || !reflect.DeepEqual(back.Bench, m.Bench) || !reflect.DeepEqual(back.Samples, m.Samples) {
		t.Errorf("metrics round trip: %+v", back)
	}
	r, err := c.Load()
	if err != nil {
		t.Fatal(err)
	}
	info.Experiment = "exp"
	r.Info.End = time.Time{}
	if !reflect.DeepEqual(r.Info, info) || !reflect.DeepEqual(r.Plugins, testPlugins) ||
		string(r.Config) != "[model]\nhidden_size = 64\n" || r.ConfigFile != ConfigTOML {
		t.Errorf("Load = %+v", r)
	}
}

func TestConfigFormatSwitch(t *testing.T) {
	c := Store{Root: t.TempDir()}.Cell("exp", "c1")
	tests := []struct{ config, file, stale string }{
		{"a = 1\n", ConfigTOML, ConfigJSON},
		{" {\"a\": 1}\n", ConfigJSON, ConfigTOML},
		{"{ not json", ConfigTOML, ConfigJSON},
		{"", ConfigTOML, ConfigJSON},
	}
	for _, tt := range tests {
		if err := c.Begin(testInfo(0, nil), []byte(tt.config), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(c.Dir, tt.stale)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("config %q: stale %s left", tt.config, tt.stale)
		}
		r, err := c.Load()
		if err != nil {
			t.Fatal(err)
		}
		if r.ConfigFile != tt.file || string(r.Config) != tt.config {
			t.Errorf("config %q: stored as %s %q", tt.config, r.ConfigFile, r.Config)
		}
	}
}

func TestRecordsOrder(t *testing.T) {
	s := Store{Root: t.TempDir()}
	cells := []struct {
		id    string
		index int
	}{{"ffff", 0}, {"bbbb", 2}, {"aaaa", 1}, {"cccc", 2}, {"0000", 10}}
	for _, c := range cells {
		cell := s.Cell("exp", c.id)
		if c.index%2 == 1 {
			// Still running, in this process.
			l, err := cell.Lock()
			if err != nil {
				t.Fatal(err)
			}
			defer l.Unlock()
		}
		if err := cell.Begin(testInfo(c.index, nil), nil, nil); err != nil {
			t.Fatal(err)
		}
		if c.index%2 == 0 {
			if err := cell.Finish(Metrics{}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not cells: a directory without run.json, a hidden directory and a file.
	os.MkdirAll(filepath.Join(s.Root, "exp", "crashed-early"), 0o755)
	os.MkdirAll(filepath.Join(s.Root, "exp", ".trash"), 0o755)
	os.WriteFile(filepath.Join(s.Root, "exp", "README"), nil, 0o644)
	recs, err := s.Records("exp")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Cell.ID+":"+r.Status)
	}
	want := []string{"ffff:done", "aaaa:running", "bbbb:done", "cccc:done", "0000:done"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Records order = %v, want %v", got, want)
	}
}

func TestBadInput(t *testing.T) {
	root := t.TempDir()
	s := Store{Root: root}
	corrupt := s.Cell("exp", "corrupt")
	os.MkdirAll(corrupt.Dir, 0o755)
	os.WriteFile(filepath.Join(corrupt.Dir, RunFile), []byte("{not json"), 0o644)
	weird := s.Cell("exp2", "weird")
	os.MkdirAll(weird.Dir, 0o755)
	os.WriteFile(filepath.Join(weird.Dir, RunFile), []byte(`{"status":"paused"}`), 0o644)
	badMetrics := s.Cell("exp3", "m")
	if err := badMetrics.Begin(testInfo(0, nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(badMetrics.Dir, MetricsFile), []byte(`{"values":{"x":"lots"}}`), 0o644)

	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{"empty experiment", func() error { return s.Cell("", "id").Begin(RunInfo{}, nil, nil) }, "invalid experiment"},
		{"path in id", func() error { return s.Cell("exp", "../x").Begin(RunInfo{}, nil, nil) }, "invalid cell id"},
		{"dot id", func() error { _, err := s.Cell("exp", "..").Status(); return err }, "invalid cell id"},
		{"zero cell", func() error { _, err := Cell{}.Load(); return err }, "invalid experiment"},
		{"no dir", func() error { _, err := (Cell{Experiment: "e", ID: "i"}).Log(); return err }, "no directory"},
		{"finish without begin", func() error { return s.Cell("exp", "new").Finish(Metrics{}, nil) }, "finish without Begin"},
		{"log without begin", func() error { _, err := s.Cell("exp", "new2").Log(); return err }, "was Begin called"},
		{"load missing", func() error { _, err := s.Cell("exp", "none").Load(); return err }, "no such file"},
		{"corrupt run.json", func() error { _, err := corrupt.Status(); return err }, "run.json"},
		{"unknown status", func() error { _, err := weird.Status(); return err }, `unknown status "paused"`},
		{"records missing experiment", func() error { _, err := s.Records("nope"); return err }, `experiment "nope"`},
		{"records bad name", func() error { _, err := s.Records("a/b"); return err }, "invalid experiment"},
		{"corrupt metrics", func() error { _, err := badMetrics.Load(); return err }, "metrics.json"},
	}
	for _, tt := range tests {
		err := tt.run()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "x")); err == nil {
		t.Error("a bad cell id escaped the experiment directory")
	}
	for _, tc := range []struct{ exp, want string }{
		{"exp", "exp/corrupt: run.json"},
		{"exp3", "exp3/m: metrics.json"},
	} {
		recs, err := s.Records(tc.exp)
		if err != nil {
			t.Fatalf("Records(%s): %v", tc.exp, err)
		}
		if len(recs) != 1 || recs[0].Status != StatusBroken || !strings.Contains(recs[0].Error, tc.want) {
			t.Errorf("Records(%s) = %+v, want one broken cell whose error mentions %q", tc.exp, recs, tc.want)
		}
	}
}

// TestRecordsBrokenCellKeepsOthers: a corrupt metrics.json in one finished
// cell shows that cell as broken, with its axes, and the others as they are.
func TestRecordsBrokenCellKeepsOthers(t *testing.T) {
	s := Store{Root: t.TempDir()}
	for i, id := range []string{"good", "bad"} {
		c := s.Cell("exp", id)
		if err := c.Begin(testInfo(i, map[string]string{"lr": id}), nil, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Finish(Metrics{Values: map[string]float64{"x": 1}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(s.Root, "exp", "bad", MetricsFile), []byte(`{"values": {"x": tru`), 0o644)
	recs, err := s.Records("exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Status != StatusDone || recs[0].Metrics == nil {
		t.Fatalf("records: %+v", recs)
	}
	bad := recs[1]
	if bad.Status != StatusBroken || !strings.Contains(bad.Error, "metrics.json") || bad.Info.Axes["lr"] != "bad" {
		t.Errorf("bad cell: status %q error %q axes %v", bad.Status, bad.Error, bad.Info.Axes)
	}
}

func TestParseProc(t *testing.T) {
	cpu := []struct{ in, want string }{
		{"processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags: x\nmodel name\t: other\n", "AMD EPYC 7B13"},
		{"processor\t: 0\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4\n", "BCM2835"},
		{"garbage", ""},
		{"", ""},
	}
	for _, tt := range cpu {
		if got := parseCPUInfo(strings.NewReader(tt.in)); got != tt.want {
			t.Errorf("parseCPUInfo(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	mem := []struct {
		in   string
		want float64
	}{
		{"MemTotal:       32827564 kB\nMemFree: 1 kB\n", 31.3},
		{"MemFree: 1 kB\n", 0},
		{"MemTotal: lots kB\n", 0},
		{"MemTotal:\n", 0},
	}
	for _, tt := range mem {
		if got := parseMemInfo(strings.NewReader(tt.in)); got != tt.want {
			t.Errorf("parseMemInfo(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestDescribeMachineAndGit(t *testing.T) {
	m := DescribeMachine("pure-go")
	if m.Cores < 1 || m.GoVersion == "" || m.OS == "" || m.BLAS != "pure-go" || m.CPU == "" {
		t.Errorf("DescribeMachine = %+v", m)
	}
	if !strings.Contains(m.String(), "BLAS pure-go") {
		t.Errorf("Machine.String() = %q", m.String())
	}
	if c, d := GitCommit(t.TempDir()); c != "" || d {
		t.Errorf("GitCommit outside a repository = %q, %v", c, d)
	}
	if c, _ := GitCommit("."); c != "" && !regexp.MustCompile(`^[0-9a-f]{40,64}$`).MatchString(c) {
		t.Errorf("GitCommit(.) = %q, want a hex commit or nothing", c)
	}
}

// TestDone: only a cell recorded as done, with readable metrics and every
// needed file, may be skipped; otherwise the error names the reason.
func TestDone(t *testing.T) {
	s := Store{Root: t.TempDir()}
	c := s.Cell("exp", "c1")
	if err := c.Done(); err == nil || !strings.Contains(err.Error(), "never started") {
		t.Errorf("fresh cell: %v", err)
	}
	if err := c.Begin(testInfo(0, nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Done(); err == nil || !strings.Contains(err.Error(), `"running"`) {
		t.Errorf("running cell: %v", err)
	}
	if err := c.Finish(Metrics{Values: map[string]float64{"x": 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Done(); err != nil {
		t.Errorf("done cell: %v", err)
	}
	if err := c.Done(CheckpointFile); err == nil || !strings.Contains(err.Error(), CheckpointFile) {
		t.Errorf("done cell without its checkpoint: %v", err)
	}
	os.WriteFile(filepath.Join(c.Dir, CheckpointFile), []byte("x"), 0o644)
	if err := c.Done(CheckpointFile); err != nil {
		t.Errorf("done cell with its checkpoint: %v", err)
	}
	os.WriteFile(filepath.Join(c.Dir, MetricsFile), []byte(`{"values": {`), 0o644)
	if err := c.Done(); err == nil || !strings.Contains(err.Error(), MetricsFile) {
		t.Errorf("done cell with corrupt metrics: %v", err)
	}
}

// TestFinishMetricsWriteFails: when metrics.json cannot be written the cell
// is recorded as failed with the reason, not left running, and Begin removes
// the temporary files failed writes left.
func TestFinishMetricsWriteFails(t *testing.T) {
	s := Store{Root: t.TempDir()}
	c := s.Cell("exp", "c1")
	if err := c.Begin(testInfo(0, nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	// A non-empty directory where metrics.json goes: the rename fails.
	os.MkdirAll(filepath.Join(c.Dir, MetricsFile, "x"), 0o755)
	err := c.Finish(Metrics{Values: map[string]float64{"x": 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "write metrics") {
		t.Fatalf("Finish: %v", err)
	}
	rf, rerr := c.readRun()
	if rerr != nil {
		t.Fatal(rerr)
	}
	if rf.Status != StatusFailed || !strings.Contains(rf.Error, "write metrics") {
		t.Errorf("run.json: status %q error %q, want failed with the reason", rf.Status, rf.Error)
	}
	noTemps(t, c.Dir)
	os.RemoveAll(filepath.Join(c.Dir, MetricsFile))
	for _, name := range []string{CheckpointFile + ".tmp", ".run.json.tmp-123"} {
		os.WriteFile(filepath.Join(c.Dir, name), []byte("partial"), 0o644)
	}
	if err := c.Begin(testInfo(0, nil), nil, nil); err != nil {
		t.Fatal(err)
	}
	noTemps(t, c.Dir)
}
