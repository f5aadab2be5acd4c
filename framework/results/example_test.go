package results_test

import (
	"errors"
	"fmt"
	"os"

	"liquidlab/framework/results"
)

// The runner's loop for one cell: skip it when done, (re)do it otherwise.
func Example() {
	root, _ := os.MkdirTemp("", "results")
	defer os.RemoveAll(root)
	store := results.Store{Root: root}
	config := []byte("[model]\nhidden_size = 64\n")
	cell := store.Cell("demo", results.CellID(config, []string{"sha-of-plugin"}))

	for attempt := range 3 {
		status, err := cell.Status()
		if err != nil {
			fmt.Println(err)
			return
		}
		if status == results.StatusDone {
			fmt.Println("skip: done")
			continue
		}
		cell.Begin(results.RunInfo{CellIndex: 0}, config, nil)
		var runErr error
		if attempt == 0 {
			runErr = errors.New("plugin crashed")
		}
		cell.Finish(results.Metrics{Values: map[string]float64{"loss": 2.5}}, runErr)
		rec, _ := cell.Load()
		fmt.Println(rec.Status, rec.Metrics.Values["loss"], rec.Error != "")
	}
	// Output:
	// failed 2.5 true
	// done 2.5 false
	// skip: done
}
