package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Param is one trainable tensor of the model, under its PyTorch state_dict name.
type Param struct {
	Name    string   // full state_dict name
	Kind    string   // stage kind that uses it, or "host"
	Local   string   // the stage's local name
	Aliases []string // further full names of the same tensor in a checkpoint
	Spec    stage.ParamSpec
	Value   *tensor.Tensor
	Grad    *tensor.Tensor // nil for NoGrad parameters

	// rows, when set (TrackRows), says which rows of Grad may be non-zero:
	// the embedding's gradient touches only the rows of the batch's tokens,
	// and clearing or summing its other rows (two thirds of the seed's
	// parameters) was 4% of a training step. Whoever writes into Grad marks
	// the rows (MarkRow).
	rows *rowSet
}

// rowSet is the rows of a gradient written since it was last cleared.
type rowSet struct {
	width   int    // values per row
	touched []bool // by row
	list    []int  // the touched rows, in the order they were first marked
}

// TrackRows makes ZeroGrad, AddGradSumSquares and ScaleGrad visit only the rows
// of p's gradient marked with MarkRow since the last ZeroGrad; rows of width
// values. The gradient must be zero when it is called (as after ZeroGrad).
func (p *Param) TrackRows(width int) {
	if p.Grad == nil || width <= 0 || p.Grad.Len()%width != 0 {
		return
	}
	p.rows = &rowSet{width: width, touched: make([]bool, p.Grad.Len()/width)}
}

// MarkRow notes that row r of p's gradient may be non-zero.
func (p *Param) MarkRow(r int) {
	if rs := p.rows; rs != nil && !rs.touched[r] {
		rs.touched[r] = true
		rs.list = append(rs.list, r)
	}
}

// gradParts calls fn on p's gradient: whole, or row by row over the marked
// rows when rows are tracked (the others are zero).
func (p *Param) gradParts(fn func(g []float32)) {
	rs := p.rows
	if rs == nil {
		fn(p.Grad.Data)
		return
	}
	for _, r := range rs.list {
		fn(p.Grad.Data[r*rs.width : (r+1)*rs.width])
	}
}

// zeroGrad clears p's gradient: the marked rows when rows are tracked.
func (p *Param) zeroGrad() {
	p.gradParts(func(g []float32) { clear(g) })
	if rs := p.rows; rs != nil {
		for _, r := range rs.list {
			rs.touched[r] = false
		}
		rs.list = rs.list[:0]
	}
}

// AddGradSumSquares adds Σ g² over p's gradient to ss in float64, value by
// value in index order; rows not marked are zero and are skipped (adding +0
// changes no sum), so the result is the same as over every value. Summing
// parameters one after another through it gives the one running sum of a
// loop over all of them.
func (p *Param) AddGradSumSquares(ss float64) float64 {
	add := func(g []float32) {
		for _, v := range g {
			ss += float64(v) * float64(v)
		}
	}
	rs := p.rows
	if rs == nil {
		add(p.Grad.Data)
		return ss
	}
	for r, t := range rs.touched {
		if t {
			add(p.Grad.Data[r*rs.width : (r+1)*rs.width])
		}
	}
	return ss
}

// ScaleGrad multiplies p's gradient by c (the rows not marked stay zero).
func (p *Param) ScaleGrad(c float32) {
	p.gradParts(func(g []float32) {
		for i := range g {
			g[i] *= c
		}
	})
}

// Params is the model's single parameter store.
type Params struct {
	List   []*Param          // in declaration order
	byName map[string]*Param // every name and alias
	// version counts changes of the values made through Init, LoadStateDict
	// and Changed; the bf16 head repacks its weight when it moves.
	version uint64
}

// Changed records that parameter values were written other than through Init,
// LoadStateDict or an optimiser step after a training Run (which the model
// assumes after every Run with Train): copies derived from them, such as the
// bf16 head's packed weight, are rebuilt before the next Run reads them.
func (ps *Params) Changed() { ps.version++ }

func (ps *Params) add(kind, prefix string, spec stage.ParamSpec) error {
	if ps.byName == nil {
		ps.byName = map[string]*Param{}
	}
	n := 1
	for _, d := range spec.Shape {
		if d < 0 || (d > 0 && n > (1<<31)/d) {
			return fmt.Errorf("stage %s declares parameter %q with shape %v: dimensions must be ≥ 0 and the size below 2^31", kind, spec.Name, spec.Shape)
		}
		n *= d
	}
	p := &Param{Name: prefix + spec.Name, Kind: kind, Local: spec.Name, Spec: spec,
		Value: tensor.New(spec.Shape...)}
	if !spec.NoGrad {
		p.Grad = tensor.New(spec.Shape...)
	}
	for _, a := range spec.Aliases {
		p.Aliases = append(p.Aliases, prefix+a)
	}
	for _, n := range append([]string{p.Name}, p.Aliases...) {
		if _, dup := ps.byName[n]; dup {
			return fmt.Errorf("parameter %q declared twice (stage %s)", n, kind)
		}
		ps.byName[n] = p
	}
	ps.List = append(ps.List, p)
	return nil
}

// Get returns the parameter with a full name or alias, or nil.
func (ps *Params) Get(name string) *Param { return ps.byName[name] }

// Count is the number of distinct trainable scalars.
func (ps *Params) Count() int {
	n := 0
	for _, p := range ps.List {
		n += p.Value.Len()
	}
	return n
}

