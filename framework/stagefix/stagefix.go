// Package stagefix checks one stage (any kind, built-in or plugin) against a
// stage fixture: a safetensors file written by an independent reference, in
// the format of ../shared/FIXTURES.md ("Stage fixtures"). It is what
// `liquidlab parity` runs on a file whose metadata says fixture = "stage".
//
// # What it does
//
// Load reads and validates the file: the metadata (kind, impl, options, dims,
// optional chunks) and the tensors param.*, input.*, output.*, cotangent.*,
// grad.input.*, grad.param.*. Run then
//
//  1. describes the stage with the file's dims and options (an option the stage
//     does not declare is an error; the defaults of the others are filled in, as
//     the host does) and checks that every declared parameter is in the file
//     with its declared shape and that the file has no other;
//  2. forwards the whole sequence as one chunk and compares every output.*;
//  3. backwards the cotangents and compares every grad.* (an input or
//     parameter gradient the stage does not return counts as zero);
//  4. when chunks is given, forwards chunk by chunk carrying the state the stage
//     returns, and compares the concatenated per-token outputs, and the
//     per-sequence outputs of the last chunk, with output.*.
//
// Errors are measured as in FIXTURES.md: max|got − ref| divided by
// max(max|ref|, 1e-3 × the largest |value| of the file's tensors of the same
// group), groups outputs and gradients.
//
// # Per-token and per-sequence tensors
//
// The file gives whole sequences of B rows and S positions; S is dimension 1 of
// input.e (or of the first input of rank 3). For the chunked pass an input is
// cut along dimension 1 when it has rank ≥ 3 and that dimension is S, or it is
// "timestamps" [B,S]; every other input (h [B,H], c [B,H], …) is passed whole to
// every chunk. An output is per-token when every chunk returned it with
// dimension 1 equal to the chunk's length (and the one-chunk pass with S);
// otherwise it is per-sequence and compared from the last chunk.
package stagefix

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/safetensors"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Fixture is a loaded stage fixture.
type Fixture struct {
	Path       string
	Kind, Impl string
	Options    map[string]string
	Dims       map[string]int
	Chunks     []int // nil: no chunked pass
	Reference  string
	Params     tensor.Map // by local name
	Inputs     tensor.Map
	Outputs    tensor.Map
	Cotangents tensor.Map // by output name
	GradInputs tensor.Map
	GradParams tensor.Map
	B, S       int
}

// IsStage reports whether a parsed safetensors file is a stage fixture.
func IsStage(f *safetensors.File) bool { return f.Metadata["fixture"] == "stage" }

// Load reads a stage fixture. Every error is one line naming the file and the
// metadata key or tensor at fault.
func Load(path string) (*Fixture, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stage fixture: %w", err)
	}
	fx, err := FromFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fx.Path = path
	return fx, nil
}

