// Package stagetest is the conformance kit of the stage contract (package
// stage): one call from a component's test checks what every stage must do,
// so plugin authors and the built-in components test the contract the same way.
//
//	func TestConformance(t *testing.T) {
//		stagetest.Run(t, mystage.New(), stagetest.Config{
//			Dims: map[string]int{"hidden_size": 4}, B: 2, S: 7,
//		})
//	}
//
// Run checks, on random inputs and parameters (seeded; Config.Seed):
//
//   - errors, never panics, for a nil request, an unknown handle, a missing,
//     wrong-shape (last dimension +1, one dimension more or less) or short-data
//     input, a missing or wrong-shape parameter, an incomplete or wrong-shape
//     carried state, and a wrong-shape (also transposed) output gradient; each
//     error names the tensor; Backward after Release and Backward twice fail;
//     Release twice is not an error; inputs in Config.Optional may be absent;
//   - inputs, parameters, carried state and output gradients are never modified
//     (bitwise copies compared after Forward and after Backward);
//   - handles: none without NeedGrad, a fresh one with it, none left after
//     Backward (also a failed one) or Release, counted through Config.Live or the
//     stage's own Live() / Len() method when it has one;
//   - outputs and gradients: the declared outputs, a gradient of the input's
//     shape for every input, one of the parameter's shape for every parameter
//     not declared NoGrad and none for those that are, finite values;
//   - chunked = unchunked, for stages that declare state: the sequence cut into
//     chunks of different lengths with the returned state carried (and checked
//     against the declared StateSpecs), per-token outputs concatenated, and the
//     other outputs of the last chunk compared with the one-chunk pass;
//   - gradients by central finite differences of the random linear loss
//     L = Σ out ⊙ cotangent (zero where an output is not finite), along
//     Settings.Probes random ±1 directions per input and per parameter
//     (directional derivatives: two forward passes a probe, so the whole check
//     is fast for any size; a probe that disagrees is repeated at a quarter
//     step, where a one-sided difference may agree, so a ReLU kink next to the
//     point does not fail it). An input the stage returns no gradient for must
//     not change L, unless Config.NoGrad says the stage does not differentiate
//     it by design. Gradients are checked on a first chunk (no carried state).
//
// Inputs are made from their port names (stage.PortX … stage.PortY) and the
// model dimensions embedding_dim, latent_dim and hidden_size: per-token ports
// are [B,S,dim] ([B,S] for timestamps, sorted in [0,1]), "h" and "c" are
// [B,hidden_size], "t_span" is linspace(0, 1, 5). Other inputs, or particular
// values, come from Config.Inputs. Parameters are drawn around their declared
// initialiser (off trivial values such as zero gates, so every path carries
// gradient); Config.Params overrides any of them.
//
// Failures go to t (Errorf, or Fatalf when nothing further can be checked) with
// a message naming the check; a check that does not apply is logged with the
// reason.
package stagetest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Settings are the finite-difference settings, after gonum's fd.Settings.
// Zero fields take the defaults.
type Settings struct {
	Step   float64 // perturbation of every element (default 1e-3; float32 stages want ≈ 1e-3)
	ATol   float64 // absolute tolerance of a directional derivative (default 1e-3)
	RTol   float64 // relative tolerance (default 1e-2)
	Probes int     // random directions per tensor (default 3)
}

// Config says how to run the kit on one stage configuration.
type Config struct {
	Dims    map[string]int    // the model's dimensions, as in stage.Config
	Options map[string]string // the stage's options, as in stage.Config
	B, S    int               // batch rows and tokens (defaults 2 and 7)
	Seed    uint64            // of the random inputs, parameters and cotangents

	// Inputs holds input values used instead of random ones: per-token inputs
	// [B,S,…] over the whole sequence, others as they are passed to every chunk.
	// A per-token input is one whose shape starts with [B,S].
	Inputs tensor.Map
	// Params holds parameter values used instead of random ones.
	Params tensor.Map
	// NoGrad lists inputs the stage does not differentiate by design (an ODE's
	// integration times, a scan's timestamps): no gradient is expected and their
	// finite differences are not checked.
	NoGrad []string
	// Optional lists inputs the stage accepts being absent.
	Optional []string

	Settings Settings

	// SkipChunked, when not empty, is the reason the chunked = unchunked check
	// does not apply (e.g. the stage's description says its chunked semantics
	// differ); the kit logs it.
	SkipChunked string
	// ChunkExempt maps outputs whose chunked values legitimately differ from the
	// one-chunk pass (e.g. weights normalised per chunk) to the reason.
	ChunkExempt map[string]string
	// ChunkTol bounds |chunked − whole| ≤ ChunkTol·(1 + |whole|) (default 1e-4).
	ChunkTol float64

	// Live counts the stage's live handles; nil uses the stage's Live() or Len()
	// method when it has one, else handles are checked by behaviour only.
	Live func() int
}

