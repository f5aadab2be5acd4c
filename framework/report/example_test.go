package report_test

import (
	"os"

	"liquidlab/framework/report"
	"liquidlab/framework/results"
)

func ExampleRender() {
	t := &report.Table{
		Title:   "demo",
		Columns: []string{"mode", "tok/s"},
		Rows:    [][]string{{"full", "4935"}, {"chunked", "5120"}},
		Notes:   []string{"measured on a laptop"},
	}
	report.Render(os.Stdout, t, "markdown")
	// Output:
	// **demo**
	//
	// | mode    | tok/s |
	// |:--------|------:|
	// | full    |  4935 |
	// | chunked |  5120 |
	//
	// - measured on a laptop
}

func ExampleCompare() {
	cell := func(exp string, xs ...float64) *results.Record {
		return &results.Record{
			Cell:    results.Cell{Experiment: exp, ID: "c0"},
			Info:    results.RunInfo{Experiment: exp, Axes: map[string]string{"seq_len": "4096"}},
			Status:  results.StatusDone,
			Metrics: &results.Metrics{Samples: map[string][]float64{"step_s": xs}},
		}
	}
	a := []*results.Record{cell("old", 1.00, 1.02, 0.99, 1.01, 1.03, 0.98)}
	b := []*results.Record{cell("new", 0.80, 0.82, 0.79, 0.81, 0.83, 0.78)}
	t := report.Compare(a, b, nil, 0)
	report.Render(os.Stdout, &report.Table{Columns: t.Columns, Rows: t.Rows}, "csv")
	// Output:
	// metric,cell,A,B,vs A
	// step_s,c0,1.005 ± 2.5%,0.8050 ± 3.1%,-19.90% (p=0.002 n=6)
}
