// Package report turns stored results into tables: first as data (Table,
// strings only), then rendered as text, markdown, CSV or JSON by Render.
//
// Three tables are built here:
//
//   - CellsTable: one row per cell of a run, the axes that vary, then the
//     metrics as "median ± largest deviation" over repeats.
//   - SeqTable: the long-sequence benchmark in the seed README's columns
//     (length, memory GB, time/batch s, throughput tok/s), each measured
//     column beside the figure the seed README documents (SeedREADME), which
//     is always labelled as documented and never presented as ours.
//   - Compare: two runs side by side in the manner of golang.org/x/perf's
//     benchstat: median ± 95% confidence interval of the median, change with
//     the two-sided Mann–Whitney U test (exact up to 60 pooled samples, ties
//     included; normal approximation beyond), "~" when not significant, a
//     footnote when there are too few samples for an interval (< 6) or for
//     significance at alpha (< 4 at 0.05), and a geomean row per metric.
//
// The builders never fail: missing values show "—", non-finite values are
// printed as NaN/±Inf, NaN repeats are left out of statistics and counted in
// the notes, nil records are ignored. They do not modify their inputs. Render
// rejects a nil table, a table without columns, rows of the wrong width and
// unknown formats with an error. Output is deterministic (golden-tested), so
// tables can be diffed between runs.
package report