// Randn returns n values drawn from N(0, std²) by r, the random test data of
// every stage test; seed r with rand.New(rand.NewPCG(seed, …)) to repeat a run.
func Randn(r *rand.Rand, n int, std float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * std)
	}
	return out
}

// RelErr is max|a−b| / max(max|b|, 1e-6) over two tensors of the same size:
// the error of a against the reference b, relative to b's largest element.
func RelErr(a, b *tensor.Tensor) float64 {
	var num, den float64
	for i := range b.Data {
		num = math.Max(num, math.Abs(float64(a.Data[i]-b.Data[i])))
		den = math.Max(den, math.Abs(float64(b.Data[i])))
	}
	return num / math.Max(den, 1e-6)
}

// unknownHandle is a handle no stage has handed out in a test.
const unknownHandle = 1<<62 + 12345

// kit is one Run.
type kit struct {
	t      testing.TB
	s      stage.Stage
	c      Config
	ctx    context.Context
	scfg   stage.Config
	desc   *stage.Description
	name   string
	rng    *rand.Rand
	params tensor.Map
	inputs tensor.Map // whole sequence
	token  map[string]bool
	noGrad map[string]bool
	opt    map[string]bool
	live   func() int
}

// Run checks the stage contract for s under cfg; see the package comment.
func Run(t testing.TB, s stage.Stage, cfg Config) {
	t.Helper()
	k := &kit{t: t, s: s, c: cfg, ctx: context.Background()}
	if !k.setup() {
		return
	}
	k.checkForward()
	k.checkBackward()
	k.checkHandles()
	k.checkBadRequests()
	k.checkChunked()
	k.checkGradients()
}

func (k *kit) setup() bool {
	t := k.t
	t.Helper()
	c := &k.c
	if c.B == 0 {
		c.B = 2
	}
	if c.S == 0 {
		c.S = 7
	}
	st := &c.Settings
	if st.Step == 0 {
		st.Step = 1e-3
	}
	if st.ATol == 0 {
		st.ATol = 1e-3
	}
	if st.RTol == 0 {
		st.RTol = 1e-2
	}
	if st.Probes == 0 {
		st.Probes = 3
	}
	if c.ChunkTol == 0 {
		c.ChunkTol = 1e-4
	}
	if c.B < 1 || c.S < 1 || st.Step < 0 || st.Probes < 0 {
		t.Fatalf("stagetest: bad Config: B = %d, S = %d, Settings %+v", c.B, c.S, *st)
		return false
	}
	k.scfg = stage.Config{Dims: c.Dims, Options: c.Options}
	k.rng = rand.New(rand.NewPCG(c.Seed, 0x57a6e7e57))
	k.noGrad = set(c.NoGrad)
	k.opt = set(c.Optional)
	desc, err := k.describe()
	if err != nil {
		t.Fatalf("stagetest: Describe(%v): %v", k.scfg, err)
		return false
	}
	k.desc = desc
	k.name = desc.Kind + "/" + desc.Name
	if len(desc.Outputs) == 0 {
		t.Fatalf("stagetest: %s: Describe lists no outputs", k.name)
		return false
	}
	for _, n := range append(slices.Clone(c.NoGrad), c.Optional...) {
		if !slices.Contains(desc.Inputs, n) {
			t.Fatalf("stagetest: %s: Config names input %q, which Describe does not list (inputs %v)", k.name, n, desc.Inputs)
			return false
		}
	}
	if k.params, err = k.makeParams(); err != nil {
		t.Fatalf("stagetest: %s: %v", k.name, err)
		return false
	}
	if k.inputs, k.token, err = k.makeInputs(); err != nil {
		t.Fatalf("stagetest: %s: %v", k.name, err)
		return false
	}
	k.live = c.Live
	if k.live == nil {
		switch l := k.s.(type) {
		case interface{ Live() int }:
			k.live = l.Live
		case interface{ Len() int }:
			k.live = l.Len
		}
	}
	if k.live == nil {
		t.Logf("stagetest: %s: no Config.Live and no Live()/Len() method: live handles are checked by behaviour only", k.name)
	}
	return true
}

