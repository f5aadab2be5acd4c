package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"liquidlab/framework/stage"
)

// Values of Run.Mode.
const (
	ModePlugin    = "plugin"
	ModeInProcess = "inprocess"
)

// Values of Train.Objective.
const (
	ObjectiveCopy      = "copy"
	ObjectiveNextToken = "next_token"
)

// Values of Model.HeadPrecision.
const (
	HeadFP32 = "fp32"
	HeadBF16 = "bf16"
)

// Values of Model.Block.
const (
	BlockParallel   = "parallel"
	BlockSequential = "sequential"
)

// Values of Bench.Modes.
const (
	BenchForward = "forward"
	BenchEval    = "eval"
	BenchTrain   = "train"
)

// SourceBuiltin is Data.Source for the generated built-in text.
const SourceBuiltin = "builtin"

// Built-in implementations the default experiment uses, one per stage kind.
var DefaultImpl = map[string]string{
	stage.KindFlows:     "coupling",
	stage.KindODE:       "odefunc",
	stage.KindAttention: "singlequery",
	stage.KindLiquid:    "ltc",
}

// MaxCells bounds the size of a grid, so a typo cannot expand into millions of runs.
const MaxCells = 10000

// Experiment is one experiment file, resolved: defaults filled in and overrides
// applied. Its Grid is expanded by Cells.
type Experiment struct {
	Name        string               `toml:"name"`
	Description string               `toml:"description"`
	Seed        int64                `toml:"seed"`
	Repeats     int                  `toml:"repeats"`
	Model       Model                `toml:"model"`
	Components  map[string]Component `toml:"components"`
	Data        Data                 `toml:"data"`
	Train       Train                `toml:"train"`
	Eval        Eval                 `toml:"eval"`
	Bench       Bench                `toml:"bench"`
	Run         Run                  `toml:"run"`
	Slurm       Slurm                `toml:"slurm"`
	Grid        Grid                 `toml:"grid"`

	// File is the path the experiment was read from (the name given to Parse).
	File string `toml:"-"`

	// origin maps a setting's dotted path to where its value came from
	// ("file:line", "-set k=v", …); settings left at their default are absent.
	origin map[string]string
	// describe is the Describer given to Validate; Cells fills option defaults
	// of every cell with it.
	describe  Describer
	validated bool
	// note ends every message about this experiment (which grid cell it is).
	note string
}

// Model holds the seed model's dimensions. Every int field is passed to the
// stages as a dimension (stage.Config.Dims) under its toml name.
type Model struct {
	VocabSize    int  `toml:"vocab_size"`
	EmbeddingDim int  `toml:"embedding_dim"`
	LatentDim    int  `toml:"latent_dim"`
	HiddenSize   int  `toml:"hidden_size"`
	HiddenDim    int  `toml:"hidden_dim"`
	NumFlows     int  `toml:"num_flows"`
	TieOutput    bool `toml:"tie_output"`
	// HeadPrecision is the output head's arithmetic: "fp32" (the default and
	// the parity reference) or "bf16" (bfloat16 weights and inputs with
	// float32 accumulation, on CPUs with AVX512_BF16). It stays out of the
	// canonical form while it is "fp32", so older cells keep their ids.
	HeadPrecision string `toml:"head_precision" canonical:"omitdefault=fp32"`
	// Block is how the per-token liquid and attention stages are composed:
	// "parallel" (the default: both read e, the head reads e + y_liquid +
	// y_attention) or "sequential" (a residual block: the attention reads
	// u = e + y_liquid, the head reads u + y_attention, so attention keys and
	// queries see the recurrent state's context). It stays out of the
	// canonical form while it is "parallel", so older cells keep their ids.
	Block string `toml:"block" canonical:"omitdefault=parallel"`
}

// Component picks the implementation of one stage kind.
type Component struct {
	Impl    string         `toml:"impl"`
	SHA256  string         `toml:"sha256"`
	Options map[string]any `toml:"options"`
}

// IsPath reports whether Impl names a plugin binary rather than a built-in.
func (c Component) IsPath() bool { return strings.Contains(c.Impl, "/") }