// FromFile interprets a parsed safetensors file as a stage fixture.
func FromFile(f *safetensors.File) (*Fixture, error) {
	md := f.Metadata
	if md["fixture"] != "stage" {
		return nil, fmt.Errorf("metadata fixture = %q, want \"stage\"", md["fixture"])
	}
	fx := &Fixture{Kind: md["kind"], Impl: md["impl"], Reference: md["reference"],
		Params: tensor.Map{}, Inputs: tensor.Map{}, Outputs: tensor.Map{}, Cotangents: tensor.Map{},
		GradInputs: tensor.Map{}, GradParams: tensor.Map{}}
	okKind := false
	for _, k := range stage.Kinds {
		okKind = okKind || k == fx.Kind
	}
	if !okKind {
		return nil, fmt.Errorf("metadata kind = %q, want one of %v", fx.Kind, stage.Kinds)
	}
	if fx.Impl == "" {
		return nil, fmt.Errorf("metadata impl is missing: name the implementation, e.g. \"causal\"")
	}
	var opts map[string]any
	if s := md["options"]; s != "" {
		if err := json.Unmarshal([]byte(s), &opts); err != nil {
			return nil, fmt.Errorf("metadata options is not a JSON object: %v", err)
		}
	}
	fx.Options = map[string]string{}
	for k, v := range opts {
		switch x := v.(type) {
		case string:
			fx.Options[k] = x
		case float64:
			fx.Options[k] = strconv.FormatFloat(x, 'g', -1, 64)
		case bool:
			fx.Options[k] = strconv.FormatBool(x)
		default:
			return nil, fmt.Errorf("metadata options: option %q has value %v, want a string", k, v)
		}
	}
	fx.Dims = map[string]int{}
	if s := md["dims"]; s != "" {
		var dims map[string]any
		if err := json.Unmarshal([]byte(s), &dims); err != nil {
			return nil, fmt.Errorf("metadata dims is not a JSON object: %v", err)
		}
		for k, v := range dims {
			var n float64
			switch x := v.(type) {
			case float64:
				n = x
			case string:
				var err error
				if n, err = strconv.ParseFloat(x, 64); err != nil {
					return nil, fmt.Errorf("metadata dims: %s = %q is not an integer", k, x)
				}
			default:
				return nil, fmt.Errorf("metadata dims: %s = %v is not an integer", k, v)
			}
			if n != math.Trunc(n) || n < 0 || n > 1<<31 {
				return nil, fmt.Errorf("metadata dims: %s = %v is not a non-negative integer", k, v)
			}
			fx.Dims[k] = int(n)
		}
	}
	for name, t := range f.Ints {
		_ = t
		return nil, fmt.Errorf("tensor %s is an integer tensor (%s); stage fixtures hold float tensors", name, f.DTypes[name])
	}
	groups := []struct {
		prefix string
		dst    tensor.Map
	}{
		{"param.", fx.Params}, {"input.", fx.Inputs}, {"output.", fx.Outputs}, {"cotangent.", fx.Cotangents},
		{"grad.input.", fx.GradInputs}, {"grad.param.", fx.GradParams},
	}
	names := make([]string, 0, len(f.Floats))
	for n := range f.Floats {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		found := false
		for _, g := range groups { // grad.input. before grad.param.: prefixes are distinct
			if rest, ok := strings.CutPrefix(n, g.prefix); ok && rest != "" {
				g.dst[rest] = f.Floats[n]
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("tensor %s: unknown name (want param.*, input.*, output.*, cotangent.*, grad.input.*, grad.param.*)", n)
		}
	}
	if len(fx.Outputs) == 0 {
		return nil, fmt.Errorf("no output.* tensor: nothing to compare")
	}
	for n, t := range fx.Cotangents {
		ref, ok := fx.Outputs[n]
		if !ok {
			return nil, fmt.Errorf("tensor cotangent.%s has no output.%s", n, n)
		}
		if !tensor.SameShape(t.Shape, ref.Shape) {
			return nil, fmt.Errorf("tensor cotangent.%s has shape %v, want %v (output.%s)", n, t.Shape, ref.Shape, n)
		}
	}
	if (len(fx.GradInputs)+len(fx.GradParams) > 0) && len(fx.Cotangents) == 0 {
		return nil, fmt.Errorf("grad.* tensors but no cotangent.*: the loss is undefined")
	}
	for n, g := range fx.GradInputs {
		in, ok := fx.Inputs[n]
		if !ok {
			return nil, fmt.Errorf("tensor grad.input.%s has no input.%s", n, n)
		}
		if !tensor.SameShape(g.Shape, in.Shape) {
			return nil, fmt.Errorf("tensor grad.input.%s has shape %v, want %v (input.%s)", n, g.Shape, in.Shape, n)
		}
	}
	for n, g := range fx.GradParams {
		p, ok := fx.Params[n]
		if !ok {
			return nil, fmt.Errorf("tensor grad.param.%s has no param.%s", n, n)
		}
		if !tensor.SameShape(g.Shape, p.Shape) {
			return nil, fmt.Errorf("tensor grad.param.%s has shape %v, want %v (param.%s)", n, g.Shape, p.Shape, n)
		}
	}
	// B and S
	seq := fx.Inputs["e"]
	if seq == nil {
		for _, n := range fx.Inputs.Names() {
			if t := fx.Inputs[n]; len(t.Shape) >= 3 {
				seq = t
				break
			}
		}
	}
	if seq != nil && len(seq.Shape) >= 2 {
		fx.B, fx.S = seq.Shape[0], seq.Shape[1]
	}
	if s := md["chunks"]; s != "" {
		if err := json.Unmarshal([]byte(s), &fx.Chunks); err != nil {
			return nil, fmt.Errorf("metadata chunks = %q is not a JSON list of integers", s)
		}
		if seq == nil {
			return nil, fmt.Errorf("metadata chunks given but no sequence input (input.e [B,S,…]) to cut")
		}
		sum := 0
		for _, c := range fx.Chunks {
			if c <= 0 {
				return nil, fmt.Errorf("metadata chunks = %s: chunk length %d, want positive", s, c)
			}
			sum += c
		}
		if sum != fx.S {
			return nil, fmt.Errorf("metadata chunks = %s add up to %d, want S = %d (input.e dimension 1)", s, sum, fx.S)
		}
	}
	return fx, nil
}

// Compared is one tensor's comparison.
type Compared struct {
	Pass        string // "whole" or "chunked"
	Name        string // e.g. output.y, grad.param.key.bias
	MaxAbs, Rel float64
	Tol         float64
}

// OK reports whether the tensor is within tolerance.
func (c Compared) OK() bool { return c.Rel <= c.Tol && !math.IsNaN(c.Rel) }

// Report is the result of Run.
type Report struct {
	Fixture *Fixture
	Rows    []Compared
	Stats   map[string]float64
}

// OK reports whether every tensor is within tolerance.
func (r *Report) OK() bool {
	for _, c := range r.Rows {
		if !c.OK() {
			return false
		}
	}
	return true
}

// Print writes one line per tensor.
func (r *Report) Print(w io.Writer) {
	for _, c := range r.Rows {
		flag := "ok  "
		if !c.OK() {
			flag = "FAIL"
		}
		fmt.Fprintf(w, "%s %-8s %-28s max|diff| %.3e  rel %.3e  (tol %g)\n", flag, c.Pass, c.Name, c.MaxAbs, c.Rel, c.Tol)
	}
}

// scale is the largest |value| of a group of tensors.
func scale(m tensor.Map) float64 {
	var s float64
	for _, t := range m {
		for _, v := range t.Data {
			s = math.Max(s, math.Abs(float64(v)))
		}
	}
	return s
}

func compare(pass, name string, got, ref []float32, groupScale, tol float64) Compared {
	var md, mr float64
	for i, r := range ref {
		d := math.Abs(float64(got[i]) - float64(r))
		if math.IsNaN(d) {
			md = math.NaN()
		} else if !math.IsNaN(md) {
			md = math.Max(md, d)
		}
		mr = math.Max(mr, math.Abs(float64(r)))
	}
	return Compared{Pass: pass, Name: name, MaxAbs: md, Rel: md / math.Max(math.Max(mr, 1e-3*groupScale), 1e-30), Tol: tol}
}

// Config returns the stage configuration the fixture asks for, checked against
// the stage's description: unknown options are errors and the defaults of the
// others are filled in.
func Config(ctx context.Context, fx *Fixture, st stage.Stage) (stage.Config, *stage.Description, error) {
	cfg := stage.Config{Dims: fx.Dims, Options: map[string]string{}}
	for k, v := range fx.Options {
		cfg.Options[k] = v
	}
	d, err := st.Describe(ctx, cfg)
	if err != nil {
		return cfg, nil, fmt.Errorf("%s/%s: describe: %w", fx.Kind, fx.Impl, err)
	}
	declared := map[string]bool{}
	for _, o := range d.Options {
		declared[o.Name] = true
		if _, ok := cfg.Options[o.Name]; !ok {
			cfg.Options[o.Name] = o.Default
		}
	}
	keys := make([]string, 0, len(fx.Options))
	for k := range fx.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !declared[k] {
			return cfg, nil, fmt.Errorf("metadata options: %s/%s has no option %q", fx.Kind, fx.Impl, k)
		}
	}
	if d, err = st.Describe(ctx, cfg); err != nil {
		return cfg, nil, fmt.Errorf("%s/%s: describe: %w", fx.Kind, fx.Impl, err)
	}
	if d.Kind != fx.Kind {
		return cfg, nil, fmt.Errorf("stage %s is of kind %q, the fixture's kind is %q", fx.Impl, d.Kind, fx.Kind)
	}
	return cfg, d, nil
}

