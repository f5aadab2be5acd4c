// Package runner executes experiments: for every grid cell it starts the stage
// implementations the cell names (plugin subprocesses, or in process for
// debugging), builds the model, trains it, evaluates it, benchmarks it at the
// configured lengths, and writes the cell's directory under results/.
//
// A cell whose directory says "done", with its metrics readable and its
// checkpoint present, is skipped; "failed", "running" (a crash left it) or a
// done cell with a missing or corrupt file is redone. A cell whose checkpoint
// cannot be written fails. A cell is run only under its lock (results.Cell.Lock):
// a cell another run holds is skipped, with a line naming that run's host and
// pid, and left to it. A failing cell — a plugin that crashes, hangs past its
// call timeout or speaks another protocol — is recorded as failed with the
// plugin's name in the error, and the other cells run. Cells may run side by side
// (Jobs); progress goes to a terminal only.
//
// Long-context evaluation (evaltasks.go): when eval.tasks is set, each cell's
// trained checkpoint is evaluated after training on generated tasks (package
// tasks) and the Go source tree (package corpus) at eval.lengths, one sequence
// at a time and chunk by chunk; the rows go to eval.json, a summary per task ×
// length to metrics.json. A data.source of "task:NAME" trains on the same
// generators at data.seq_len, with labels on the answer tokens only.
package runner
