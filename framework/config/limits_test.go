package config

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/causal"
	"liquidlab/plugins/attention/singlequery"
)

// longAxis is an experiment whose grid has one axis of n values.
func longAxis(n int) []byte {
	var b strings.Builder
	b.WriteString("name = \"long\"\n[grid]\n\"train.steps\" = [")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, i)
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// TestLongGridAxis: checking an axis copied the whole grid for each of its
// values, so rejecting 100,000 values took 354 s. The result is tested here; the
// time is logged (go test -v) because a timed assertion fails on a loaded machine.
func TestLongGridAxis(t *testing.T) {
	start := time.Now()
	_, err := Parse("long.toml", longAxis(100000), nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d cells", MaxCells)) {
		t.Fatalf("err = %v, want the grid refused for having more than %d cells", err, MaxCells)
	}
	t.Logf("100,000 values rejected in %v", time.Since(start))

	start = time.Now()
	e, err := Parse("long.toml", longAxis(MaxCells), nil)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := e.Cells()
	if err != nil || len(cells) != MaxCells {
		t.Fatalf("%d cells, %v", len(cells), err)
	}
	if got := cells[MaxCells-1].Exp.Train.Steps; got != MaxCells-1 {
		t.Errorf("last cell has train.steps = %d", got)
	}
	t.Logf("%d values accepted and expanded in %v", MaxCells, time.Since(start))
}

// TestGridCheckIsLinear measures the bytes allocated to load and expand a grid
// of n and 4n values: about 4 times as many when the work is linear, 16 times
// when each value copies the whole axis (as it did). Allocation counts, unlike
// times, do not depend on the machine's load.
func TestGridCheckIsLinear(t *testing.T) {
	alloc := func(n int) uint64 {
		data := longAxis(n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		e, err := Parse("long.toml", data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Cells(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	small, large := alloc(1000), alloc(4000)
	ratio := float64(large) / float64(small)
	t.Logf("1000 values: %d bytes, 4000 values: %d bytes (×%.1f)", small, large, ratio)
	if ratio > 8 {
		t.Errorf("4× the values allocate %.1f× the bytes: grid checking is not linear", ratio)
	}
}

// TestSizeLimits: hostile sizes made the Go runtime die of "out of memory"
// (hidden_size=100000 in a plugin's Describe, train.batch=100000000) or pass
// gigabytes with no check. Each is refused by the check, naming the key, the
// value and the limit.
func TestSizeLimits(t *testing.T) {
	cases := []struct {
		set  string
		want string
	}{
		{"model.hidden_size=100000", "model.hidden_size = 100000: must be ≤ 65536"},
		{"model.vocab_size=30000000", "model.vocab_size = 30000000: must be ≤ 2097152"},
		{"train.batch=100000000", "train.batch = 100000000: must be ≤ 16384"},
		{"train.batch=16384", "a step holds 4194304 tokens, more than the limit of 16777216"},
		{"model.num_flows=1000000", "model.num_flows = 1000000: must be ≤ 1024"},
		{"bench.lengths=[1000000000]", "element 0 is 1000000000; every length must be ≤ 16777216"},
		{"data.seq_len=100000000", "must be ≤ 1048576"},
		{"data.max_bytes=-1", "data.max_bytes = -1: must be ≥ 0"},
		{"model.hidden_size=40000", "model: the parameters alone need about 28.7 GiB (vocab_size 32000, embedding_dim 512, hidden_size 40000, hidden_dim 128, latent_dim 128), more than the limit of 8.0 GiB"},
	}
	for _, c := range cases {
		_, err := Parse("x.toml", nil, []string{c.set})
		if c.set == "train.batch=16384" {
			// 16384 × 256 = 4194304 tokens is within the limit.
			if err != nil {
				t.Errorf("%s: %v", c.set, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-set %s: err = %v, want it to contain %q", c.set, err, c.want)
		}
	}
	// The limits hold in grid cells too.
	_, err := Parse("x.toml", []byte("[grid]\n\"model.hidden_size\" = [256, 70000]\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "must be ≤ 65536") || !strings.Contains(err.Error(), "grid cell 1") {
		t.Errorf("grid: %v", err)
	}
	// The default model is far from the parameter limit.
	if n := Default().Model.ParamEstimate(); n < 20e6 || n > 30e6 {
		t.Errorf("default model: %d parameters estimated", n)
	}
}

// TestAttentionWindowZero: window = 0 passed --dry-run, because Validate asked
// for the implementations' descriptions without the options; the stages refuse
// it in Describe, and now see it there.
func TestAttentionWindowZero(t *testing.T) {
	describe := func(kind, impl string, options map[string]string) (*stage.Description, error) {
		cfg := Default().StageConfig(kind)
		cfg.Options = options
		if kind == stage.KindAttention {
			switch impl {
			case singlequery.Name:
				return singlequery.New().Describe(context.Background(), cfg)
			case causal.Name:
				return causal.New().Describe(context.Background(), cfg)
			}
		}
		return fakeDescribe(kind, DefaultImpl[kind], options)
	}
	for _, c := range []struct {
		impl string
		sets []string
	}{
		{singlequery.Name, []string{"components.attention.options.pattern=window", "components.attention.options.window=0"}},
		{causal.Name, []string{"components.attention.options.window=0"}},
	} {
		e, err := Parse("x.toml", nil, append([]string{"components.attention.impl=" + c.impl}, c.sets...))
		if err != nil {
			t.Fatal(err)
		}
		err = e.Validate(describe)
		if err == nil || !strings.Contains(err.Error(), "components.attention.options") || !strings.Contains(err.Error(), "window = 0") {
			t.Errorf("%s: err = %v, want window = 0 refused", c.impl, err)
		}
		// A valid window passes, in the experiment and in a grid cell with 0.
		e, err = Parse("x.toml", []byte("[grid]\n\"components.attention.options.window\" = [4, 0]\n"),
			append([]string{"components.attention.impl=" + c.impl}, c.sets[:len(c.sets)-1]...))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(describe); err == nil || !strings.Contains(err.Error(), "grid cell 1") {
			t.Errorf("%s: grid with window 0: err = %v, want grid cell 1 refused", c.impl, err)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for s, want := range map[string]int64{"": 0, "8GiB": 8 << 30, "512MB": 512e6, "1.5G": 3 << 29, "100": 100, " 2 MiB ": 2 << 20, "64K": 64 << 10, "3B": 3} {
		got, err := ParseBytes(s)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"x", "-1G", "0", "NaNGiB", "Inf", "8 parsecs", "2000000EiB", "1e30"} {
		if _, err := ParseBytes(s); err == nil {
			t.Errorf("ParseBytes(%q): no error", s)
		}
	}
}

func TestMaxMemoryChecked(t *testing.T) {
	e := Default()
	e.Name = "mem"
	e.Run.MaxMemory = "lots"
	if err := e.check(); err == nil || !strings.Contains(err.Error(), "run.max_memory") {
		t.Fatalf("run.max_memory = lots: %v", err)
	}
	e.Run.MaxMemory = "8GiB"
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Name = "mem"
	a := d.Canonical()
	if b := e.Canonical(); string(a) != string(b) {
		t.Errorf("run.max_memory changed the canonical form:\n%s\n%s", a, b)
	}
}