// Data says where the text comes from.
type Data struct {
	Source        string  `toml:"source"`
	Tokenizer     string  `toml:"tokenizer"`
	SeqLen        int     `toml:"seq_len"`
	ValidFraction float64 `toml:"valid_fraction"`
	// MaxBytes bounds the text read from the source: a file (0: 1 GiB) or the
	// "goroot" source's training text (0: 4 MiB).
	MaxBytes int64 `toml:"max_bytes" canonical:"omitzero"`
	// Seed is the data seed: the generated text and the train/valid split
	// (0: the experiment's seed; see Experiment.DataSeed).
	Seed int64 `toml:"seed" canonical:"omitzero"`
	// Filler is the passkey filler of a "task:passkey" source's training
	// sequences: "" the built-in one, "goroot" the prose of the comments of
	// the Go tree's training files, else a text file.
	Filler string `toml:"filler" canonical:"omitzero"`
	// MinSeqLen, when > 0, makes a "task:…" source's training sequences
	// vary in length: each training step draws its length uniformly from
	// MinSeqLen to SeqLen (validation stays at SeqLen).
	MinSeqLen int `toml:"min_seq_len" canonical:"omitzero"`
	// KeyDigits, [from, to], makes a "task:passkey" source's training keys
	// vary in length (uniformly, bounds included); empty: eval.key_digits.
	KeyDigits []int `toml:"key_digits" canonical:"omitzero"`
}

// DataSeed is the seed of the data: data.seed, or seed when it is 0.
func (e *Experiment) DataSeed() int64 {
	if e.Data.Seed != 0 {
		return e.Data.Seed
	}
	return e.Seed
}

// Train is the training recipe.
type Train struct {
	Steps        int     `toml:"steps"`
	Batch        int     `toml:"batch"`
	LR           float64 `toml:"lr"`
	WeightDecay  float64 `toml:"weight_decay"`
	WarmupSteps  int     `toml:"warmup_steps"`
	ClipGradNorm float64 `toml:"clip_grad_norm"`
	LRStepEvery  int     `toml:"lr_step_every"`
	LRGamma      float64 `toml:"lr_gamma"`
	Objective    string  `toml:"objective"`
	// Minutes is a wall-clock budget (0: none): training stops after the
	// step that crosses it, or after Steps, whichever comes first; Steps still
	// sets the schedule. The number of steps then depends on the machine's
	// speed, so the cell is no longer bit-reproducible: the metrics record
	// train_steps.
	Minutes float64 `toml:"minutes" canonical:"omitzero"`
}

// Eval is the evaluation after training. The long-context fields default to
// their zero value, which means the default named in the comment (so the
// canonical form, and with it every cell id, of an experiment that does not
// use them is what it was before they existed).
type Eval struct {
	Batches int `toml:"batches"`
	Every   int `toml:"every" canonical:"omitzero"` // validate every N training steps too (0: only after training)
	// Long-context tasks (passkey, mqar, selective_copy, goroot) run after
	// training, chunk by chunk at each of Lengths (empty: 4096 … 32768).
	Tasks      []string  `toml:"tasks" canonical:"omitzero"`
	Lengths    []int     `toml:"lengths" canonical:"omitzero"`
	Depths     []float64 `toml:"depths" canonical:"omitzero"`      // passkey, % (empty: 0, 25, 50, 75, 100)
	Samples    int       `toml:"samples" canonical:"omitzero"`     // per task × length × row (0: 10)
	KeyDigits  int       `toml:"key_digits" canonical:"omitzero"`  // passkey (0: 5)
	Filler     string    `toml:"filler" canonical:"omitzero"`      // passkey filler file ("": built-in)
	MQARPairs  []int     `toml:"mqar_pairs" canonical:"omitzero"`  // (empty: 4, 16, 64)
	CopyTokens int       `toml:"copy_tokens" canonical:"omitzero"` // selective copy (0: 16)
}

// Bench is the long-sequence benchmark.
type Bench struct {
	Lengths []int    `toml:"lengths"`
	Batch   int      `toml:"batch"`
	Modes   []string `toml:"modes"`
	Warmup  int      `toml:"warmup"`
	Repeats int      `toml:"repeats"`
}

// Run says how cells are executed.
type Run struct {
	ChunkSize   int           `toml:"chunk_size"`
	Mode        string        `toml:"mode"`
	CallTimeout time.Duration `toml:"call_timeout"`
	Jobs        int           `toml:"jobs"`
	Executor    string        `toml:"executor"` // "local" or "slurm"
	// ProgressEvery is how often a run whose output is not a terminal prints a
	// progress line (0: never); it changes no result, so no cell id.
	ProgressEvery time.Duration `toml:"progress_every"`
	// MaxMemory caps a cell's estimated peak memory ("8GiB", "512MB"; "":
	// only the machine's available memory); see runner.EstimateMemory. It
	// changes no result, so no cell id.
	MaxMemory string `toml:"max_memory" canonical:"omitzero"`
}

// Executors run.executor accepts.
const (
	ExecutorLocal = "local"
	ExecutorSlurm = "slurm"
)

