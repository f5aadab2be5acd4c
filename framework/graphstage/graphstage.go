package graphstage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Symbolic sizes in Description.Shapes: the batch size and the chunk's number
// of tokens, read from the request (consistent across inputs), and Any, any
// size ≥ 1 (e.g. the number of integration times).
const (
	B   = -1
	S   = -2
	Any = -3
)

// Nodes maps tensor names to graph nodes.
type Nodes map[string]*G.Node

// Description is what a graph component declares: the stage's description
// plus the shape of every input, written with B and S for the batch size and
// the chunk length, and the inputs it does not differentiate by design.
type Description struct {
	stage.Description
	Shapes map[string][]int // by input name
	NoGrad []string         // inputs that receive no gradient (e.g. timestamps)
	// StateGrads maps an input to the carried state that replaces it on a
	// chunk after the first (a recurrence's initial "h"): there the input's
	// gradient is the gradient of that state, dL/d of the chunk's initial
	// state, as the fused liquid stages return it, so that a host can chain
	// the chunks' backward passes (full backpropagation through time).
	// Without it the input gets a zero gradient on later chunks.
	StateGrads map[string]string
	// PerToken lists inputs of shape [B,S,...] that Build receives one token
	// at a time: in[TokenKey(name, t)] of shape [B,...] for t < S, and no
	// whole-input node. A recurrence that slices its input per token
	// (gorgonia.Slice) pays for it in the backward pass: every slice's
	// gradient is a whole [B,S,...] tensor, zero but for its token, and
	// gorgonia adds the S of them, O(S²) work; the kit instead copies the
	// tokens apart on the way in and the S gradients together on the way out.
	PerToken []string
}

// TokenKey is the key of token t of a PerToken input in Build's input nodes.
func TokenKey(name string, t int) string { return name + "/" + strconv.Itoa(t) }

// Spec is a graph component: Describe and Build are all an author writes.
type Spec struct {
	// Describe returns the component's description for cfg, or an error
	// naming the bad dimension or option.
	Describe func(cfg stage.Config) (*Description, error)
	// Build adds the forward pass to g: in holds every declared input, params
	// every declared parameter, state the carried state, or nil on a first
	// chunk (the component then starts from zeros or from an input). It returns
	// every declared output and, when the component declares state, the next
	// state under the state names. Output and state nodes must be float32.
	Build func(g *G.ExprGraph, cfg stage.Config, in, params, state Nodes) (out, next Nodes, err error)
	// Check, when set, validates the values of a request's inputs (after the
	// kit checked their shapes) before the graph runs: what a graph cannot
	// refuse, such as integration times that do not increase.
	Check func(cfg stage.Config, in tensor.Map) error
}

// MaxGraphs bounds the compiled graphs a stage keeps (oldest dropped first).
const MaxGraphs = 16

// Stage runs a Spec as a stage.Stage. Use New.
type Stage struct {
	spec    Spec
	handles stage.Handles

	mu     sync.Mutex
	graphs map[string]*entry
	order  []string // keys, oldest first

	kept atomic.Int64 // backward passes that found their forward pass kept (tests)
}

var _ stage.Stage = (*Stage)(nil)

// New returns the stage of spec.
func New(spec Spec) *Stage { return &Stage{spec: spec, graphs: map[string]*entry{}} }

// Live is the number of live handles.
func (s *Stage) Live() int { return s.handles.Len() }

// Graphs is the number of compiled graphs cached (tests use it).
func (s *Stage) Graphs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.graphs {
		e.mu.Lock()
		if e.fwd != nil {
			n++
		}
		if e.full != nil {
			n++
		}
		e.mu.Unlock()
	}
	return n
}

// Describe implements stage.Stage.
func (s *Stage) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	d, err := s.describe(cfg)
	if err != nil {
		return nil, err
	}
	out := d.Description
	return &out, nil
}

