// Package config reads experiment files: TOML, strict, with defaults, grids and
// command-line overrides. This comment is the manual of the format.
//
// # Reading
//
// Load(path, overrides) parses a file, applies the overrides and checks every
// setting that can be checked without the plugins; Validate(describe) then checks
// the component options against the implementations' OptionSpecs and fills in
// their defaults; Cells expands the grid into fully resolved experiments.
//
// Strictness: a key that names no setting is an error, reported with FILE:LINE
// and the valid keys of its table; so is a value of the wrong type or an
// impossible one (negative steps, odd embedding_dim, unknown mode, …). Settings
// left out take the defaults below. Problems are reported together (up to ten),
// each as
//
//	FILE:LINE: key.path = value: what is wrong and what is valid
//
// (a value set by -set names the override instead of FILE:LINE, an unset value
// says "(the default)", and an error inside one grid cell ends with
// "(grid cell N: axis=value, …)").
//
// # An experiment file
//
// Every key with its default, except that the component options shown are
// examples (by default each option takes its implementation's default) and the
// grid is empty by default. A file may leave out any key.
//
//	name = "quickstart"          # string, [a-z0-9_-]+; default: the file name without .toml
//	description = ""             # string, free text
//	seed = 1                     # int, the model seed: initialisation, batch order, timestamps
//	repeats = 1                  # int ≥ 1, runs inside each grid cell, model seeds seed, seed+1, …
//	                             #   (compare uses their medians); not part of the cell id:
//	                             #   raising it runs only the new repeats
//
//	[model]                      # the seed README's recommended configuration
//	vocab_size = 32000           # int > 0, V
//	embedding_dim = 512          # int > 0 and even, D (the coupling flows split it in halves)
//	latent_dim = 128             # int, 0 < L ≤ D
//	hidden_size = 256            # int > 0, H
//	hidden_dim = 128             # int > 0, F: width of the flow nets
//	num_flows = 4                # int ≥ 0, K
//	tie_output = false           # bool, output_proj shares the embedding (needs H == D)
//	head_precision = "fp32"      # "fp32" or "bf16": the output head in bfloat16 with float32
//	                             #   accumulation (needs AVX512_BF16; an error elsewhere)
//	block = "parallel"           # "parallel" or "sequential": how a per-token liquid stage
//	                             #   and a per-token attention stage compose. parallel: both
//	                             #   read e, the head reads e + y_liquid + y_attention;
//	                             #   sequential: a residual block, the attention reads
//	                             #   u = e + y_liquid and the head u + y_attention
//
//	[components.flows]           # one table per stage kind: flows, ode, attention, liquid
//	impl = "coupling"            # string: a built-in name (liquidlab plugins lists them) or
//	                             #   a path to a plugin binary (any name containing '/')
//	sha256 = ""                  # string, 64 hex digits: pins the binary impl names (paths only)
//	options = { share_params = true }  # table of string, int, float or bool values;
//	                             #   checked by Validate against the implementation's
//	                             #   options, whose defaults fill what is left out
//	[components.ode]
//	impl = "odefunc"
//	options = { method = "dopri5", rtol = 1e-3, atol = 1e-3 }
//	[components.attention]
//	impl = "singlequery"
//	options = { pattern = "all" }
//	[components.liquid]
//	impl = "ltc"
//	options = { method = "dopri5" }
//
//	[data]
//	source = "builtin"           # string: "builtin" (generated text), "goroot" (the Go
//	                             #   distribution's source tree, split by file: package
//	                             #   corpus), "task:passkey", "task:mqar",
//	                             #   "task:selective_copy" (generated task sequences with
//	                             #   labels on the answers only; need objective =
//	                             #   "next_token"; the [eval] task settings apply, the
//	                             #   filler is the built-in one), or a path to a text
//	                             #   file or a directory of them
//	tokenizer = ""               # string: "" = the built-in tokenizer, else a directory
//	                             #   with tokenizer files
//	seq_len = 256                # int > 0, tokens per training sequence
//	valid_fraction = 0.1         # float in [0, 1), share of the text held out
//	max_bytes = 0                # int ≥ 0, largest text read from the source: a file
//	                             #   (0: 1 GiB) or the goroot training text (0: 4 MiB); a
//	                             #   file source must be regular text (no FIFO, device or NUL byte)
//	seed = 0                     # int, the data seed: the generated text and the train/valid
//	                             #   split (0: the same as seed). Repeats keep it, and -set seed=N
//	                             #   or a seed grid axis pins it to the file's seed, so repeat 2
//	                             #   (seed 2) and -set seed=2 train on the same data
//	filler = ""                  # string, the filler of task:passkey training sequences:
//	                             #   "" the built-in one, "goroot" the prose of the Go
//	                             #   tree's comments (training split), or a text file
//	min_seq_len = 0              # int ≥ 0, with a task:… source: each training step draws
//	                             #   its length uniformly from min_seq_len to seq_len (fresh
//	                             #   samples every step), so the model meets many lengths;
//	                             #   0: every training sequence has seq_len tokens
//	key_digits = []              # [from, to] digits, with task:passkey: each training key's
//	                             #   length is drawn from from..to (evaluation keeps
//	                             #   eval.key_digits); []: eval.key_digits (default 5)
//
//	[train]                      # the seed's recipe
//	steps = 100                  # int ≥ 0 (0: no training)
//	batch = 32                   # int > 0
//	lr = 1e-4                    # float > 0, AdamW learning rate
//	weight_decay = 5e-3          # float ≥ 0
//	warmup_steps = 1000          # int ≥ 0, linear warm-up
//	clip_grad_norm = 1.0         # float ≥ 0 (0: no clipping)
//	lr_step_every = 0            # int ≥ 0, StepLR period in steps (0: off)
//	lr_gamma = 0.1               # float in (0, 1], StepLR factor
//	objective = "copy"           # "copy" (the seed: labels = inputs) or "next_token"
//	minutes = 0                  # float ≥ 0, a wall-clock budget (0: none): training stops
//	                             #   after the step that crosses it or after steps; steps
//	                             #   still sets the schedule; metrics record train_steps
//
//	[eval]
//	batches = 4                  # int ≥ 0, validation batches after training
//	every = 0                    # int ≥ 0, also validate every N training steps (0: only after)
//	tasks = []                   # long-context evaluation after training (and by
//	                             #   liquidlab eval): "passkey", "mqar", "selective_copy",
//	                             #   "goroot" (bits per byte, loss by position bucket)
//	lengths = []                 # list of int > 0, tokens (empty: 4096, 8192, 16384, 32768)
//	depths = []                  # passkey needle depths in % of the filler (empty: 0, 25,
//	                             #   50, 75, 100)
//	samples = 0                  # int ≥ 0, samples per task × length × row (0: 10)
//	key_digits = 0               # int ≥ 0, passkey digits (0: 5)
//	filler = ""                  # passkey filler text file ("": the built-in filler)
//	mqar_pairs = []              # MQAR key–value pair counts (empty: 4, 16, 64)
//	copy_tokens = 0              # selective-copy content tokens (0: 16)
//
//	[bench]                      # the long-sequence benchmark
//	lengths = [4096, 8192, 16384, 32768]  # list of int > 0 (empty: no benchmark)
//	batch = 1                    # int > 0
//	modes = ["forward"]          # non-empty list of "forward", "eval", "train"
//	warmup = 1                   # int ≥ 0, untimed runs first
//	repeats = 3                  # int ≥ 1, timed runs
//
//	[run]
//	chunk_size = 0               # int ≥ 0, tokens per chunk (0: the whole sequence)
//	mode = "plugin"              # "plugin" (go-plugin subprocesses) or "inprocess"
//	call_timeout = "10m"         # duration string (Go syntax: "90s", "1h30m") per plugin call
//	jobs = 1                     # int ≥ 1, cells run at once
//	executor = "local"           # "local" or "slurm" (one job array, a task per unfinished cell)
//	progress_every = "30s"       # duration ≥ 0: a progress line this often when the output is not a terminal (0: none)
//	max_memory = ""              # "8GiB", "512MB": refuse a cell whose estimated peak memory exceeds it ("": the available memory only); no cell id
//
//	[slurm]                      # only with run.executor = "slurm"; changes no result or cell id
//	partition = ""               # "" = the cluster's default partition
//	time = ""                    # time limit per task, Slurm syntax ("30:00", "1-00:00:00")
//	cpus_per_task = 0            # int ≥ 0 (0: Slurm's default)
//	mem = ""                     # memory per task, e.g. "8G"
//	max_parallel = 0             # int ≥ 0, tasks at once (--array=…%N; 0: no limit)
//	extra_args = []              # further sbatch arguments, e.g. ["--account=ml"]
//	results = ""                 # results directory the nodes share ("": the -results flag)
//	poll = "5s"                  # how often the waiting command asks squeue
//
//	[grid]                       # axes: "dotted.key.path" = [values]; crossed
//	"model.num_flows" = [0, 1, 2, 4, 8]
//	"components.flows.options.share_params" = [true, false]
//
//	[[grid.paired]]              # a group of axes of equal length that vary together,
//	                             #   crossed with the other axes and groups
//	"components.ode.options.method" = ["dopri5", "dopri5"]
//	"components.ode.options.rtol" = [1e-3, 1e-6]
//
// # Grids
//
// An axis key is the dotted path of any setting except name (quoted in [grid],
// since it contains dots; written unquoted it is read as nested tables and means
// the same). Every value of an axis must be valid for its setting. The cells are
// the cartesian product of the axes, in the order they are written, then of the
// [[grid.paired]] groups, in the order they are written; the first axis varies
// slowest. The example above has 5 × 2 × 2 = 20 cells; a grid may have at most
// MaxCells. Each cell is a copy of the experiment with the axis values set and an
// empty grid; Cell.Axes lists its values.
//
// # Size limits
//
// So that a typo or a hostile file is refused with a message instead of
// exhausting memory, sizes have finite, generous limits, checked with the other
// settings (before any plugin starts or any tensor is made), in the file, in the
// overrides and in every grid cell:
//
//	model.vocab_size                   ≤ 2,097,152 (MaxVocabSize)
//	model.embedding_dim, latent_dim,
//	  hidden_size, hidden_dim          ≤ 65,536 (MaxDim)
//	model.num_flows                    ≤ 1,024 (MaxNumFlows)
//	data.seq_len                       ≤ 1,048,576 (MaxSeqLen)
//	train.batch                        ≤ 16,384 (MaxBatch)
//	train.batch × data.seq_len         ≤ 16,777,216 tokens a step (MaxBatchTokens)
//	each of bench.lengths              ≤ 16,777,216 (MaxBenchLength)
//	bench.batch                        ≤ 4,096 (MaxBenchBatch)
//	run.chunk_size                     ≤ 1,048,576 (MaxChunkSize)
//	estimated parameters (float32)     ≤ 8 GiB (MaxParamBytes)
//
// The parameter estimate (Model.ParamEstimate) counts the host's embedding and
// output projection exactly and the built-in components' largest tensors; the
// seed model's default configuration has about 25 million parameters (0.1 GiB).
// The text read for data.source is bounded by data.max_bytes.
//
// # Overrides
//
// liquidlab's -set key.path=value changes one setting before anything is
// checked, exactly as if the file said so. The key is a TOML dotted key; the value
// is read as a TOML value ("3", "1e-3", "true", "[512, 1024]", "\"x\"") and, when
// it is not one, taken as a string (so -set data.source=/data/wiki and
// -set components.ode.options.method=rk4 need no quotes). Overrides apply in
// order. A setting that is a grid axis stops varying (from a paired group only
// that axis is removed). -set grid.KEY=[values] replaces the values of axis KEY
// (crossed or paired), or adds a crossed axis.
//
// # Components and stage configuration
//
// Validate asks a Describer for each component's stage.Description. Every given
// option must be declared there and have its type: a string; an integer for
// "int"; an integer or float for "float" (stored as float64); true or false for
// "bool"; and, when the option lists Choices, be one of them. Options left out
// take their declared defaults, in the experiment and in every cell (after
// Validate, Cells completes each cell for its own implementations, so a grid may
// vary impl). Then the Describer is asked again with the options as the stage
// will get them, so that the implementation's Describe can refuse values its
// OptionSpecs cannot express (an attention window of 0); its error names the
// option that was set. A nil Describer leaves options unchecked. StageConfig(kind) gives
// a stage its Dims (every int field of [model], under its key) and its options as
// strings: strings as they are, bools "true"/"false", integers in decimal,
// floats in %g.
//
// # Canonical form
//
// Canonical writes the resolved settings as sorted `dotted.key = value` TOML
// lines, the same bytes for the same settings; cell ids hash it. It leaves out the
// settings that cannot change a result: name, description, grid, run.jobs,
// run.call_timeout, run.executor and [slurm]; and settings added later
// (data.max_bytes, eval.every, the long-context [eval] keys) while they hold
// their zero default, so older cells keep their ids. The output parses back
// into the same settings.
package config
