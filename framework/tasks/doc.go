// Package tasks generates the long-context tasks liquidlab measures: passkey
// retrieval (the LongLoRA / landmark-attention protocol), multi-query
// associative recall (MQAR, Zoology) and selective copying (Mamba).
//
// Every sample is a function of (seed, split, index, length, row): the same
// arguments give the same tokens. A Sample is a short description (a few
// segments and its targets), not its tokens, so a 32k-token sample costs a few
// hundred bytes until it is read; Fill writes any range of its tokens, and
// Chunks streams it through one reused buffer. Reading a sample in chunks gives
// exactly the tokens of reading it at once.
//
// A Target is a token the model must predict at position Pos from the logits of
// position Pos−1 (next-token, teacher forcing). Targets form groups: a group is
// right when the argmax of every one of its targets is right. For the passkey
// the whole key is one group, so its accuracy is "all digits right"; this is
// exactly greedy decoding of the key's tokens, since greedy decoding reproduces
// the key if and only if the argmax at each of its positions, given the right
// prefix, is the key's next token. For MQAR each query's value is a group
// (accuracy per query); for selective copying each copied token is a group
// (accuracy per token).
//
// Training uses the same generators at short lengths (NewTrainSample): the
// passkey's depth is drawn uniformly, MQAR's pair count from the configured
// list; evaluation samples (NewSample) come from a different random stream, so
// no evaluation key is a training key by construction of the seed.
package tasks