func (s *Stage) describe(cfg stage.Config) (d *Description, err error) {
	if s.spec.Describe == nil || s.spec.Build == nil {
		return nil, errors.New("graphstage: Spec needs Describe and Build")
	}
	defer recoverTo(&err, "Describe")
	d, err = s.spec.Describe(cfg)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, errors.New("graphstage: Describe returned no description")
	}
	for _, in := range d.Inputs {
		if _, ok := d.Shapes[in]; !ok {
			return nil, fmt.Errorf("graphstage: %s: input %q has no shape in Description.Shapes", d.Name, in)
		}
	}
	for _, in := range d.PerToken {
		if sh := d.Shapes[in]; !slices.Contains(d.Inputs, in) || len(sh) < 2 || sh[0] != B || sh[1] != S {
			return nil, fmt.Errorf("graphstage: %s: PerToken input %q must be an input of shape [B,S,...]", d.Name, in)
		}
		if _, ok := d.StateGrads[in]; ok {
			return nil, fmt.Errorf("graphstage: %s: input %q cannot be both PerToken and in StateGrads", d.Name, in)
		}
	}
	return d, nil
}

func recoverTo(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("graphstage: %s panicked: %v", what, r)
	}
}

// request is a checked forward request.
type request struct {
	d      *Description
	in     tensor.Map // by input name
	params tensor.Map
	state  tensor.Map // nil on a first chunk
	key    string
}

