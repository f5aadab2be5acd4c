package num

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTeamStress: callers that take and release the team while others use
// it, and a worker that is slow to signal the end of a section (longer than
// the caller spins, so that the next section's caller sleeps first): no
// section returns before its parts have run.
func TestTeamStress(t *testing.T) {
	startTeam(t)
	var slow atomic.Int64
	hook := func() {
		if slow.Add(1)%3 == 0 {
			time.Sleep(3 * spinFor / 2)
		}
	}
	testHookLastPart.Store(&hook)
	t.Cleanup(func() { testHookLastPart.Store(nil) })
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end := time.Now().Add(2 * time.Second)
			for k := 0; time.Now().Before(end); k++ {
				release := PinCaller()
				for j := 0; j < 50; j++ {
					var done [2]atomic.Int32
					live := true
					var mu sync.Mutex
					Parallel(2, func(i int) {
						mu.Lock()
						if !live {
							bad.Add(1)
						}
						mu.Unlock()
						if k%7 == 0 {
							time.Sleep(time.Duration(i) * 50 * time.Microsecond)
						}
						done[i].Add(1)
					})
					mu.Lock()
					live = false
					mu.Unlock()
					if done[0].Load() != 1 || done[1].Load() != 1 {
						bad.Add(1)
					}
				}
				release()
				if k%5 == 0 {
					time.Sleep(3 * time.Millisecond) // let the workers park
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("callers still waiting 30 s on (%d bad sections so far)", bad.Load())
	}
	if bad.Load() != 0 {
		t.Fatalf("%d sections returned before their parts ran, or ran a part after", bad.Load())
	}
}