// Run checks st against fx (see the package comment). outTol and gradTol are
// the relative tolerances of outputs (also in the chunked pass) and gradients.
func Run(ctx context.Context, fx *Fixture, st stage.Stage, outTol, gradTol float64) (*Report, error) {
	cfg, d, err := Config(ctx, fx, st)
	if err != nil {
		return nil, err
	}
	// parameters: exactly the declared ones, with their shapes
	params := tensor.Map{}
	declared := map[string]bool{}
	for _, p := range d.Params {
		declared[p.Name] = true
		t, ok := fx.Params[p.Name]
		if !ok {
			return nil, fmt.Errorf("tensor param.%s is missing: %s/%s declares it with shape %v", p.Name, fx.Kind, fx.Impl, p.Shape)
		}
		if !tensor.SameShape(t.Shape, p.Shape) {
			return nil, fmt.Errorf("tensor param.%s has shape %v, want %v", p.Name, t.Shape, p.Shape)
		}
		params[p.Name] = t
	}
	for _, n := range fx.Params.Names() {
		if !declared[n] {
			return nil, fmt.Errorf("tensor param.%s: %s/%s has no such parameter", n, fx.Kind, fx.Impl)
		}
	}
	inputs := map[string]bool{}
	for _, n := range d.Inputs {
		inputs[n] = true
	}
	for _, n := range fx.Inputs.Names() {
		if !inputs[n] {
			return nil, fmt.Errorf("tensor input.%s: %s/%s has no such input (inputs: %s)", n, fx.Kind, fx.Impl, strings.Join(d.Inputs, ", "))
		}
	}
	outputs := map[string]bool{}
	for _, n := range d.Outputs {
		outputs[n] = true
	}
	for _, n := range fx.Outputs.Names() {
		if !outputs[n] {
			return nil, fmt.Errorf("tensor output.%s: %s/%s has no such output (outputs: %s)", n, fx.Kind, fx.Impl, strings.Join(d.Outputs, ", "))
		}
	}
	rep := &Report{Fixture: fx, Stats: map[string]float64{}}
	outScale := scale(fx.Outputs)
	grads := tensor.Map{}
	for n, t := range fx.GradInputs {
		grads["input."+n] = t
	}
	for n, t := range fx.GradParams {
		grads["param."+n] = t
	}
	gradScale := scale(grads)

	// 1. one chunk, forward
	res, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: fx.Inputs, NeedGrad: len(fx.Cotangents) > 0})
	if err != nil {
		return nil, fmt.Errorf("forward: %w", err)
	}
	for k, v := range res.Stats {
		rep.Stats[k] += v
	}
	for _, n := range fx.Outputs.Names() {
		ref := fx.Outputs[n]
		got := res.Outputs[n]
		if got == nil {
			releaseQuiet(ctx, st, res.Handle)
			return nil, fmt.Errorf("output %s: the stage did not return it", n)
		}
		if !tensor.SameShape(got.Shape, ref.Shape) || len(got.Data) != len(ref.Data) {
			releaseQuiet(ctx, st, res.Handle)
			return nil, fmt.Errorf("tensor output.%s has shape %v, the stage returned %v", n, ref.Shape, got.Shape)
		}
		rep.Rows = append(rep.Rows, compare("whole", "output."+n, got.Data, ref.Data, outScale, outTol))
	}
	// 2. backward
	if len(fx.Cotangents) > 0 {
		if res.Handle == 0 {
			return nil, fmt.Errorf("forward with NeedGrad returned no handle: the stage cannot backward")
		}
		br, err := st.Backward(ctx, res.Handle, fx.Cotangents)
		if err != nil {
			return nil, fmt.Errorf("backward: %w", err)
		}
		cmp := func(kind string, ref tensor.Map, got tensor.Map) error {
			for _, n := range ref.Names() {
				r := ref[n]
				g := got[n]
				data := make([]float32, len(r.Data)) // absent: zero
				if g != nil {
					if !tensor.SameShape(g.Shape, r.Shape) || len(g.Data) != len(r.Data) {
						return fmt.Errorf("tensor grad.%s.%s has shape %v, the stage returned %v", kind, n, r.Shape, g.Shape)
					}
					data = g.Data
				}
				rep.Rows = append(rep.Rows, compare("whole", "grad."+kind+"."+n, data, r.Data, gradScale, gradTol))
			}
			return nil
		}
		if err := cmp("input", fx.GradInputs, br.InputGrads); err != nil {
			return nil, err
		}
		if err := cmp("param", fx.GradParams, br.ParamGrads); err != nil {
			return nil, err
		}
	} else {
		releaseQuiet(ctx, st, res.Handle)
	}
	// 3. chunked
	if len(fx.Chunks) > 0 {
		rows, err := chunked(ctx, fx, st, cfg, params, outScale, outTol)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	return rep, nil
}

