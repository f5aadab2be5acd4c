package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"liquidlab/framework/stage"
)

// notCanonical lists the settings that do not change a cell's results and so stay
// out of Canonical: renaming an experiment, rewording it or running it with more
// jobs or a longer timeout must not invalidate finished cells.
var notCanonical = []string{"name", "description", "grid", "run.jobs", "run.call_timeout", "run.executor", "run.progress_every", "run.max_memory", "slurm"}

// Canonical encodes the resolved settings as TOML, one `dotted.key = value` line
// per setting, sorted by key; the same settings always give the same bytes. It
// leaves out name, description, grid, run.jobs, run.call_timeout, run.executor,
// run.progress_every, run.max_memory and the [slurm] table (where a cell runs does not change its results).
func (e *Experiment) Canonical() []byte {
	lines := map[string]string{}
	flatten(reflect.ValueOf(*e), "", lines)
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, lines[k])
	}
	return b.Bytes()
}

// notIdentity lists the settings of Canonical that stay out of a cell's id:
// repeats are runs inside a cell, so raising them adds runs to the same cell.
var notIdentity = []string{"repeats"}

// IdentityForm is Canonical without the settings a cell's id leaves out
// (repeats): the cell id hashes it, while the cell's config file keeps all
// of Canonical.
func (e *Experiment) IdentityForm() []byte {
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(string(e.Canonical()), "\n") {
		key, _, _ := strings.Cut(line, " = ")
		if !contains(notIdentity, key) {
			b.WriteString(line)
		}
	}
	return b.Bytes()
}

func flatten(rv reflect.Value, prefix string, out map[string]string) {
	switch {
	case rv.Kind() == reflect.Struct && rv.Type() != durationType:
		for name, i := range fieldsOf(rv.Type()) {
			p := prefix + name
			if contains(notCanonical, p) {
				continue
			}
			// A setting added after cells were recorded leaves their ids alone
			// while it keeps its default: zero (omitzero) or the value
			// named by omitdefault=<value> (a string setting).
			if omitted(rv.Field(i), rv.Type().Field(i).Tag.Get("canonical")) {
				continue
			}
			flatten(rv.Field(i), p+".", out)
		}
	case rv.Kind() == reflect.Map:
		for _, k := range rv.MapKeys() {
			flatten(rv.MapIndex(k), prefix+tomlKey(k.String())+".", out)
		}
	default:
		out[strings.TrimSuffix(prefix, ".")] = formatValue(rv.Interface())
	}
}

// omitted reports whether a field tagged canonical:"omitzero" or
// canonical:"omitdefault=<value>" holds its default and so stays out of the
// canonical form.
func omitted(f reflect.Value, tag string) bool {
	if tag == "omitzero" {
		return f.IsZero() || f.Kind() == reflect.Slice && f.Len() == 0
	}
	if def, ok := strings.CutPrefix(tag, "omitdefault="); ok {
		return f.Kind() == reflect.String && f.String() == def
	}
	return false
}

// tomlKey quotes a key segment unless it is bare.
func tomlKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		if !isBare(k[i]) {
			return quote(k)
		}
	}
	return k
}

// formatValue writes a value as TOML.
func formatValue(v any) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case time.Duration:
		return quote(x.String())
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = tomlKey(k) + " = " + formatValue(x[k])
		}
		if len(parts) == 0 {
			return "{}"
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = formatValue(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return quote(fmt.Sprint(v))
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// DryRun prints what running e would do: the shared settings, then one row per
// grid cell with the values of the varied axes.
func DryRun(w io.Writer, e *Experiment) error {
	cells, err := e.Cells()
	if err != nil {
		return err
	}
	m := e.Model
	var b bytes.Buffer
	fmt.Fprintf(&b, "experiment %s (%s): %d cell(s) × %d repeat(s), seed %d, data seed %d\n", e.Name, e.File, len(cells), e.Repeats, e.Seed, e.DataSeed())
	if e.Description != "" {
		fmt.Fprintf(&b, "  %s\n", e.Description)
	}
	fmt.Fprintf(&b, "model:      vocab_size=%d embedding_dim=%d latent_dim=%d hidden_size=%d hidden_dim=%d num_flows=%d tie_output=%t%s\n",
		m.VocabSize, m.EmbeddingDim, m.LatentDim, m.HiddenSize, m.HiddenDim, m.NumFlows, m.TieOutput, headNote(m.HeadPrecision)+blockNote(m.Block))
	for _, kind := range stage.Kinds {
		c := e.Components[kind]
		line := c.Impl
		if c.SHA256 != "" {
			line += " sha256=" + c.SHA256
		}
		if len(c.Options) > 0 {
			line += " " + formatValue(c.Options)
		}
		fmt.Fprintf(&b, "%-11s %s\n", kind+":", line)
	}
	d, t := e.Data, e.Train
	fmt.Fprintf(&b, "data:       source=%s tokenizer=%s seq_len=%d valid_fraction=%s\n",
		quote(d.Source), quote(d.Tokenizer), d.SeqLen, formatFloat(d.ValidFraction))
	fmt.Fprintf(&b, "train:      steps=%d batch=%d lr=%s weight_decay=%s warmup_steps=%d clip_grad_norm=%s lr_step_every=%d lr_gamma=%s objective=%s\n",
		t.Steps, t.Batch, formatFloat(t.LR), formatFloat(t.WeightDecay), t.WarmupSteps, formatFloat(t.ClipGradNorm), t.LRStepEvery, formatFloat(t.LRGamma), t.Objective)
	if t.Minutes > 0 {
		fmt.Fprintf(&b, "            minutes=%s (a wall-clock budget: training stops after it or after steps)\n", formatFloat(t.Minutes))
	}
	fmt.Fprintf(&b, "eval:       batches=%d\n", e.Eval.Batches)
	fmt.Fprintf(&b, "bench:      lengths=%s batch=%d modes=%s warmup=%d repeats=%d\n",
		formatValue(e.Bench.Lengths), e.Bench.Batch, formatValue(e.Bench.Modes), e.Bench.Warmup, e.Bench.Repeats)
	fmt.Fprintf(&b, "run:        chunk_size=%d mode=%s call_timeout=%s jobs=%d\n",
		e.Run.ChunkSize, e.Run.Mode, e.Run.CallTimeout, e.Run.Jobs)
	fmt.Fprintln(&b)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	header := []string{"cell"}
	if len(cells) > 0 {
		for _, a := range cells[0].Axes {
			header = append(header, a.Key)
		}
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, c := range cells {
		row := []string{strconv.Itoa(c.Index)}
		for _, a := range c.Axes {
			row = append(row, formatValue(a.Value))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	return nil
}

// headNote names a head precision other than the default for DryRun.
func headNote(p string) string {
	if p == HeadFP32 {
		return ""
	}
	return " head_precision=" + p
}

// blockNote names a block composition other than the default for DryRun.
func blockNote(b string) string {
	if b == BlockParallel || b == "" {
		return ""
	}
	return " block=" + b
}