// Slurm says how the slurm executor submits a grid: one job array, a task per
// unfinished cell. None of it changes a cell's results (or its id).
type Slurm struct {
	Partition   string        `toml:"partition"`     // "" = the cluster's default
	Time        string        `toml:"time"`          // per task, Slurm syntax ("30:00"); "" = the partition's limit
	CPUsPerTask int           `toml:"cpus_per_task"` // 0 = Slurm's default
	Mem         string        `toml:"mem"`           // per task ("8G"); "" = Slurm's default
	MaxParallel int           `toml:"max_parallel"`  // tasks at once (--array=…%N); 0 = no limit
	ExtraArgs   []string      `toml:"extra_args"`    // further sbatch arguments
	Results     string        `toml:"results"`       // results directory on a file system the nodes share ("" = -results)
	Poll        time.Duration `toml:"poll"`          // how often the waiting command asks squeue
}

// Default returns the experiment every file starts from: the seed README's
// recommended model and the seed's training recipe.
func Default() *Experiment {
	comps := make(map[string]Component, len(stage.Kinds))
	for _, k := range stage.Kinds {
		comps[k] = Component{Impl: DefaultImpl[k], Options: map[string]any{}}
	}
	return &Experiment{
		Seed:    1,
		Repeats: 1,
		Model: Model{VocabSize: 32000, EmbeddingDim: 512, LatentDim: 128,
			HiddenSize: 256, HiddenDim: 128, NumFlows: 4, HeadPrecision: HeadFP32, Block: BlockParallel},
		Components: comps,
		Data:       Data{Source: SourceBuiltin, SeqLen: 256, ValidFraction: 0.1, KeyDigits: []int{}},
		Train: Train{Steps: 100, Batch: 32, LR: 1e-4, WeightDecay: 5e-3,
			WarmupSteps: 1000, ClipGradNorm: 1.0, LRGamma: 0.1, Objective: ObjectiveCopy},
		Eval:   Eval{Batches: 4, Tasks: []string{}, Lengths: []int{}, Depths: []float64{}, MQARPairs: []int{}},
		Bench:  Bench{Lengths: []int{4096, 8192, 16384, 32768}, Batch: 1, Modes: []string{BenchForward}, Warmup: 1, Repeats: 3},
		Run:    Run{Mode: ModePlugin, CallTimeout: 10 * time.Minute, Jobs: 1, Executor: ExecutorLocal, ProgressEvery: 30 * time.Second},
		Slurm:  Slurm{ExtraArgs: []string{}, Poll: 5 * time.Second},
		origin: map[string]string{},
	}
}

// Load reads an experiment file, applies the overrides ("key.path=value", the
// value parsed as a TOML value and taken as a string when it is not one) and
// checks everything that can be checked without the plugins.
func Load(path string, overrides []string) (*Experiment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, overrides)
}

// Parse is Load on data already read; name is the file name used in messages
// and, without its extension, as the default experiment name.
func Parse(name string, data []byte, overrides []string) (*Experiment, error) {
	e := Default()
	e.File = name
	e.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	if err := e.decodeFile(data); err != nil {
		return nil, err
	}
	for _, o := range overrides {
		if err := e.applyOverride(o); err != nil {
			return nil, err
		}
	}
	if err := e.checkAll(); err != nil {
		return nil, err
	}
	return e, nil
}

// checkAll checks the base settings, the grid and every cell.
func (e *Experiment) checkAll() error {
	if err := e.check(); err != nil {
		return err
	}
	_, err := e.Cells()
	return err
}

// clone returns a deep copy.
func (e *Experiment) clone() *Experiment {
	c := e.cloneSettings()
	c.Grid = e.Grid.clone()
	return c
}

// cloneSettings is clone without the grid, which a grid cell does not have and
// the check of one axis value does not need: copying a long axis for each of its
// values made checking it quadratic.
func (e *Experiment) cloneSettings() *Experiment {
	c := *e
	c.Grid = Grid{}
	c.Components = make(map[string]Component, len(e.Components))
	for k, v := range e.Components {
		v.Options = cloneMap(v.Options)
		c.Components[k] = v
	}
	c.Bench.Lengths = append([]int(nil), e.Bench.Lengths...)
	c.Bench.Modes = append([]string(nil), e.Bench.Modes...)
	c.Slurm.ExtraArgs = append([]string(nil), e.Slurm.ExtraArgs...)
	c.Eval.Tasks = slices.Clone(e.Eval.Tasks)
	c.Eval.Lengths = slices.Clone(e.Eval.Lengths)
	c.Eval.Depths = slices.Clone(e.Eval.Depths)
	c.Eval.MQARPairs = slices.Clone(e.Eval.MQARPairs)
	c.origin = make(map[string]string, len(e.origin))
	for k, v := range e.origin {
		c.origin[k] = v
	}
	return &c
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = cloneValue(x)
		}
		return out
	case map[string]any:
		return cloneMap(v)
	}
	return v
}