func set(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// makeParams draws every declared parameter around its initialiser.
func (k *kit) makeParams() (tensor.Map, error) {
	m := tensor.Map{}
	for _, p := range k.desc.Params {
		if v, ok := k.c.Params[p.Name]; ok {
			if !tensor.SameShape(v.Shape, p.Shape) || len(v.Data) != tensor.Numel(p.Shape) {
				return nil, fmt.Errorf("Config.Params[%q] has shape %v (%d values), Describe declares %v", p.Name, v.Shape, len(v.Data), p.Shape)
			}
			m[p.Name] = v.Clone()
			continue
		}
		x := tensor.New(p.Shape...)
		if x.Shape == nil {
			x.Shape = []int{}
		}
		init := string(p.Init)
		uni := func(lo, hi float64) {
			for i := range x.Data {
				x.Data[i] = float32(lo + (hi-lo)*k.rng.Float64())
			}
		}
		fan := math.Max(1, float64(p.FanIn))
		switch {
		case init == "linear_weight" || init == "linear_bias":
			b := 1 / math.Sqrt(fan)
			uni(-b, b)
		case init == "ones":
			uni(0.8, 1.2)
		case init == "zeros":
			uni(0.1, 0.5) // off zero: a zero gate or scale would hide whole paths
		case strings.HasPrefix(init, "const:"):
			v, err := strconv.ParseFloat(init[6:], 64)
			if err != nil {
				return nil, fmt.Errorf("parameter %q: bad initialiser %q", p.Name, init)
			}
			uni(v-0.2, v+0.2)
		case strings.HasPrefix(init, "normal:"):
			std, err := strconv.ParseFloat(init[7:], 64)
			if err != nil {
				return nil, fmt.Errorf("parameter %q: bad initialiser %q", p.Name, init)
			}
			copy(x.Data, Randn(k.rng, len(x.Data), std))
		case strings.HasPrefix(init, "uniform:"):
			b, err := strconv.ParseFloat(init[8:], 64)
			if err != nil {
				return nil, fmt.Errorf("parameter %q: bad initialiser %q", p.Name, init)
			}
			uni(-b, b)
		default:
			copy(x.Data, Randn(k.rng, len(x.Data), 0.5))
		}
		m[p.Name] = x
	}
	for name := range k.c.Params {
		if _, ok := m[name]; !ok {
			return nil, fmt.Errorf("Config.Params[%q] is not a declared parameter", name)
		}
	}
	return m, nil
}

// makeInputs builds every declared input over the whole sequence and says which
// are per-token (cut into chunks along axis 1).
func (k *kit) makeInputs() (tensor.Map, map[string]bool, error) {
	B, S := k.c.B, k.c.S
	in, tok := tensor.Map{}, map[string]bool{}
	dim := func(port, name string) (int, error) {
		v, ok := k.c.Dims[name]
		if !ok {
			return 0, fmt.Errorf("input %q is [B,…,%s] but Config.Dims has no %s; give the input in Config.Inputs", port, name, name)
		}
		return v, nil
	}
	perToken := map[string]string{stage.PortX: "embedding_dim", stage.PortZ: "latent_dim", stage.PortE: "hidden_size", stage.PortY: "hidden_size"}
	for _, name := range k.desc.Inputs {
		if v, ok := k.c.Inputs[name]; ok {
			in[name] = v.Clone()
			tok[name] = len(v.Shape) >= 2 && v.Shape[0] == B && v.Shape[1] == S
			continue
		}
		switch name {
		case stage.PortX, stage.PortZ, stage.PortE, stage.PortY:
			d, err := dim(name, perToken[name])
			if err != nil {
				return nil, nil, err
			}
			in[name] = tensor.From(Randn(k.rng, B*S*d, 1), B, S, d)
			tok[name] = true
		case stage.PortH, stage.PortC:
			d, err := dim(name, "hidden_size")
			if err != nil {
				return nil, nil, err
			}
			in[name] = tensor.From(Randn(k.rng, B*d, 1), B, d)
		case stage.PortTimestamps:
			ts := make([]float32, B*S)
			for b := 0; b < B; b++ {
				row := ts[b*S : (b+1)*S]
				for i := range row {
					row[i] = k.rng.Float32()
				}
				slices.Sort(row)
			}
			in[name] = tensor.From(ts, B, S)
			tok[name] = true
		case stage.PortTSpan:
			in[name] = tensor.From([]float32{0, 0.25, 0.5, 0.75, 1}, 5)
		default:
			return nil, nil, fmt.Errorf("input %q is not a known port: give its value in Config.Inputs", name)
		}
	}
	for name := range k.c.Inputs {
		if _, ok := in[name]; !ok {
			return nil, nil, fmt.Errorf("Config.Inputs[%q] is not a declared input (inputs %v)", name, k.desc.Inputs)
		}
	}
	return in, tok, nil
}

// errPanic marks an error made from a recovered panic.
type errPanic struct{ v any }

func (e errPanic) Error() string { return fmt.Sprintf("panic: %v", e.v) }

func (k *kit) describe() (d *stage.Description, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errPanic{r}
		}
	}()
	return k.s.Describe(k.ctx, k.scfg)
}

