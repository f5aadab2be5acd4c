package num

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pinned workers for the parallel sections of plugin processes.
//
// A plugin process computes for a few milliseconds out of every pass (its
// stage) and sleeps while the others compute. Its fresh goroutines then ran a
// section's two halves worse than the host's did: on this project's VMs (a PVM
// guest whose kernel packs the threads of lightly loaded tasks onto one vCPU,
// boot parameter sched_vcpu_pack) the halves often ran one after the other on
// one vCPU, and the Go scheduler's retaking of Ps from long cgo calls woke yet
// more threads onto the same two vCPUs. A team removes both: its workers are
// locked to their OS threads and pinned one per CPU, they spin between parts
// while a caller holds the team instead of parking, and the process keeps one
// P more than it has workers so that no P is retaken from a cgo call.

// team runs the parts of Parallel while a caller holds it (PinCaller): part 0
// on the caller's own thread, pinned to cpus[0], part i on worker i, pinned to
// cpus[i].
type team struct {
	cpus      []int // cpus[0] for the caller, cpus[i] for worker i
	all       []int // the process's affinity mask, restored on release
	workers   []*worker
	owned     atomic.Bool // a caller holds the team (PinCaller)
	busy      atomic.Bool // a section is running on it
	gen       uint64      // number of the section running (written under busy)
	remaining atomic.Int32
	// waiting is the number of the section whose caller sleeps on done, or 0.
	// Numbered, because a worker may reach its check of waiting only after its
	// section ended and the next one began.
	waiting atomic.Uint64
	done    chan struct{}
}

type worker struct {
	seq      atomic.Uint64 // parts posted so far
	body     func(i int)
	i        int
	gen      uint64 // the section the part belongs to
	sleeping atomic.Bool
	wake     chan struct{}
}

// spinFor is how long a worker spins for its next part (while the team is
// held) and the caller for the workers' parts before parking. Measured on the
// seed's forward at 4096 tokens in plugin mode: flows and ODE stages 21 and
// 18–19 ms with 2 ms, 21–23 and 20 with 200 µs, 26–29 and 24–25 parking at once.
const spinFor = 2 * time.Millisecond

var (
	pinned atomic.Pointer[team]
	pinMu  sync.Mutex // serialises PinWorkers
)

// testHookLastPart, when set (by tests), runs on a worker between finishing
// a section's last part and looking whether its caller sleeps.
var testHookLastPart atomic.Pointer[func()]

// PinWorkers starts worker threads pinned one per CPU of the process's
// affinity mask after the first (at most GOMAXPROCS CPUs in all), for callers
// that then hold the team with PinCaller; from then on Workers is the number
// of CPUs the team uses. It returns that number: 1 where there is only one CPU
// (no team), 0 and an error where threads cannot be pinned. Calling it again
// returns the first team's size. Results do not change: every split is by
// Workers, and a section's parts are the same whichever thread runs them.
func PinWorkers() (int, error) {
	pinMu.Lock()
	defer pinMu.Unlock()
	if t := pinned.Load(); t != nil {
		return len(t.cpus), nil
	}
	all, err := allowedCPUs()
	if err != nil {
		return 0, err
	}
	cpus := all
	if p := runtime.GOMAXPROCS(0); len(cpus) > p {
		cpus = cpus[:p]
	}
	if len(cpus) < 2 {
		return len(cpus), nil
	}
	t := &team{cpus: cpus, all: all, workers: make([]*worker, len(cpus)), done: make(chan struct{}, 1)}
	errs := make(chan error, len(cpus))
	for i := 1; i < len(cpus); i++ {
		w := &worker{wake: make(chan struct{}, 1)}
		t.workers[i] = w
		go t.run(w, cpus[i], errs, 0)
	}
	for i := 1; i < len(cpus); i++ {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		// The workers that started park for good: nothing posts to them.
		return 0, err
	}
	pinned.Store(t)
	return len(cpus), nil
}

// Workers is the number of parts ParallelRows and Gemm split work into: the
// pinned team's CPUs when there is a team (PinWorkers), else GOMAXPROCS but
// no more than the CPUs the process may use — the team's size too, so that a
// host without a team and its plugins with one split alike (results depend
// on the split where parts keep private sums, as the causal attention's do).
func Workers() int {
	if t := pinned.Load(); t != nil {
		return len(t.cpus)
	}
	return min(runtime.GOMAXPROCS(0), runtime.NumCPU())
}

