// Package results is the on-disk layout of experiment runs.
//
// Every grid cell of an experiment owns one directory:
//
//	<Root>/<experiment>/<cell-name>/
//		config.toml | config.json  the resolved config, exactly the bytes given to Begin
//		plugins.json               one PluginInfo per stage (kind, impl, version, path, sha256)
//		run.json                   RunInfo (commit, dirty flag, machine, BLAS, start/end,
//		                           axes, cell index, the Slurm job/task/node when
//		                           run by Slurm) plus status and error text
//		metrics.json               Metrics, written by Finish (also when the run failed)
//		log.txt                    free text, appended through Cell.Log
//		checkpoint.safetensors     the trained parameters (written by the runner)
//		metrics.jsonl              the per-step stream, every repeat (StepRecord)
//		repeats.json               the finished repeats (RepeatRecord), so raising
//		                           `repeats` runs only the new ones
//		lock                       the cell's lock: the owner's host, pid, start time
//		                           and Slurm job while a process runs the cell, empty
//		                           otherwise
//
// The cell's hash is CellID(identity form of the config, component
// identities): the first 12 hex digits of a SHA-256, so a changed config, a
// new component version or a rebuilt plugin given by path lands in a new
// directory and never mixes with older results. The runner identifies a
// built-in component by name and version (not the liquidlab binary's sha256,
// which stays in plugins.json) and leaves `repeats` out. The directory name is
// CellName: the axis values, readable, with the hash's first 8 digits as
// suffix (num_flows=4,share_params=false-1a2b3c4d), or the hash alone for a
// cell without axes. Runs recorded before names were readable (directories
// named by the 12-digit hash) read back as any other.
//
// # Life cycle
//
// The runner asks Cell.Done first: a cell is skipped only when run.json says
// "done", metrics.json reads back and the files the runner needs (its
// checkpoint) exist. Every other cell — never started, "running" (a crash left
// it), "failed", or done but with a file missing or corrupt — is (re)done by
// calling Begin, which rewrites config, plugins.json and run.json with status
// "running", removes a stale metrics.json and the temporary files of writes a
// crash or a full disk interrupted. Finish writes
// metrics.json and then run.json with status "done" or "failed" and the error
// text, so a "done" status always has its metrics beside it, and a failed cell
// keeps whatever partial metrics the run produced. When metrics.json cannot be
// written (a full disk), Finish still records the cell as failed with that
// reason. log.txt is never truncated:
// each Begin appends a marker line, so the log of a failed attempt survives the
// retry.
//
// # Guarantees
//
// Every file except log.txt is written with WriteFileAtomic (temporary file in the
// same directory, fsync, rename), so a reader sees either the old or the new
// content, never a torn file. Non-finite metric values (a diverged loss) are
// stored as the JSON strings "NaN", "+Inf" and "-Inf" and read back as such.
// Experiment names and cell ids must be single path elements; bad names, missing
// directories and corrupt files are reported as wrapped errors, never panics.
// A Store and its Cells are plain values and hold no open files.
//
// # Locks
//
// A process runs a cell only while it holds the cell's lock (Cell.Lock), so two
// runs on one results tree — two terminals, two batch jobs — never write one
// cell at once: the second gets a *HeldError naming the owner's host, pid and
// start time. On Unix the lock is flock(2) on the lock file, released by the
// kernel when its owner dies (kill -9 included), so the next run takes it
// over; where flock is missing, the owner record decides, and a record of a
// process that no longer exists on this host is taken over. Store.Records
// reads the locks too: a cell another process holds is "running elsewhere",
// and a "running" cell nobody holds is "interrupted" (its process was killed).
// A cell whose files are unreadable is "broken", with the file and the error,
// and the other cells are still returned.
package results
