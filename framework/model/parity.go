package model

import (
	"context"
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

// Fixture is a parity fixture in the format of SEED_MODEL.md: a tiny model's
// parameters, inputs, outputs and gradients written by the PyTorch reference.
type Fixture struct {
	Path    string
	Dims    Dims
	Share   bool
	Method  string
	RTol    float64
	ATol    float64
	PadID   int64
	Params  map[string]*tensor.Tensor
	Grads   map[string]*tensor.Tensor
	Outputs map[string]*tensor.Tensor
	Batch   Batch
}

// LoadFixture reads and checks a fixture. Errors name the tensor or metadata key.
func LoadFixture(path string) (*Fixture, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fx := &Fixture{Path: path, Params: map[string]*tensor.Tensor{}, Grads: map[string]*tensor.Tensor{}, Outputs: map[string]*tensor.Tensor{}}
	md := f.Metadata
	geti := func(k string) int {
		if err != nil {
			return 0
		}
		v, ok := md[k]
		if !ok {
			err = fmt.Errorf("%s: metadata lacks %q", path, k)
			return 0
		}
		n, e := strconv.Atoi(v)
		if e != nil {
			err = fmt.Errorf("%s: metadata %q = %q is not an integer", path, k, v)
		}
		return n
	}
	getf := func(k string, def float64) float64 {
		v, ok := md[k]
		if !ok || err != nil {
			return def
		}
		x, e := strconv.ParseFloat(v, 64)
		if e != nil {
			err = fmt.Errorf("%s: metadata %q = %q is not a number", path, k, v)
		}
		return x
	}
	fx.Dims = Dims{Vocab: geti("vocab_size"), D: geti("embedding_dim"), L: geti("latent_dim"),
		H: geti("hidden_size"), F: geti("hidden_dim"), K: geti("num_flows")}
	fx.PadID = int64(geti("pad_token_id"))
	fx.RTol, fx.ATol = getf("rtol", 1e-3), getf("atol", 1e-3)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(md["share_params"]) {
	case "true", "1":
		fx.Share = true
	case "false", "0":
	default:
		return nil, fmt.Errorf("%s: metadata share_params = %q is not a boolean", path, md["share_params"])
	}
	fx.Method = md["ode_method"]
	if fx.Method == "" {
		return nil, fmt.Errorf("%s: metadata lacks \"ode_method\"", path)
	}
	if err := fx.Dims.Validate(); err != nil {
		return nil, fmt.Errorf("%s: metadata: %w", path, err)
	}
	for name, t := range f.Floats {
		switch {
		case strings.HasPrefix(name, "param."):
			fx.Params[strings.TrimPrefix(name, "param.")] = t
		case strings.HasPrefix(name, "grad."):
			fx.Grads[strings.TrimPrefix(name, "grad.")] = t
		case strings.HasPrefix(name, "output."):
			fx.Outputs[strings.TrimPrefix(name, "output.")] = t
		}
	}
	ids, ok := f.Ints["input.input_ids"]
	if !ok {
		if _, isFloat := f.Floats["input.input_ids"]; isFloat {
			return nil, fmt.Errorf("%s: tensor input.input_ids is %s, want an integer dtype", path, f.DTypes["input.input_ids"])
		}
		return nil, fmt.Errorf("%s: tensor input.input_ids is missing", path)
	}
	if len(ids.Shape) != 2 {
		return nil, fmt.Errorf("%s: tensor input.input_ids has shape %v, want [B, S]", path, ids.Shape)
	}
	b, s := ids.Shape[0], ids.Shape[1]
	in := tensor.Map{}
	for _, k := range []string{"timestamps", "t_span"} {
		t, ok := f.Floats["input."+k]
		if !ok {
			return nil, fmt.Errorf("%s: tensor input.%s is missing", path, k)
		}
		in[k] = t
	}
	if _, err := in.Need("timestamps", b, s); err != nil {
		return nil, fmt.Errorf("%s: %w (input_ids is %d×%d)", path, err, b, s)
	}
	if _, err := in.Need("t_span", -1); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i, id := range ids.Data {
		if id < 0 || id >= int64(fx.Dims.Vocab) {
			return nil, fmt.Errorf("%s: tensor input.input_ids: id %d at %d is outside vocab_size %d", path, id, i, fx.Dims.Vocab)
		}
	}
	want := map[string][]int{"logits": {b, s, fx.Dims.Vocab}, "h": {b, fx.Dims.H}, "log_det_jacobian": {b, s}, "attn_weights": {b, 1, s}, "loss": {1}}
	for k, shape := range want {
		if _, err := tensor.Map(fx.Outputs).Need(k, shape...); err != nil {
			return nil, fmt.Errorf("%s: output.%s: %w", path, k, err)
		}
	}
	fx.Batch = Batch{B: b, S: s, IDs: ids.Data, Timestamps: in["timestamps"].Data, TSpan: in["t_span"].Data}
	return fx, nil
}

// Options returns the stage options the fixture's configuration implies.
func (fx *Fixture) Options() map[string]map[string]string {
	tol := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	return map[string]map[string]string{
		stage.KindFlows:     {"share_params": strconv.FormatBool(fx.Share)},
		stage.KindODE:       {"method": fx.Method, "rtol": tol(fx.RTol), "atol": tol(fx.ATol)},
		stage.KindAttention: {"pattern": "all"},
		stage.KindLiquid:    {"method": fx.Method, "rtol": tol(fx.RTol), "atol": tol(fx.ATol)},
	}
}

// Compared is one compared tensor.
type Compared struct {
	Name      string
	MaxAbs    float64
	MaxRel    float64 // max |got−want| / max(max |want|, 1e-6)
	Tolerance float64
}

// OK reports whether the tensor is within tolerance.
func (c Compared) OK() bool { return c.MaxRel <= c.Tolerance && !math.IsNaN(c.MaxRel) }

// ParityReport is what RunParity measured.
type ParityReport struct {
	Outputs []Compared
	Grads   []Compared
	Stats   map[string]float64
	Missing []string // gradients one side has and the other lacks
}

// OK reports whether everything matched.
func (r *ParityReport) OK() bool {
	for _, c := range append(append([]Compared{}, r.Outputs...), r.Grads...) {
		if !c.OK() {
			return false
		}
	}
	return len(r.Missing) == 0
}

// RunParity builds the fixture's model on the given stages, loads its
// parameters, runs forward and backward of the fixture's loss
// cross_entropy(logits, ids, ignore pad) + 0.01·mean(h) + 0.001·mean(ldj),
// and compares every output and gradient.
func RunParity(ctx context.Context, fx *Fixture, stages map[string]stage.Stage, outTol, gradTol float64) (*ParityReport, error) {
	m, err := New(ctx, fx.Dims, stages, fx.Options())
	if err != nil {
		return nil, err
	}
	if err := m.Params.LoadStateDict(fx.Params); err != nil {
		return nil, fmt.Errorf("%s: %w", fx.Path, err)
	}
	b := fx.Batch
	d := fx.Dims
	count := 0
	for _, id := range b.IDs {
		if id != fx.PadID {
			count++
		}
	}
	if count == 0 {
		return nil, fmt.Errorf("%s: every label is the pad id %d: the loss is undefined", fx.Path, fx.PadID)
	}
	logits := make([]float32, b.B*b.S*d.Vocab)
	var loss float64
	ce := CrossEntropy(b.IDs, fx.PadID, count, &loss, nil)
	keep := func(blk *Block) error {
		for i, pos := range blk.Index {
			copy(logits[pos*d.Vocab:(pos+1)*d.Vocab], blk.Logits[i*d.Vocab:(i+1)*d.Vocab])
		}
		return ce(blk)
	}
	m.Params.ZeroGrad()
	hw := float32(0.01 / float64(b.B*d.H))
	res, err := m.Run(ctx, &b, RunOptions{Train: true, KeepAttn: true,
		DLDJ: float32(0.001 / float64(b.B*b.S)),
		DH: func(h, dh []float32) {
			for i := range dh {
				dh[i] = hw
			}
		}}, keep)
	if err != nil {
		return nil, err
	}
	var hmean, lmean float64
	for _, v := range res.H {
		hmean += float64(v)
	}
	for _, v := range res.LDJ {
		lmean += float64(v)
	}
	loss += 0.01*hmean/float64(len(res.H)) + 0.001*lmean/float64(len(res.LDJ))
	rep := &ParityReport{Stats: res.Stats}
	got := map[string][]float32{"logits": logits, "h": res.H, "log_det_jacobian": res.LDJ, "attn_weights": res.Attn, "loss": {float32(loss)}}
	for _, k := range []string{"logits", "h", "log_det_jacobian", "attn_weights", "loss"} {
		rep.Outputs = append(rep.Outputs, compare("output."+k, got[k], fx.Outputs[k].Data, outTol))
	}
	seen := map[*Param]bool{}
	names := make([]string, 0, len(fx.Grads))
	for n := range fx.Grads {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := m.Params.Get(n)
		switch {
		case p == nil:
			rep.Missing = append(rep.Missing, "grad."+n+": no such parameter in the Go model")
			continue
		case p.Grad == nil:
			rep.Missing = append(rep.Missing, "grad."+n+": the Go model gives this parameter no gradient")
			continue
		case len(p.Grad.Data) != len(fx.Grads[n].Data):
			return nil, fmt.Errorf("%s: tensor grad.%s has %d values, parameter has %d", fx.Path, n, len(fx.Grads[n].Data), len(p.Grad.Data))
		}
		seen[p] = true
		rep.Grads = append(rep.Grads, compare("grad."+n, p.Grad.Data, fx.Grads[n].Data, gradTol))
	}
	for _, p := range m.Params.List {
		if p.Grad != nil && !seen[p] {
			nonzero := false
			for _, v := range p.Grad.Data {
				nonzero = nonzero || v != 0
			}
			if nonzero {
				rep.Missing = append(rep.Missing, "grad."+p.Name+": the Go model computes a gradient the fixture lacks")
			}
		}
	}
	return rep, nil
}

// relFloor is the smallest scale relative errors are measured against.
const relFloor = 1e-6

func compare(name string, got, want []float32, tol float64) Compared {
	c := Compared{Name: name, Tolerance: tol}
	if len(got) != len(want) {
		c.MaxAbs, c.MaxRel = math.Inf(1), math.Inf(1)
		return c
	}
	var scale float64
	for i := range want {
		c.MaxAbs = math.Max(c.MaxAbs, math.Abs(float64(got[i])-float64(want[i])))
		if math.IsNaN(float64(got[i])) {
			c.MaxAbs = math.NaN()
		}
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	// A gradient that is zero in exact arithmetic (the attention key's bias:
	// softmax ignores a shift shared by every position) is float noise of
	// ~1e-12 on both sides; the floor keeps noise from reading as 100% error.
	c.MaxRel = c.MaxAbs / math.Max(scale, relFloor)
	return c
}

// Print writes the report as a table.
func (r *ParityReport) Print(w io.Writer) {
	fmt.Fprintf(w, "%-70s %12s %12s %8s\n", "tensor", "max abs err", "max rel err", "")
	for _, c := range append(append([]Compared{}, r.Outputs...), r.Grads...) {
		mark := "ok"
		if !c.OK() {
			mark = fmt.Sprintf("FAIL (tol %g)", c.Tolerance)
		}
		fmt.Fprintf(w, "%-70s %12.3e %12.3e %s\n", c.Name, c.MaxAbs, c.MaxRel, mark)
	}
	for _, m := range r.Missing {
		fmt.Fprintln(w, "MISMATCH", m)
	}
	keys := make([]string, 0, len(r.Stats))
	for k := range r.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "stat %s = %g\n", k, r.Stats[k])
	}
	fmt.Fprintln(w, "relative error = max|go − torch| / max(max|torch|, 1e-6) per tensor")
}