func (k *kit) forward(req *stage.ForwardRequest) (res *stage.ForwardResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, errPanic{r}
		}
	}()
	res, err = k.s.Forward(k.ctx, k.scfg, req)
	if err == nil && res == nil {
		err = fmt.Errorf("Forward returned neither a result nor an error")
	}
	return res, err
}

func (k *kit) backward(h uint64, g tensor.Map) (res *stage.BackwardResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, errPanic{r}
		}
	}()
	res, err = k.s.Backward(k.ctx, h, g)
	if err == nil && res == nil {
		err = fmt.Errorf("Backward returned neither a result nor an error")
	}
	return res, err
}

func (k *kit) release(h uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errPanic{r}
		}
	}()
	return k.s.Release(k.ctx, h)
}

// errorf reports a failure of one check.
func (k *kit) errorf(check, format string, args ...any) {
	k.t.Helper()
	k.t.Errorf("stagetest: %s: %s: %s", k.name, check, fmt.Sprintf(format, args...))
}

// wantError reports a call that should have failed cleanly but did not.
func (k *kit) wantError(check string, err error) {
	k.t.Helper()
	var p errPanic
	switch {
	case err == nil:
		k.errorf(check, "accepted, want an error")
	case asPanic(err, &p):
		k.errorf(check, "panicked (%v), want an error", p.v)
	}
}

func asPanic(err error, p *errPanic) bool {
	e, ok := err.(errPanic)
	if ok {
		*p = e
	}
	return ok
}

// wantLive reports a live-handle count other than n.
func (k *kit) wantLive(check string, n int) {
	k.t.Helper()
	if k.live == nil {
		return
	}
	if got := k.live(); got != n {
		k.errorf(check, "%d live handles, want %d", got, n)
	}
}

// request is a first-chunk request over the whole sequence.
func (k *kit) request(needGrad bool) *stage.ForwardRequest {
	return &stage.ForwardRequest{Params: k.params, Inputs: k.inputs, NeedGrad: needGrad}
}

// cotangents draws a random output gradient of every output's shape, zero where
// the output is not finite (e.g. −Inf scores of unselected positions).
func (k *kit) cotangents(out tensor.Map) tensor.Map {
	g := tensor.Map{}
	for _, name := range out.Names() {
		o := out[name]
		v := tensor.From(Randn(k.rng, len(o.Data), 1), o.Shape...)
		for i, x := range o.Data {
			if isBad(x) {
				v.Data[i] = 0
			}
		}
		g[name] = v
	}
	return g
}

func isBad(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// snapshot deep-copies maps.
func snapshot(ms ...tensor.Map) []tensor.Map {
	out := make([]tensor.Map, len(ms))
	for i, m := range ms {
		out[i] = tensor.Map{}
		for name, v := range m {
			if v != nil {
				out[i][name] = v.Clone()
			}
		}
	}
	return out
}

// unchanged reports every tensor of want that now differs (bitwise) in got.
func (k *kit) unchanged(check string, what []string, want []tensor.Map, got ...tensor.Map) {
	k.t.Helper()
	for i := range want {
		for _, name := range want[i].Names() {
			w, g := want[i][name], got[i][name]
			if g == nil || !tensor.SameShape(w.Shape, g.Shape) || len(g.Data) != len(w.Data) {
				k.errorf(check, "%s %q changed shape or was removed", what[i], name)
				continue
			}
			for j := range w.Data {
				if math.Float32bits(w.Data[j]) != math.Float32bits(g.Data[j]) {
					k.errorf(check, "%s %q was modified at %d (%v → %v)", what[i], name, j, w.Data[j], g.Data[j])
					break
				}
			}
		}
	}
}

// sorted returns names sorted.
func sorted(names []string) []string {
	s := slices.Clone(names)
	sort.Strings(s)
	return s
}
