package num

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startTeam pins a team for one test and removes it afterwards (its workers
// park for good).
func startTeam(t *testing.T) *team {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("pinning needs Linux")
	}
	n, err := PinWorkers()
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Skipf("%d CPU: no team", n)
	}
	tm := pinned.Load()
	t.Cleanup(func() { pinned.Store(nil) })
	return tm
}

// TestTeamSections: while a caller holds the team, ParallelRows and Gemm run
// on it (every row exactly once, the same products as on goroutines), parts
// run on distinct pinned threads, and a part may itself call Parallel.
func TestTeamSections(t *testing.T) {
	tm := startTeam(t)
	if Workers() != len(tm.cpus) {
		t.Fatalf("Workers %d, team of %d", Workers(), len(tm.cpus))
	}
	m, k, n := 300, 64, 200
	a, b := make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(i%13) - 6
	}
	for i := range b {
		b[i] = float32(i%7) - 3
	}
	want := make([]float32, m*n)
	Gemm(false, false, m, n, k, 1, a, k, b, n, 0, want, n)

	release := PinCaller()
	for rep := 0; rep < 50; rep++ {
		got := make([]float32, m*n)
		Gemm(false, false, m, n, k, 1, a, k, b, n, 0, got, n)
		if !slices.Equal(got, want) {
			t.Fatalf("rep %d: Gemm on the team differs", rep)
		}
		hits := make([]int32, 5000)
		ParallelRows(len(hits), 1<<10, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				atomic.AddInt32(&hits[i], 1)
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("rep %d: row %d ran %d times", rep, i, h)
			}
		}
	}
	Parallel(0, func(int) { t.Fatal("Parallel(0) ran a part") })
	var nested atomic.Int32
	Parallel(2, func(int) {
		Parallel(2, func(int) { nested.Add(1) })
	})
	if nested.Load() != 4 {
		t.Fatalf("nested Parallel ran %d parts, want 4", nested.Load())
	}
	// Each part reports the CPU set of the thread it ran on.
	sets := make([][]int, len(tm.cpus))
	Parallel(len(tm.cpus), func(i int) {
		sets[i], _ = allowedCPUs()
	})
	for i, s := range sets {
		if !slices.Equal(s, []int{tm.cpus[i]}) {
			t.Errorf("part %d ran on a thread allowed %v, want [%d]", i, s, tm.cpus[i])
		}
	}
	release()
}

// TestTeamRelease: PinCaller pins the caller's thread and its release restores
// the process's CPUs; a second caller meanwhile gets no team and its sections
// still run; after release the workers park.
func TestTeamRelease(t *testing.T) {
	tm := startTeam(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	release := PinCaller()
	if s, _ := allowedCPUs(); !slices.Equal(s, []int{tm.cpus[0]}) {
		t.Fatalf("caller pinned to %v, want [%d]", s, tm.cpus[0])
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r2 := PinCaller() // held: a no-op
		defer r2()
		var n atomic.Int32
		for range 100 {
			Parallel(2, func(int) { n.Add(1) })
		}
		if n.Load() != 200 {
			t.Errorf("second caller: %d parts ran, want 200", n.Load())
		}
	}()
	var n atomic.Int32
	for range 100 {
		Parallel(2, func(int) { n.Add(1) })
	}
	wg.Wait()
	if n.Load() != 200 {
		t.Errorf("holder: %d parts ran, want 200", n.Load())
	}
	release()
	if s, _ := allowedCPUs(); !slices.Equal(s, tm.all) {
		t.Fatalf("after release the thread is allowed %v, want %v", s, tm.all)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range tm.workers[1:] {
		for !w.sleeping.Load() {
			if time.Now().After(deadline) {
				t.Fatal("a worker still spins 5 s after the team was released")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestTeamPanic: a panic in the caller's part leaves the team usable.
func TestTeamPanic(t *testing.T) {
	startTeam(t)
	release := PinCaller()
	defer release()
	func() {
		defer func() { _ = recover() }()
		Parallel(2, func(i int) {
			if i == 0 {
				panic("part 0")
			}
		})
	}()
	tm := pinned.Load()
	if tm.busy.Load() {
		t.Fatal("the team stays busy after a part panicked")
	}
	var n atomic.Int32
	Parallel(2, func(int) { n.Add(1) })
	if n.Load() != 2 {
		t.Fatalf("%d parts ran after the panic, want 2", n.Load())
	}
}

// TestTeamGoexit: a worker's part that ends its goroutine (runtime.Goexit,
// as t.FailNow does) still ends the section, and the team keeps working on
// pinned threads.
func TestTeamGoexit(t *testing.T) {
	tm := startTeam(t)
	release := PinCaller()
	defer release()
	done := make(chan struct{})
	go func() {
		Parallel(2, func(i int) {
			if i == 1 {
				runtime.Goexit()
			}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Parallel still waits 10 s after a part called runtime.Goexit")
	}
	var set []int
	Parallel(2, func(i int) {
		if i == 1 {
			set, _ = allowedCPUs()
		}
	})
	if !slices.Equal(set, []int{tm.cpus[1]}) {
		t.Fatalf("after the Goexit part 1 ran on a thread allowed %v, want [%d]", set, tm.cpus[1])
	}
}