func (s *Stage) check(cfg stage.Config, req *stage.ForwardRequest) (*request, error) {
	if req == nil {
		return nil, errors.New("graphstage: nil request")
	}
	d, err := s.describe(cfg)
	if err != nil {
		return nil, err
	}
	name := d.Name
	r := &request{d: d, in: tensor.Map{}, params: tensor.Map{}}
	b, sq := -1, -1
	var key strings.Builder
	key.WriteString(cfg.String())
	for _, in := range d.Inputs {
		pat := d.Shapes[in]
		v := req.Inputs[in]
		if v == nil {
			return nil, fmt.Errorf("%s: input %q is missing", name, in)
		}
		if len(v.Shape) != len(pat) || len(v.Data) != tensor.Numel(v.Shape) {
			return nil, fmt.Errorf("%s: input %q has shape %v (%d values), want %s", name, in, v.Shape, len(v.Data), patString(pat))
		}
		for i, p := range pat {
			n := v.Shape[i]
			switch p {
			case Any:
				if n < 1 {
					return nil, fmt.Errorf("%s: input %q has shape %v, want %s", name, in, v.Shape, patString(pat))
				}
			case B, S:
				at := &b
				if p == S {
					at = &sq
				}
				if n < 1 || (*at >= 0 && *at != n) {
					return nil, fmt.Errorf("%s: input %q has shape %v, want %s with the batch and chunk length of the other inputs", name, in, v.Shape, patString(pat))
				}
				*at = n
			default:
				if n != p {
					return nil, fmt.Errorf("%s: input %q has shape %v, want %s", name, in, v.Shape, patString(pat))
				}
			}
		}
		r.in[in] = v
		fmt.Fprintf(&key, "|%s%v", in, v.Shape)
	}
	for _, p := range d.Params {
		v := req.Params[p.Name]
		if v == nil {
			return nil, fmt.Errorf("%s: parameter %q is missing", name, p.Name)
		}
		if !tensor.SameShape(v.Shape, p.Shape) || len(v.Data) != tensor.Numel(p.Shape) {
			return nil, fmt.Errorf("%s: parameter %q has shape %v (%d values), want %v", name, p.Name, v.Shape, len(v.Data), p.Shape)
		}
		r.params[p.Name] = v
	}
	if len(d.State) > 0 && len(req.State) > 0 {
		if b < 0 {
			return nil, fmt.Errorf("%s: carried state needs a batch size, but no input has one", name)
		}
		r.state = tensor.Map{}
		for _, st := range d.State {
			v := req.State[st.Name]
			want := stateShape(st, b)
			if v == nil {
				return nil, fmt.Errorf("%s: carried state %q is missing (carry all of %v or none)", name, st.Name, stateNames(d))
			}
			if !fits(v.Shape, want) || len(v.Data) != tensor.Numel(v.Shape) {
				return nil, fmt.Errorf("%s: carried state %q has shape %v (%d values), want %v", name, st.Name, v.Shape, len(v.Data), want)
			}
			r.state[st.Name] = v
			fmt.Fprintf(&key, "|state.%s%v", st.Name, v.Shape)
		}
	}
	r.key = key.String()
	if s.spec.Check != nil {
		if err := s.spec.Check(cfg, r.in); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// stateShape is a state's declared shape with the batch size b for a
// leading −1; a −1 further on is a size that varies from chunk to chunk (a
// cache that grows with the sequence) and stays −1.
func stateShape(st stage.StateSpec, b int) []int {
	out := slices.Clone(st.Shape)
	if len(out) > 0 && out[0] == -1 {
		out[0] = b
	}
	return out
}

// fits reports whether shape sh matches want, where −1 in want is any size.
func fits(sh, want []int) bool {
	if len(sh) != len(want) {
		return false
	}
	for i, w := range want {
		if sh[i] != w && (w != -1 || sh[i] < 0) {
			return false
		}
	}
	return true
}

func stateNames(d *Description) []string {
	var out []string
	for _, st := range d.State {
		out = append(out, st.Name)
	}
	return out
}

func patString(p []int) string {
	parts := make([]string, len(p))
	for i, v := range p {
		switch v {
		case B:
			parts[i] = "B"
		case S:
			parts[i] = "S"
		case Any:
			parts[i] = "*"
		default:
			parts[i] = strconv.Itoa(v)
		}
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// entry holds the graphs of one configuration and input shape.
type entry struct {
	mu   sync.Mutex
	fwd  *compiled // forward only
	full *compiled // forward and symbolic gradients
}

// compiled is one graph with its machine.
type compiled struct {
	g    *G.ExprGraph
	plan *plan
	// pinned is the handle whose forward pass the plan's first phase holds
	// (full graphs only; 0: none), so its Backward runs the second phase only.
	pinned              uint64
	in, params, state   Nodes
	out, next           Nodes
	dOut                Nodes                  // output-gradient inputs (full only)
	tokens              map[string][][]float32 // PerToken input → its tokens' data, bound to in[TokenKey(name, t)]
	inGrads, paramGrads Nodes                  // by name; absent when the cost does not depend on it
}

func (s *Stage) entry(key string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.graphs[key]; ok {
		return e
	}
	if len(s.order) >= MaxGraphs {
		delete(s.graphs, s.order[0])
		s.order = s.order[1:]
	}
	e := &entry{}
	s.graphs[key] = e
	s.order = append(s.order, key)
	return e
}

// newNode makes an input node of shape sh.
func newNode(g *G.ExprGraph, name string, sh []int) *G.Node {
	if len(sh) == 0 {
		return G.NewScalar(g, T.Float32, G.WithName(name))
	}
	return G.NewTensor(g, T.Float32, len(sh), G.WithShape(sh...), G.WithName(name))
}

// build compiles the graph of r, with gradients when grad is set.
func (s *Stage) build(cfg stage.Config, r *request, grad bool) (c *compiled, err error) {
	defer recoverTo(&err, r.d.Name+": building the graph")
	d := r.d
	g := G.NewGraph()
	c = &compiled{g: g, in: Nodes{}, params: Nodes{}, tokens: map[string][][]float32{}}
	for _, name := range d.Inputs {
		sh := r.in[name].Shape
		if !slices.Contains(d.PerToken, name) {
			c.in[name] = newNode(g, "in."+name, sh)
			continue
		}
		tok := append([]int{sh[0]}, sh[2:]...)
		c.tokens[name] = make([][]float32, sh[1])
		for t := range sh[1] {
			c.tokens[name][t] = make([]float32, tensor.Numel(tok))
			c.in[TokenKey(name, t)] = newNode(g, "in."+TokenKey(name, t), tok)
		}
	}
	for _, p := range d.Params {
		c.params[p.Name] = newNode(g, "param."+p.Name, p.Shape)
	}
	if r.state != nil {
		c.state = Nodes{}
		for _, st := range d.State {
			c.state[st.Name] = newNode(g, "state."+st.Name, r.state[st.Name].Shape)
		}
	}
	c.out, c.next, err = s.spec.Build(g, cfg, c.in, c.params, c.state)
	if err != nil {
		return nil, err
	}
	for _, o := range d.Outputs {
		if c.out[o] == nil {
			return nil, fmt.Errorf("%s: Build returned no output %q", d.Name, o)
		}
	}
	for name := range c.out {
		if !slices.Contains(d.Outputs, name) {
			return nil, fmt.Errorf("%s: Build returned output %q, which Describe does not list", d.Name, name)
		}
	}
	b := batchOf(r)
	for _, st := range d.State {
		n := c.next[st.Name]
		if n == nil {
			return nil, fmt.Errorf("%s: Build returned no next state %q", d.Name, st.Name)
		}
		if want := stateShape(st, b); !fits(shapeOf(n), want) {
			return nil, fmt.Errorf("%s: Build's next state %q has shape %v, want %v", d.Name, st.Name, shapeOf(n), want)
		}
	}
	// the outputs and next state are read after a forward pass, the
	// gradients after a backward pass (whose forward part may be the forward
	// pass, kept: see Stage.Forward)
	want := append(sortedNodes(c.out), sortedNodes(c.next)...)
	if grad {
		if err := c.addGrads(d); err != nil {
			return nil, fmt.Errorf("%s: %w", d.Name, err)
		}
		want = append(append(want, sortedNodes(c.inGrads)...), sortedNodes(c.paramGrads)...)
	}
	var bound []*G.Node
	for _, ns := range []Nodes{c.in, c.params, c.state, c.dOut} {
		bound = append(bound, sortedNodes(ns)...)
	}
	if c.plan, err = newPlan(g, want, bound, sortedNodes(c.dOut)); err != nil {
		return nil, fmt.Errorf("%s: %w", d.Name, err)
	}
	return c, nil
}

// sortedNodes lists ns's nodes by name, so plans do not depend on map order.
func sortedNodes(ns Nodes) []*G.Node {
	names := make([]string, 0, len(ns))
	for k := range ns {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]*G.Node, len(names))
	for i, k := range names {
		out[i] = ns[k]
	}
	return out
}

func batchOf(r *request) int {
	for _, in := range r.d.Inputs {
		for i, p := range r.d.Shapes[in] {
			if p == B {
				return r.in[in].Shape[i]
			}
		}
	}
	return -1
}

func shapeOf(n *G.Node) []int {
	if n.IsScalar() {
		return []int{}
	}
	return []int(n.Shape())
}

// addGrads adds the output-gradient inputs, the cost Σ_o Σ out_o ⊙ dOut_o and
// its symbolic gradient with respect to every differentiable input and
// parameter.
func (c *compiled) addGrads(d *Description) error {
	c.dOut = Nodes{}
	var cost *G.Node
	for _, o := range d.Outputs {
		out := c.out[o]
		dn := newNode(c.g, "grad."+o, shapeOf(out))
		c.dOut[o] = dn
		var term *G.Node
		var err error
		if out.IsScalar() {
			term, err = G.Mul(out, dn)
		} else {
			var prod *G.Node
			if prod, err = G.HadamardProd(out, dn); err == nil {
				term, err = G.Sum(prod)
			}
		}
		if err != nil {
			return fmt.Errorf("cost term of output %q: %w", o, err)
		}
		if cost == nil {
			cost = term
		} else if cost, err = G.Add(cost, term); err != nil {
			return fmt.Errorf("cost: %w", err)
		}
	}
	var names []string
	var wrt G.Nodes
	for _, in := range d.Inputs {
		if slices.Contains(d.NoGrad, in) {
			continue
		}
		if toks := c.tokens[in]; toks != nil {
			for t := range toks {
				k := TokenKey(in, t)
				names, wrt = append(names, "in."+k), append(wrt, c.in[k])
			}
			continue
		}
		n := c.in[in]
		if st, ok := d.StateGrads[in]; ok && c.state != nil {
			if c.state[st] == nil {
				return fmt.Errorf("StateGrads: input %q: no carried state %q", in, st)
			}
			n = c.state[st]
		}
		names, wrt = append(names, "in."+in), append(wrt, n)
	}
	for _, p := range d.Params {
		if !p.NoGrad {
			names, wrt = append(names, "param."+p.Name), append(wrt, c.params[p.Name])
		}
	}
	// Gorgonia refuses to differentiate with respect to nodes the cost does not
	// depend on; those get zero gradients.
	for len(wrt) > 0 {
		grads, err := G.Grad(cost, wrt...)
		if err == nil {
			c.inGrads, c.paramGrads = Nodes{}, Nodes{}
			for i, n := range names {
				if rest, ok := strings.CutPrefix(n, "in."); ok {
					c.inGrads[rest] = grads[i]
				} else {
					c.paramGrads[strings.TrimPrefix(n, "param.")] = grads[i]
				}
			}
			return nil
		}
		var sd G.SymDiffError
		if !errors.As(err, &sd) || len(sd.Nodes()) == 0 {
			return fmt.Errorf("symbolic gradient: %w", err)
		}
		drop := map[*G.Node]bool{}
		for _, n := range sd.Nodes() {
			drop[n] = true
		}
		k := 0
		for i, n := range wrt {
			if !drop[n] {
				wrt[k], names[k] = n, names[i]
				k++
			}
		}
		if k == len(wrt) {
			return fmt.Errorf("symbolic gradient: %w", err)
		}
		wrt, names = wrt[:k], names[:k]
	}
	return nil
}

// value wraps the host's data as a gorgonia value (no copy).
func value(n *G.Node, v *tensor.Tensor) G.Value {
	if n.IsScalar() {
		return G.NewF32(v.Data[0])
	}
	return T.New(T.WithShape(v.Shape...), T.WithBacking(v.Data))
}

// bind lets input n take the host's data (no copy) for the next run.
func (c *compiled) bind(n *G.Node, v *tensor.Tensor) error {
	return c.plan.set(n, value(n, v))
}

func (c *compiled) bindAll(r *request, params tensor.Map) error {
	for name, n := range c.in {
		if v := r.in[name]; v != nil { // not a token of a PerToken input
			if err := c.bind(n, v); err != nil {
				return fmt.Errorf("binding input %q: %w", name, err)
			}
		}
	}
	for name, toks := range c.tokens {
		v := r.in[name]
		b, S := v.Shape[0], v.Shape[1]
		R := len(v.Data) / (b * S)
		tok := append([]int{b}, v.Shape[2:]...)
		for t, buf := range toks {
			for i := range b {
				copy(buf[i*R:(i+1)*R], v.Data[(i*S+t)*R:])
			}
			if err := c.bind(c.in[TokenKey(name, t)], &tensor.Tensor{Shape: tok, Data: buf}); err != nil {
				return fmt.Errorf("binding token %d of input %q: %w", t, name, err)
			}
		}
	}
	for name, n := range c.params {
		if err := c.bind(n, params[name]); err != nil {
			return fmt.Errorf("binding parameter %q: %w", name, err)
		}
	}
	for name, n := range c.state {
		if err := c.bind(n, r.state[name]); err != nil {
			return fmt.Errorf("binding state %q: %w", name, err)
		}
	}
	return nil
}

// runSteps runs steps [lo, hi) of the plan (see plan.runSteps) and hands the
// results to read. The caller holds the entry's lock.
//
// The graph runs on the kit's own plan (exec.go), ops called in turn on this
// goroutine, so a panic inside an op comes back as an error. Not gorgonia's
// TapeMachine: it reuses registers and writes in place into values it
// believes dead, and through a Reshape view such a write silently overwrites a
// live tensor (TestViews is such a graph). Not its LispMachine either, which
// the kit used first: it clones every value into a dual value and allocates
// every output afresh, which was most of a small graph's time.
func (c *compiled) runSteps(lo, hi int, read func() error) (err error) {
	defer recoverTo(&err, "running the graph")
	if err := c.plan.runSteps(lo, hi); err != nil {
		return err
	}
	return read()
}

// read copies a node's value into a new tensor of the node's shape.
func (c *compiled) read(n *G.Node) (*tensor.Tensor, error) {
	sh := shapeOf(n)
	out := tensor.New(sh...)
	if out.Shape == nil {
		out.Shape = []int{}
	}
	val, err := c.plan.value(n)
	if err != nil {
		return nil, err
	}
	switch v := val.(type) {
	case *G.F32:
		out.Data[0] = float32(*v)
		return out, nil
	case *T.Dense:
		if v.IsMaterializable() {
			v = v.Materialize().(*T.Dense)
		}
		switch data := v.Data().(type) {
		case []float32:
			if len(data) != len(out.Data) {
				return nil, fmt.Errorf("node %s holds %d values, want %d for shape %v", n.Name(), len(data), len(out.Data), sh)
			}
			copy(out.Data, data)
			return out, nil
		case float32:
			out.Data[0] = data
			return out, nil
		}
	}
	return nil, fmt.Errorf("node %s holds %T (%v), want float32", n.Name(), val, n.Dtype())
}

func (c *compiled) readAll(ns Nodes) (tensor.Map, error) {
	m := tensor.Map{}
	for name, n := range ns {
		v, err := c.read(n)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", name, err)
		}
		m[name] = v
	}
	return m, nil
}

// saved is what a handle keeps: the checked request (inputs by reference,
// parameters and state copied).
type saved struct {
	cfg stage.Config
	r   *request
	out map[string][]int // output shapes
}

// Forward implements stage.Stage.
func (s *Stage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	r, err := s.check(cfg, req)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := s.entry(r.key)
	e.mu.Lock()
	defer e.mu.Unlock()
	// With NeedGrad the forward pass is the first phase of the gradient
	// graph, whose values stay in its plan for this handle's Backward (until
	// another forward pass with NeedGrad, or a backward pass, of the same
	// shapes takes the plan: that handle's Backward then recomputes). It runs
	// on copies of the parameters and state, the ones the handle keeps.
	c, keep, hi := e.fwd, r, 0
	if req.NeedGrad {
		if e.full == nil {
			if e.full, err = s.build(cfg, r, true); err != nil {
				return nil, err
			}
		}
		c = e.full
		k := *r
		k.params, k.state = clone(r.params), clone(r.state)
		keep, hi, c.pinned = &k, c.plan.split, 0
	} else if c == nil {
		if e.fwd, err = s.build(cfg, r, false); err != nil {
			return nil, err
		}
		c = e.fwd
	}
	if hi == 0 {
		hi = len(c.plan.steps)
	}
	if err := c.bindAll(keep, keep.params); err != nil {
		return nil, fmt.Errorf("%s: %w", r.d.Name, err)
	}
	res := &stage.ForwardResult{}
	err = c.runSteps(0, hi, func() (err error) {
		if res.Outputs, err = c.readAll(c.out); err != nil {
			return fmt.Errorf("output %w", err)
		}
		if len(r.d.State) > 0 {
			if res.State, err = c.readAll(c.next); err != nil {
				return fmt.Errorf("next state %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.d.Name, err)
	}
	if req.NeedGrad {
		sv := &saved{cfg: cfg, r: keep, out: map[string][]int{}}
		for name, v := range res.Outputs {
			sv.out[name] = v.Shape
		}
		res.Handle = s.handles.Put(sv)
		c.pinned = res.Handle
	}
	return res, nil
}

func clone(m tensor.Map) tensor.Map {
	if m == nil {
		return nil
	}
	out := tensor.Map{}
	for k, v := range m {
		out[k] = v.Clone()
	}
	return out
}

// Backward implements stage.Stage: it runs the graph with its symbolic
// gradients — only the part after the forward pass when the handle's forward
// pass is still kept in it, else all of it — and consumes the handle.
func (s *Stage) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil, fmt.Errorf("graphstage: %w", err)
	}
	sv := v.(*saved)
	r := sv.r
	name := r.d.Name
	names := make([]string, 0, len(outGrads))
	for k := range outGrads {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, o := range names {
		want, ok := sv.out[o]
		if !ok {
			return nil, fmt.Errorf("%s: gradient of %q, which is not an output (outputs %v)", name, o, r.d.Outputs)
		}
		g := outGrads[o]
		if g == nil {
			continue
		}
		if !tensor.SameShape(g.Shape, want) || len(g.Data) != tensor.Numel(want) {
			return nil, fmt.Errorf("%s: gradient of output %q has shape %v (%d values), want %v", name, o, g.Shape, len(g.Data), want)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e := s.entry(r.key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.full == nil {
		if e.full, err = s.build(sv.cfg, r, true); err != nil {
			return nil, err
		}
	}
	c := e.full
	lo := c.plan.split // this handle's forward pass is in the plan
	if c.pinned == handle {
		s.kept.Add(1)
	} else {
		lo = 0
		if err := c.bindAll(r, r.params); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	c.pinned = 0 // the second phase overwrites the first's values
	for o, n := range c.dOut {
		g := outGrads[o]
		if g == nil {
			g = tensor.New(sv.out[o]...)
			if g.Shape == nil {
				g.Shape = []int{}
			}
		}
		if err := c.bind(n, g); err != nil {
			return nil, fmt.Errorf("%s: binding the gradient of %q: %w", name, o, err)
		}
	}
	res := &stage.BackwardResult{InputGrads: tensor.Map{}, ParamGrads: tensor.Map{}}
	err = c.runSteps(lo, len(c.plan.steps), func() (err error) {
		for in, n := range c.inGrads {
			if res.InputGrads[in], err = c.read(n); err != nil {
				return fmt.Errorf("gradient of input %q: %w", in, err)
			}
		}
		for in, toks := range c.tokens { // the tokens' gradients side by side
			if slices.Contains(r.d.NoGrad, in) {
				continue
			}
			sh := r.in[in].Shape
			g := tensor.New(sh...)
			b, S := sh[0], sh[1]
			R := len(g.Data) / (b * S)
			for t := range toks {
				k := TokenKey(in, t)
				gt := res.InputGrads[k]
				delete(res.InputGrads, k)
				if gt == nil {
					continue
				}
				for i := range b {
					copy(g.Data[(i*S+t)*R:(i*S+t+1)*R], gt.Data[i*R:(i+1)*R])
				}
			}
			res.InputGrads[in] = g
		}
		for p, n := range c.paramGrads {
			if res.ParamGrads[p], err = c.read(n); err != nil {
				return fmt.Errorf("gradient of parameter %q: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, in := range r.d.Inputs {
		if !slices.Contains(r.d.NoGrad, in) && res.InputGrads[in] == nil {
			res.InputGrads[in] = tensor.New(r.in[in].Shape...)
		}
	}
	for _, p := range r.d.Params {
		if p.NoGrad || res.ParamGrads[p.Name] != nil {
			continue
		}
		{
			z := tensor.New(p.Shape...)
			if z.Shape == nil {
				z.Shape = []int{}
			}
			res.ParamGrads[p.Name] = z
		}
	}
	return res, nil
}

// Release implements stage.Stage.
func (s *Stage) Release(ctx context.Context, handle uint64) error {
	v, err := s.handles.Take(handle)
	if err != nil {
		return nil // unknown handles are not an error
	}
	s.mu.Lock()
	e := s.graphs[v.(*saved).r.key]
	s.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		if e.full != nil && e.full.pinned == handle {
			e.full.pinned = 0
		}
		e.mu.Unlock()
	}
	return nil
}