// ZeroGrad clears every gradient (of a parameter with TrackRows, the rows
// marked since the last ZeroGrad).
func (ps *Params) ZeroGrad() {
	for _, p := range ps.List {
		if p.Grad != nil {
			p.zeroGrad()
		}
	}
}

// Init fills every parameter by its Init rule from a seeded generator, in
// declaration order, so a seed gives the same model every time.
func (ps *Params) Init(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	ps.Changed()
	for _, p := range ps.List {
		if err := initTensor(p.Value.Data, p.Spec, rng); err != nil {
			return fmt.Errorf("parameter %s: %w", p.Name, err)
		}
	}
	return nil
}

func initTensor(d []float32, s stage.ParamSpec, rng *rand.Rand) error {
	rule, arg, _ := strings.Cut(string(s.Init), ":")
	num := func() (float64, error) { return strconv.ParseFloat(arg, 64) }
	switch rule {
	case "", "zeros":
		clear(d)
	case "ones":
		for i := range d {
			d[i] = 1
		}
	case "const":
		v, err := num()
		if err != nil {
			return fmt.Errorf("init %q: %w", s.Init, err)
		}
		for i := range d {
			d[i] = float32(v)
		}
	case "normal":
		std, err := num()
		if err != nil {
			return fmt.Errorf("init %q: %w", s.Init, err)
		}
		for i := range d {
			d[i] = float32(rng.NormFloat64() * std)
		}
	case "uniform":
		b, err := num()
		if err != nil {
			return fmt.Errorf("init %q: %w", s.Init, err)
		}
		for i := range d {
			d[i] = float32((2*rng.Float64() - 1) * b)
		}
	case "linear_weight", "linear_bias":
		// PyTorch nn.Linear: kaiming_uniform(a=√5) for the weight and
		// U(±1/√fan_in) for the bias both give the bound 1/√fan_in.
		fan := s.FanIn
		if fan <= 0 && len(s.Shape) == 2 {
			fan = s.Shape[1]
		}
		if fan <= 0 {
			return fmt.Errorf("init %q needs FanIn", s.Init)
		}
		b := 1 / math.Sqrt(float64(fan))
		for i := range d {
			d[i] = float32((2*rng.Float64() - 1) * b)
		}
	case "embedding":
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
	default:
		return fmt.Errorf("unknown init rule %q", s.Init)
	}
	return nil
}

// LoadStateDict sets every parameter from tensors named as PyTorch's state_dict.
// Every parameter must be present under its name or an alias; where several
// names of one shared tensor are present they must hold the same values. Names
// the model does not know are an error, so a checkpoint of another configuration
// is refused instead of half-loaded.
func (ps *Params) LoadStateDict(sd map[string]*tensor.Tensor) error {
	ps.Changed() // even a refused checkpoint may have been half copied
	var unknown []string
	for n := range sd {
		if ps.byName[n] == nil {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("checkpoint has %d tensors this model does not have, e.g. %q (different num_flows, share_params or dimensions?)", len(unknown), unknown[0])
	}
	for _, p := range ps.List {
		var src *tensor.Tensor
		srcName := ""
		for _, n := range append([]string{p.Name}, p.Aliases...) {
			t, ok := sd[n]
			if !ok {
				continue
			}
			if !tensor.SameShape(t.Shape, p.Value.Shape) {
				return fmt.Errorf("tensor %q has shape %v, the model needs %v", n, t.Shape, p.Value.Shape)
			}
			if src == nil {
				src, srcName = t, n
				continue
			}
			for i := range t.Data {
				if t.Data[i] != src.Data[i] {
					return fmt.Errorf("tensors %q and %q are one shared parameter but hold different values", srcName, n)
				}
			}
		}
		if src == nil {
			return fmt.Errorf("checkpoint lacks parameter %q", p.Name)
		}
		copy(p.Value.Data, src.Data)
	}
	return nil
}

// StateDict returns every parameter under every name (shared tensors repeated),
// as PyTorch's state_dict lists them. The tensors alias the store.
func (ps *Params) StateDict() map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	for _, p := range ps.List {
		out[p.Name] = p.Value
		for _, a := range p.Aliases {
			out[a] = p.Value
		}
	}
	return out
}

// local returns the parameters of one stage by local name.
func (ps *Params) local(kind string) tensor.Map {
	m := tensor.Map{}
	for _, p := range ps.List {
		if p.Kind == kind {
			m[p.Local] = p.Value
		}
	}
	return m
}

// addGrads adds a stage's parameter gradients (by local name) into the store.
func (ps *Params) addGrads(kind, prefix string, g tensor.Map) error {
	for local, t := range g {
		p := ps.byName[prefix+local]
		if p == nil || p.Kind != kind {
			return fmt.Errorf("stage %s returned a gradient for unknown parameter %q", kind, local)
		}
		if p.Grad == nil {
			return fmt.Errorf("stage %s returned a gradient for %q, declared NoGrad", kind, local)
		}
		if len(t.Data) != p.Grad.Len() {
			return fmt.Errorf("stage %s: gradient for %q has %d values, want %d", kind, local, len(t.Data), p.Grad.Len())
		}
		for i, v := range t.Data {
			p.Grad.Data[i] += v
		}
	}
	return nil
}
