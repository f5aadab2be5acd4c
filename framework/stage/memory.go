package stage

// MemoryHint is what a stage says about its memory, for the host's memory
// budget (runner.EstimateMemory): float32 values per token of one sequence
// (a batch row at one position), so the host multiplies by the batch and the
// chunk or sequence length. It is optional: a Description without one gets
// the host's generic, conservative formula. It is a budget, not a contract;
// no stage is held to it at run time.
type MemoryHint struct {
	// Saved is kept from a Forward with NeedGrad until its Backward (or
	// Release): per token of the chunk.
	Saved int64
	// Work is what a Forward or Backward allocates while it runs and frees (or
	// returns) before the next call, outputs and input gradients included:
	// per token of the chunk.
	Work int64
	// State is carried from chunk to chunk and grows with the sequence (a
	// key/value cache): per token of the whole sequence. A bounded state
	// belongs in Work.
	State int64
	// Row is per sequence, whatever its length: a bounded state carried from
	// chunk to chunk (a sliding window's keys and values), or a stage that runs
	// once per sequence (the seed's liquid cell after the last chunk).
	Row int64
}
