package results_test

import (
	"errors"
	"fmt"
	"os"

	"liquidlab/framework/results"
)

// The runner's loop for one cell: lock it, skip it when done, (re)do it
// otherwise, unlock it.
func Example() {
	root, _ := os.MkdirTemp("", "results")
	defer os.RemoveAll(root)
	store := results.Store{Root: root}
	config := []byte("[model]\nhidden_size = 64\n")
	cell := store.Cell("demo", results.CellID(config, []string{"sha-of-plugin"}))

	for attempt := range 3 {
		lock, err := cell.Lock()
		var held *results.HeldError
		if errors.As(err, &held) {
			fmt.Println("skip: being run by", held.Owner.Host, held.Owner.PID)
			continue
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := cell.Done(); err == nil {
			fmt.Println("skip: done")
			lock.Unlock()
			continue
		}
		cell.Begin(results.RunInfo{CellIndex: 0}, config, nil)
		var runErr error
		if attempt == 0 {
			runErr = errors.New("plugin crashed")
		}
		cell.Finish(results.Metrics{Values: map[string]float64{"loss": 2.5}}, runErr)
		lock.Unlock()
		rec, _ := cell.Load()
		fmt.Println(rec.Status, rec.Metrics.Values["loss"], rec.Error != "")
	}
	// Output:
	// failed 2.5 true
	// done 2.5 false
	// skip: done
}