func releaseQuiet(ctx context.Context, st stage.Stage, h uint64) {
	if h != 0 {
		_ = st.Release(ctx, h)
	}
}

// perToken reports whether input n is cut along dimension 1.
func perToken(n string, t *tensor.Tensor, B, S int) bool {
	if len(t.Shape) < 2 || t.Shape[0] != B || t.Shape[1] != S {
		return false
	}
	return len(t.Shape) >= 3 || n == "timestamps"
}

// slice1 returns positions [lo,hi) of dimension 1 of t.
func slice1(t *tensor.Tensor, lo, hi int) *tensor.Tensor {
	B, S := t.Shape[0], t.Shape[1]
	inner := 1
	for _, d := range t.Shape[2:] {
		inner *= d
	}
	out := make([]float32, 0, B*(hi-lo)*inner)
	for b := 0; b < B; b++ {
		out = append(out, t.Data[(b*S+lo)*inner:(b*S+hi)*inner]...)
	}
	shape := append([]int{B, hi - lo}, t.Shape[2:]...)
	return tensor.From(out, shape...)
}

func chunked(ctx context.Context, fx *Fixture, st stage.Stage, cfg stage.Config, params tensor.Map, outScale, tol float64) ([]Compared, error) {
	var state tensor.Map
	parts := map[string][]*tensor.Tensor{}
	lo := 0
	for i, n := range fx.Chunks {
		in := tensor.Map{}
		for name, t := range fx.Inputs {
			if perToken(name, t, fx.B, fx.S) {
				in[name] = slice1(t, lo, lo+n)
			} else {
				in[name] = t
			}
		}
		res, err := st.Forward(ctx, cfg, &stage.ForwardRequest{Params: params, Inputs: in, State: state})
		if err != nil {
			return nil, fmt.Errorf("chunked pass, chunk %d (positions %d..%d): %w", i, lo, lo+n-1, err)
		}
		releaseQuiet(ctx, st, res.Handle)
		for name := range fx.Outputs {
			t := res.Outputs[name]
			if t == nil {
				return nil, fmt.Errorf("chunked pass, chunk %d: the stage did not return output %s", i, name)
			}
			parts[name] = append(parts[name], t)
		}
		state = res.State
		lo += n
	}
	var rows []Compared
	for _, name := range fx.Outputs.Names() {
		ref := fx.Outputs[name]
		ps := parts[name]
		tok := len(ref.Shape) >= 2 && ref.Shape[1] == fx.S
		for i, p := range ps {
			tok = tok && len(p.Shape) >= 2 && p.Shape[1] == fx.Chunks[i] && len(p.Shape) == len(ref.Shape)
		}
		var got *tensor.Tensor
		if tok {
			inner := 1
			for _, d := range ref.Shape[2:] {
				inner *= d
			}
			data := make([]float32, 0, len(ref.Data))
			for b := 0; b < fx.B; b++ {
				for i, p := range ps {
					data = append(data, p.Data[b*fx.Chunks[i]*inner:(b+1)*fx.Chunks[i]*inner]...)
				}
			}
			got = tensor.From(data, ref.Shape...)
		} else {
			got = ps[len(ps)-1]
		}
		if !tensor.SameShape(got.Shape, ref.Shape) || len(got.Data) != len(ref.Data) {
			return nil, fmt.Errorf("chunked pass: output %s has shape %v, want %v", name, got.Shape, ref.Shape)
		}
		rows = append(rows, compare("chunked", "output."+name, got.Data, ref.Data, outScale, tol))
	}
	return rows, nil
}
