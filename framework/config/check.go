package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/stage"
)

// Describer returns the description of the implementation impl of a stage kind
// (a built-in name or a plugin path), so Validate can check its options. Validate
// calls it twice per implementation: with nil options to learn the option specs,
// then with the options it will run with (as StageConfig gives them), so that the
// implementation's Describe can refuse values its specs cannot express (such as
// an attention window of 0).
type Describer func(kind, impl string, options map[string]string) (*stage.Description, error)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9_-]+$`)
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// checker collects the problems of one experiment, each located.
type checker struct {
	e    *Experiment
	errs []error
}

// bad records that the setting at path (whose value is v) is wrong.
func (c *checker) bad(path string, v any, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if o, ok := c.e.origin[path]; ok {
		c.errs = append(c.errs, fmt.Errorf("%s: %s = %s: %s%s", o, path, formatValue(v), msg, c.e.note))
		return
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s = %s (the default): %s%s", c.e.File, path, formatValue(v), msg, c.e.note))
}

func (c *checker) positive(path string, v int) {
	if v <= 0 {
		c.bad(path, v, "must be > 0")
	}
}

func (c *checker) nonNegative(path string, v int) {
	if v < 0 {
		c.bad(path, v, "must be ≥ 0")
	}
}

func (c *checker) oneOf(path, v string, valid ...string) {
	if !contains(valid, v) {
		c.bad(path, v, "must be one of: %s", strings.Join(valid, ", "))
	}
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	errs := c.errs
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("… and %d more problems", len(c.errs)-maxErrors))
	}
	return errors.Join(errs...)
}

// check checks every setting that can be checked without the plugins.
func (e *Experiment) check() error {
	c := &checker{e: e}
	if !nameRE.MatchString(e.Name) {
		c.bad("name", e.Name, "a name uses only a-z, 0-9, _ and - (it names the results directory); set name = \"…\"")
	}
	if e.Repeats < 1 {
		c.bad("repeats", e.Repeats, "must be ≥ 1")
	}

	m := e.Model
	c.positive("model.vocab_size", m.VocabSize)
	c.positive("model.embedding_dim", m.EmbeddingDim)
	if m.EmbeddingDim > 0 && m.EmbeddingDim%2 != 0 {
		c.bad("model.embedding_dim", m.EmbeddingDim, "must be even: the coupling flows split it in halves")
	}
	c.positive("model.latent_dim", m.LatentDim)
	if m.LatentDim > m.EmbeddingDim && m.EmbeddingDim > 0 {
		c.bad("model.latent_dim", m.LatentDim, "must be ≤ model.embedding_dim (%d): z keeps the first latent_dim of embedding_dim dims", m.EmbeddingDim)
	}
	c.positive("model.hidden_size", m.HiddenSize)
	c.positive("model.hidden_dim", m.HiddenDim)
	c.nonNegative("model.num_flows", m.NumFlows)
	if m.TieOutput && m.HiddenSize != m.EmbeddingDim {
		c.bad("model.tie_output", m.TieOutput, "tying output_proj to the embedding needs hidden_size == embedding_dim (%d ≠ %d)", m.HiddenSize, m.EmbeddingDim)
	}
	c.oneOf("model.head_precision", m.HeadPrecision, HeadFP32, HeadBF16)
	c.oneOf("model.block", m.Block, BlockParallel, BlockSequential)

	for _, kind := range stage.Kinds {
		comp, ok := e.Components[kind]
		p := "components." + kind
		if !ok || comp.Impl == "" {
			c.bad(p+".impl", comp.Impl, "name a built-in implementation (`liquidlab plugins` lists them) or a path to a plugin binary")
			continue
		}
		if comp.SHA256 != "" {
			if !comp.IsPath() {
				c.bad(p+".sha256", comp.SHA256, "a checksum pins a plugin binary; impl %q is a built-in, not a path", comp.Impl)
			} else if !sha256RE.MatchString(comp.SHA256) {
				c.bad(p+".sha256", comp.SHA256, "want 64 lower-case hex digits (sha256sum's output)")
			}
		}
	}

	d := e.Data
	if d.Source == "" {
		c.bad("data.source", d.Source, "want %q or a path to a text file or directory", SourceBuiltin)
	}
	if d.Filler != "" && d.Source != "task:passkey" {
		c.bad("data.filler", d.Filler, "is the filler of the passkey's training sequences: it needs data.source = %q", "task:passkey")
	}
	c.positive("data.seq_len", d.SeqLen)
	if len(d.KeyDigits) != 0 {
		switch {
		case d.Source != "task:passkey":
			c.bad("data.key_digits", d.KeyDigits, "varies the passkey's training keys: it needs data.source = %q", "task:passkey")
		case len(d.KeyDigits) != 2 || d.KeyDigits[0] < 1 || d.KeyDigits[0] > d.KeyDigits[1] || d.KeyDigits[1] > 18:
			c.bad("data.key_digits", d.KeyDigits, "want [from, to] with 1 ≤ from ≤ to ≤ 18")
		}
	}
	if d.MinSeqLen != 0 {
		switch {
		case !strings.HasPrefix(d.Source, "task:"):
			c.bad("data.min_seq_len", d.MinSeqLen, "varies the length of generated task sequences: it needs data.source = \"task:…\"")
		case d.MinSeqLen < 2 || d.MinSeqLen > d.SeqLen:
			c.bad("data.min_seq_len", d.MinSeqLen, "must be from 2 to data.seq_len (%d)", d.SeqLen)
		}
	}
	if d.ValidFraction < 0 || d.ValidFraction >= 1 {
		c.bad("data.valid_fraction", d.ValidFraction, "must be in [0, 1)")
	}

	t := e.Train
	c.nonNegative("train.steps", t.Steps)
	c.positive("train.batch", t.Batch)
	if t.LR <= 0 {
		c.bad("train.lr", t.LR, "must be > 0")
	}
	if t.WeightDecay < 0 {
		c.bad("train.weight_decay", t.WeightDecay, "must be ≥ 0")
	}
	c.nonNegative("train.warmup_steps", t.WarmupSteps)
	if t.ClipGradNorm < 0 {
		c.bad("train.clip_grad_norm", t.ClipGradNorm, "must be ≥ 0 (0 turns clipping off)")
	}
	c.nonNegative("train.lr_step_every", t.LRStepEvery)
	if !(t.Minutes >= 0 && t.Minutes <= 60*24*365) {
		c.bad("train.minutes", t.Minutes, "must be a number of minutes in [0, 525600] (0: no time budget)")
	}
	if t.LRGamma <= 0 || t.LRGamma > 1 {
		c.bad("train.lr_gamma", t.LRGamma, "must be in (0, 1]")
	}
	c.oneOf("train.objective", t.Objective, ObjectiveCopy, ObjectiveNextToken)

	c.nonNegative("eval.batches", e.Eval.Batches)
	c.nonNegative("eval.every", e.Eval.Every)

	b := e.Bench
	for i, l := range b.Lengths {
		if l <= 0 {
			c.bad("bench.lengths", b.Lengths, "element %d is %d; every length must be > 0", i, l)
			break
		}
	}
	c.positive("bench.batch", b.Batch)
	if len(b.Modes) == 0 {
		c.bad("bench.modes", b.Modes, "name at least one of: %s, %s, %s", BenchForward, BenchEval, BenchTrain)
	}
	seen := map[string]bool{}
	for _, mode := range b.Modes {
		if !contains([]string{BenchForward, BenchEval, BenchTrain}, mode) {
			c.bad("bench.modes", b.Modes, "unknown mode %q; valid modes: %s, %s, %s", mode, BenchForward, BenchEval, BenchTrain)
			break
		}
		if seen[mode] {
			c.bad("bench.modes", b.Modes, "mode %q is listed twice", mode)
			break
		}
		seen[mode] = true
	}
	c.nonNegative("bench.warmup", b.Warmup)
	if b.Repeats < 1 {
		c.bad("bench.repeats", b.Repeats, "must be ≥ 1")
	}

	r := e.Run
	c.nonNegative("run.chunk_size", r.ChunkSize)
	c.oneOf("run.mode", r.Mode, ModePlugin, ModeInProcess)
	if r.CallTimeout <= 0 {
		c.bad("run.call_timeout", r.CallTimeout, "must be > 0, e.g. \"10m\"")
	}
	if r.Jobs < 1 {
		c.bad("run.jobs", r.Jobs, "must be ≥ 1")
	}
	c.oneOf("run.executor", r.Executor, ExecutorLocal, ExecutorSlurm)
	if r.ProgressEvery < 0 {
		c.bad("run.progress_every", r.ProgressEvery, "must be ≥ 0, e.g. \"30s\" (0: no progress lines)")
	}
	if _, err := ParseBytes(r.MaxMemory); err != nil {
		c.bad("run.max_memory", r.MaxMemory, "%v", err)
	}
	sl := e.Slurm
	c.nonNegative("slurm.cpus_per_task", sl.CPUsPerTask)
	c.nonNegative("slurm.max_parallel", sl.MaxParallel)
	if sl.Poll <= 0 {
		c.bad("slurm.poll", sl.Poll, "must be > 0, e.g. \"5s\"")
	}
	c.checkSizes()
	return c.err()
}

// Validate checks the experiment and every grid cell. With a Describer it also
// checks each component's options against the implementation's OptionSpecs
// (known name, type, Choices), converts them to their declared types and fills
// in the defaults, here and in every cell Cells returns from now on. With a nil
// Describer options are left unchecked.
func (e *Experiment) Validate(describe Describer) error {
	if err := e.check(); err != nil {
		return err
	}
	if describe == nil {
		e.stripDefaults()
	} else {
		describe = memoize(describe)
		if err := e.fillOptions(describe); err != nil {
			return err
		}
	}
	e.describe, e.validated = describe, true
	_, err := e.Cells()
	return err
}

func memoize(describe Describer) Describer {
	type result struct {
		d   *stage.Description
		err error
	}
	cache := map[[3]string]result{}
	return func(kind, impl string, options map[string]string) (*stage.Description, error) {
		k := [3]string{kind, impl, optionsKey(options)}
		if r, ok := cache[k]; ok {
			return r.d, r.err
		}
		d, err := describe(kind, impl, options)
		cache[k] = result{d, err}
		return d, err
	}
}

// stripDefaults drops the options nobody set, i.e. the defaults a previous
// fillOptions added, so they can be filled again for another implementation.
func (e *Experiment) stripDefaults() {
	for kind, comp := range e.Components {
		for k := range comp.Options {
			if _, ok := e.origin["components."+kind+".options."+k]; !ok {
				delete(comp.Options, k)
			}
		}
	}
}

// fillOptions checks every component's options and fills in the defaults.
func (e *Experiment) fillOptions(describe Describer) error {
	e.stripDefaults()
	c := &checker{e: e}
	for _, kind := range stage.Kinds {
		comp := e.Components[kind]
		p := "components." + kind
		desc, err := describe(kind, comp.Impl, nil)
		if err != nil {
			c.bad(p+".impl", comp.Impl, "%v", err)
			continue
		}
		if desc == nil {
			c.bad(p+".impl", comp.Impl, "the implementation returned no description")
			continue
		}
		specs := map[string]stage.OptionSpec{}
		var names []string
		for _, s := range desc.Options {
			specs[s.Name] = s
			names = append(names, s.Name)
		}
		sort.Strings(names)
		valid := strings.Join(names, ", ")
		if valid == "" {
			valid = "none"
		}
		if comp.Options == nil {
			comp.Options = map[string]any{}
		}
		keys := make([]string, 0, len(comp.Options))
		for k := range comp.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			op := p + ".options." + k
			v := comp.Options[k]
			spec, ok := specs[k]
			if !ok {
				c.bad(op, v, "%s %q has no option %q; valid options: %s", kind, comp.Impl, k, valid)
				continue
			}
			got, msg := optionValue(spec, v)
			if msg != "" {
				c.bad(op, v, "%s", msg)
				continue
			}
			comp.Options[k] = got
		}
		for _, s := range desc.Options {
			if _, ok := comp.Options[s.Name]; ok || (s.Default == "" && s.Type != "string") {
				continue
			}
			v, err := parseOptionString(s.Type, s.Default)
			if err != nil {
				c.bad(p+".impl", comp.Impl, "option %q declares default %q, which is not a %s: fix the plugin", s.Name, s.Default, s.Type)
				continue
			}
			comp.Options[s.Name] = v
		}
		e.Components[kind] = comp
		if len(c.errs) == 0 {
			if _, err := describe(kind, comp.Impl, e.StageConfig(kind).Options); err != nil {
				k := e.blamedOption(kind, err)
				if k == "" {
					c.bad(p+".options", comp.Options, "%v", err)
				} else {
					c.bad(p+".options."+k, comp.Options[k], "%v", err)
				}
			}
		}
	}
	return c.err()
}

// blamedOption guesses which option of a component an implementation's error is
// about: one that was set (in the file, by -set or by a grid axis) and whose name
// the message mentions, else any that was set; "" when none was.
func (e *Experiment) blamedOption(kind string, err error) string {
	var set []string
	for k := range e.Components[kind].Options {
		if _, ok := e.origin["components."+kind+".options."+k]; ok {
			set = append(set, k)
		}
	}
	sort.Strings(set)
	for _, k := range set {
		if strings.Contains(err.Error(), k) {
			return k
		}
	}
	if len(set) > 0 {
		return set[0]
	}
	return ""
}

// optionsKey is a canonical string of an option map, for memoize.
func optionsKey(options map[string]string) string {
	if options == nil {
		return "\x00nil"
	}
	keys := make([]string, 0, len(options))
	for k := range options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q;", k, options[k])
	}
	return b.String()
}

// optionValue converts an option value to its spec's type and checks Choices.
func optionValue(spec stage.OptionSpec, v any) (any, string) {
	var out any
	switch spec.Type {
	case "string":
		s, ok := v.(string)
		if !ok {
			return nil, "want a string" + choicesHint(spec)
		}
		out = s
	case "int":
		i, ok := v.(int64)
		if !ok {
			return nil, "want an integer"
		}
		out = i
	case "float":
		switch x := v.(type) {
		case float64:
			out = x
		case int64:
			out = float64(x)
		default:
			return nil, "want a number"
		}
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return nil, "want true or false"
		}
		out = b
	default:
		return nil, fmt.Sprintf("the plugin declares unknown option type %q (want string, int, float or bool)", spec.Type)
	}
	if len(spec.Choices) > 0 && !contains(spec.Choices, OptionString(out)) {
		return nil, "not a valid choice; valid choices: " + strings.Join(spec.Choices, ", ")
	}
	return out, ""
}

func choicesHint(spec stage.OptionSpec) string {
	if len(spec.Choices) == 0 {
		return ""
	}
	return " (one of: " + strings.Join(spec.Choices, ", ") + ")"
}

// parseOptionString reads an OptionSpec default.
func parseOptionString(typ, s string) (any, error) {
	switch typ {
	case "string":
		return s, nil
	case "int":
		return strconv.ParseInt(s, 10, 64)
	case "float":
		f, err := strconv.ParseFloat(s, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, fmt.Errorf("not finite")
		}
		return f, err
	case "bool":
		return strconv.ParseBool(s)
	}
	return nil, fmt.Errorf("unknown option type %q", typ)
}

// OptionString formats an option value the way stages receive it: strings as
// they are, bools "true"/"false", integers in decimal, floats in %g.
func OptionString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

// StageConfig returns the configuration of one stage kind: the int fields of
// [model] as Dims, the component's options as strings.
func (e *Experiment) StageConfig(kind string) stage.Config {
	cfg := stage.Config{Dims: map[string]int{}, Options: map[string]string{}}
	rv := reflect.ValueOf(e.Model)
	for name, i := range fieldsOf(rv.Type()) {
		if f := rv.Field(i); f.Kind() == reflect.Int {
			cfg.Dims[name] = int(f.Int())
		}
	}
	for k, v := range e.Components[kind].Options {
		cfg.Options[k] = OptionString(v)
	}
	return cfg
}
