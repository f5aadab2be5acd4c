package config

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
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
