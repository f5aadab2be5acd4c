// Package tokenizer is the byte-level BPE of GPT-2, RoBERTa, BART and LED
// (the seed model's LEDTokenizer for allenai/led-base-16384), with a trainer
// and a small built-in vocabulary.
//
// # Loading
//
// Load reads vocab.json + merges.txt, LoadJSON a Hugging Face tokenizer.json
// whose model is "BPE" with a ByteLevel pre-tokenizer (merges as "a b"
// strings or [a, b] pairs), LoadDir whichever of the two a directory holds
// (tokenizer.json first), Default the built-in DefaultVocabSize-token
// vocabulary embedded from testdata/default (trained by Train on
// testdata/corpus.txt; `go test -run TestDefaultVocab -update` regenerates
// both). A missing or corrupt file is an error naming the file and, for JSON
// and merges.txt, the line; so is a merge whose parts or result are not in
// the vocabulary (as in Hugging Face tokenizers).
//
// # Encoding
//
// Encoding matches GPT-2's encoder.py and Hugging Face tokenizers (checked
// against both on GPT-2's real 50257-token files and on the built-in
// vocabulary; testdata/hf_reference.jsonl keeps reference ids):
//
//  1. Added tokens are cut out first, leftmost-longest. For vocab.json files
//     these are <s>, <pad>, </s>, <unk>, <mask> and <|endoftext|>, whichever
//     the vocabulary has, all special, <mask> with lstrip (it swallows the
//     whitespace before it) as BART's and RoBERTa's tokenizers create it. For
//     tokenizer.json they are its added_tokens with their lstrip/rstrip
//     (single_word and normalized are ignored).
//  2. The rest is split by GPT-2's pattern
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     implemented by hand: contractions are lower-case only ("'S" is not
//     one), and a whitespace run followed by a non-space gives up its last
//     character, which then starts the next piece. \s is Unicode White_Space,
//     \p{L} and \p{N} come from Go's unicode tables (Unicode 15: characters
//     assigned later count as punctuation). Bytes that are not valid UTF-8
//     count as punctuation, one character each. With add_prefix_space
//     (tokenizer.json only) each segment between added tokens gets a leading
//     space unless it has one, as in Hugging Face tokenizers.
//  3. Each piece's bytes are mapped through GPT-2's byte-to-unicode table and
//     merged by rank: the lowest-ranked adjacent pair first, all its
//     occurrences left to right. Results are cached per piece. A byte whose
//     token is missing from the vocabulary becomes <unk>, or is dropped when
//     there is none (Hugging Face's behaviour).
//  4. Framing: <s> A </s> and <s> A </s></s> B </s> when the vocabulary has
//     <s> and </s> (whichever of the two exists is used alone); GPT-2's files
//     have neither and get no framing, as GPT-2's tokenizers add none. A
//     tokenizer.json frames as its post_processor says (RobertaProcessing,
//     BertProcessing, TemplateProcessing, Sequence; ByteLevel or null add
//     nothing).
//  5. Truncation (Options.Truncate) keeps the framing and cuts content,
//     longest sequence first; padding appends the pad id with an attention
//     mask of 0. The pad id is <pad>, else </s>, else <|endoftext|>; padding without
//     any of them is an error.
//
// Offsets are byte offsets into the input. Decode maps tokens back to their
// exact bytes (so decode(encode(s)) == s for any s without added tokens, even
// invalid UTF-8) and performs no clean-up of spaces before punctuation.
//
// # Concurrency and errors
//
// A Tokenizer is immutable after loading apart from its internal cache and
// is safe for concurrent use; EncodeBatch uses GOMAXPROCS goroutines.
// Encoding never fails on any input; EncodeWith returns errors for invalid
// Options only, Decode for ids outside the vocabulary. Nothing panics on bad
// input; Default panics only if the embedded files are corrupt (a build
// error, caught by the package tests).
//
// # Training
//
// Train learns merges from texts with the same pre-tokenisation: the most
// frequent adjacent pair is merged until the vocabulary is full or the best
// pair occurs fewer than MinFrequency times, ties going to the pair whose
// byte-level spelling sorts first. The vocabulary is laid out as BART's:
// <s>=0, <pad>=1, </s>=2, <unk>=3, the 256 byte tokens, the merges, <mask>
// last. Trained.WriteFiles writes vocab.json and merges.txt in the usual
// format.
package tokenizer