// PinCaller pins the calling goroutine's thread to the team's first CPU and
// lets parallel sections use the team until the returned function is called,
// by the same goroutine, which unpins the thread again. Without a team, or
// while another caller holds it, it does nothing.
func PinCaller() (release func()) {
	t := pinned.Load()
	if t == nil || !t.owned.CompareAndSwap(false, true) {
		return func() {}
	}
	runtime.LockOSThread()
	if pinThread(t.cpus[0]) != nil {
		runtime.UnlockOSThread()
		t.owned.Store(false)
		return func() {}
	}
	return func() {
		t.owned.Store(false) // the workers park after their current spin
		_ = pinThreadTo(t.all)
		runtime.UnlockOSThread()
	}
}

// Parallel runs body(0), …, body(n-1) concurrently and returns when all have
// returned: on the pinned team while a caller holds it and no other section
// runs on it, else on goroutines; part 0 always on the calling goroutine, so
// a panic in it reaches the caller. A body may itself call Parallel (it then
// runs on goroutines).
func Parallel(n int, body func(i int)) {
	if n <= 0 {
		return
	}
	if n == 1 {
		body(0)
		return
	}
	if t := pinned.Load(); t != nil && n <= len(t.cpus) && t.owned.Load() && t.busy.CompareAndSwap(false, true) {
		t.section(n, body)
		return
	}
	var wg sync.WaitGroup
	wg.Add(n - 1)
	for i := 1; i < n; i++ {
		go func() {
			defer wg.Done()
			body(i)
		}()
	}
	defer wg.Wait() // the other parts finish even if part 0 panics
	body(0)
}

func (t *team) section(n int, body func(i int)) {
	t.gen++
	t.remaining.Store(int32(n - 1))
	for i := 1; i < n; i++ {
		t.workers[i].post(body, i, t.gen)
	}
	// Even if part 0 panics, the workers' parts finish before the team is
	// free again.
	defer func() {
		t.wait()
		t.busy.Store(false)
	}()
	body(0)
}

// run is worker w's loop, on a thread pinned to cpu; seen is the number of
// parts posted to w that it has already taken.
func (t *team) run(w *worker, cpu int, errs chan<- error, seen uint64) {
	runtime.LockOSThread()
	err := pinThread(cpu)
	if errs != nil {
		errs <- err
	}
	if err != nil {
		return
	}
	for {
		start := time.Now()
		for n := 0; w.seq.Load() == seen; n++ {
			if n&255 == 255 && (!t.owned.Load() || time.Since(start) > spinFor) {
				w.park(seen)
				start = time.Now()
			}
		}
		seen = w.seq.Load()
		t.part(w, cpu, seen)
	}
}

// part runs the part just posted to w and signals its end, also when the
// part ends the goroutine (runtime.Goexit, as t.FailNow does in a test): then
// a new goroutine takes the worker's place. (A panic ends the process, as it
// does in a part on a plain goroutine.)
func (t *team) part(w *worker, cpu int, seen uint64) {
	body, gen := w.body, w.gen
	w.body = nil
	returned := false
	defer func() {
		if !returned {
			go t.run(w, cpu, nil, seen)
		}
		if t.remaining.Add(-1) == 0 {
			if h := testHookLastPart.Load(); h != nil {
				(*h)()
			}
			if t.waiting.CompareAndSwap(gen, 0) {
				t.done <- struct{}{}
			}
		}
	}()
	body(w.i)
	returned = true
}

// park blocks until a part is posted after seen.
func (w *worker) park(seen uint64) {
	w.sleeping.Store(true)
	if w.seq.Load() != seen {
		if !w.sleeping.CompareAndSwap(true, false) {
			<-w.wake // the poster saw us asleep and sent a token
		}
		return
	}
	<-w.wake
}

func (w *worker) post(body func(int), i int, gen uint64) {
	w.body, w.i, w.gen = body, i, gen
	w.seq.Add(1)
	if w.sleeping.CompareAndSwap(true, false) {
		w.wake <- struct{}{}
	}
}

// wait returns when the workers' parts of the section are done.
func (t *team) wait() {
	start := time.Now()
	for n := 0; t.remaining.Load() != 0; n++ {
		if n&255 == 255 && time.Since(start) > spinFor {
			t.waiting.Store(t.gen)
			if t.remaining.Load() == 0 {
				if !t.waiting.CompareAndSwap(t.gen, 0) {
					<-t.done // a worker saw us waiting and sent a token
				}
				return
			}
			<-t.done
			return
		}
	}
}
