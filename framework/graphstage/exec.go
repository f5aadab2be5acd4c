package graphstage

import (
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"
	T "gorgonia.org/tensor"
)

// plan runs a graph: the nodes the wanted values depend on, children first,
// each op called directly (Op.Do) on the caller's goroutine.
//
// Gorgonia's LispMachine wraps every value in a dual value (a clone of it)
// and allocates every output afresh; at the quickstart's sizes that copying
// and allocating was most of a graph stage's time. A plan instead gives each
// op, after the first run (firstRun), memory to write its output into
// (UsePreallocDo), shared with values never alive at the same time: no dual
// values, no allocation once warm. Only outputs that share no memory with
// their inputs get it (an op that returns a view, such as Reshape, runs afresh
// every time and so follows its input), and nothing is written in place into
// an input, the TapeMachine's hazard (see compiled.runSteps). Values between
// runs belong to the plan; readers copy them out.
type plan struct {
	steps []step
	vals  []G.Value        // by slot: leaves first, then step outputs
	slot  map[*G.Node]int  // every node the plan holds a value for
	bound map[*G.Node]bool // leaves the caller sets before each run
	args  [][]G.Value      // per step, reused
	want  []int            // slots read after a run
	split int              // steps before it do not depend on the late leaves
	ran   bool             // the first run is done and memory is shared
	first *firstState      // a first run between its phases
}

// step is one op node.
type step struct {
	n    *G.Node
	op   G.Op
	args []int // slots of the children, in order
	out  int   // slot of the result
	// prealloc is the memory the op writes its output into after the first
	// run, when its output is memory of its own; nil for views and for ops
	// that cannot write into given memory.
	prealloc *T.Dense
	reuse    reuse
	fast     fastKind // the kit's kernel for the op (fast.go), or fastNone
	fastArg  [3]int   // its parameters
	shape    T.Shape  // the node's (Node.Shape clones it)
}

// reuse is how a step writes into its preallocated output.
type reuse uint8

const (
	reuseNone      reuse = iota
	reuseOverwrite       // UsePreallocDo overwrites every element
	reuseZeroed          // UsePreallocDo adds into it (sliceIncr): zero first
	reuseUnary           // an elementwise unary op: copy the input in, then in place
)

// reuseOf says how op may reuse its output. Gorgonia's op types are
// unexported, so they are told apart by name; an op the kit does not know
// reuses only after zeroing, which is what its Do starts from.
func reuseOf(op G.Op) reuse {
	switch fmt.Sprintf("%T", op) {
	case "gorgonia.elemBinOp", "gorgonia.linAlgBinOp", "gorgonia.repeatOp":
		return reuseOverwrite
	case "gorgonia.elemUnaryOp":
		if _, ok := op.(G.UnsafeDoer); ok {
			return reuseUnary
		}
		return reuseNone
	}
	if _, ok := op.(G.UsePreallocDoer); ok {
		return reuseZeroed
	}
	return reuseNone
}

// newPlan plans the computation of want in g. Leaves without an op are inputs:
// those in bound are set with plan.set before each run; the others (constants,
// value-bound nodes such as Const) keep the value they hold. The steps that do
// not depend on the late leaves (a subset of bound) come first, the first
// plan.split of them, so that a run can stop there and go on once the late
// leaves are set (a forward pass kept for its backward pass).
func newPlan(g *G.ExprGraph, want, bound, late []*G.Node) (*plan, error) {
	p := &plan{slot: map[*G.Node]int{}, bound: map[*G.Node]bool{}}
	for _, n := range bound {
		p.bound[n] = true
	}
	// depth-first post-order from the wanted nodes: children before parents
	state := map[*G.Node]uint8{} // 1 visiting, 2 done
	type frame struct {
		n    *G.Node
		kids []*G.Node
		i    int
	}
	children := func(n *G.Node) []*G.Node {
		it := g.From(n.ID())
		out := make([]*G.Node, 0, it.Len())
		for it.Next() {
			out = append(out, it.Node().(*G.Node))
		}
		return out
	}
	var order []*G.Node
	for _, w := range want {
		if state[w] == 2 {
			continue
		}
		stack := []frame{{n: w, kids: children(w)}}
		state[w] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.i < len(top.kids) {
				c := top.kids[top.i]
				top.i++
				switch state[c] {
				case 0:
					state[c] = 1
					stack = append(stack, frame{n: c, kids: children(c)})
				case 1:
					return nil, fmt.Errorf("graph has a cycle through %s", c.Name())
				}
				continue
			}
			state[top.n] = 2
			order = append(order, top.n)
			stack = stack[:len(stack)-1]
		}
	}
	// stable partition: what does not depend on a late leaf first (its
	// children do not either, so the order stays topological)
	isLate := map[*G.Node]bool{}
	for _, n := range late {
		isLate[n] = true
	}
	var early, later []*G.Node
	for _, n := range order {
		for _, c := range children(n) {
			if isLate[c] {
				isLate[n] = true
				break
			}
		}
		if isLate[n] {
			later = append(later, n)
		} else {
			early = append(early, n)
		}
	}
	order = append(early, later...)
	for _, n := range order {
		p.slot[n] = len(p.vals)
		kids := children(n)
		if len(kids) == 0 {
			// a leaf: a bound input, a constant or a value-bound node
			var v G.Value
			if !p.bound[n] {
				if v = n.Value(); v == nil {
					return nil, fmt.Errorf("node %s has no op, no value and is not an input", n.Name())
				}
			}
			p.vals = append(p.vals, v)
			continue
		}
		if n.Op() == nil {
			return nil, fmt.Errorf("node %s has children but no op", n.Name())
		}
		st := step{n: n, op: n.Op(), out: len(p.vals), reuse: reuseOf(n.Op()), shape: n.Shape()}
		st.fast, st.fastArg = fastOf(n.Op())
		for _, c := range kids {
			st.args = append(st.args, p.slot[c])
		}
		p.vals = append(p.vals, nil)
		p.steps = append(p.steps, st)
	}
	p.split = len(p.steps)
	for i, st := range p.steps {
		if isLate[st.n] {
			p.split = i
			break
		}
	}
	for _, w := range want {
		p.want = append(p.want, p.slot[w])
	}
	p.args = make([][]G.Value, len(p.steps))
	for i, st := range p.steps {
		p.args[i] = make([]G.Value, len(st.args))
	}
	return p, nil
}

// set gives a bound leaf its value for the next run.
func (p *plan) set(n *G.Node, v G.Value) error {
	i, ok := p.slot[n]
	if !ok {
		return nil // nothing wanted depends on it
	}
	if !p.bound[n] {
		return fmt.Errorf("node %s is not an input", n.Name())
	}
	p.vals[i] = v
	return nil
}

// value is n's value after a run.
func (p *plan) value(n *G.Node) (G.Value, error) {
	i, ok := p.slot[n]
	if !ok || p.vals[i] == nil {
		return nil, fmt.Errorf("node %s has no value", n.Name())
	}
	return p.vals[i], nil
}

// runSteps computes steps [lo, hi): all of them, or one of the two phases of
// a plan split by late leaves (lo = 0, hi = split; then lo = split, hi = all).
// A later phase runs on the values the earlier one left.
func (p *plan) runSteps(lo, hi int) error {
	if !p.ran {
		return p.firstRun(lo, hi)
	}
	for i := lo; i < hi; i++ {
		st := &p.steps[i]
		args, err := p.gather(i)
		if err != nil {
			return err
		}
		v, err := st.do(args)
		if err != nil {
			return fmt.Errorf("%s (%v): %w", st.n.Name(), st.op, err)
		}
		p.vals[st.out] = v
	}
	return nil
}

// gather fills step i's argument list with its children's values.
func (p *plan) gather(i int) ([]G.Value, error) {
	st, args := &p.steps[i], p.args[i]
	for j, s := range st.args {
		if args[j] = p.vals[s]; args[j] == nil {
			return nil, fmt.Errorf("%s: input %d has no value", st.n.Name(), j)
		}
	}
	return args, nil
}

// firstState is what the first run knows between its two phases.
type firstState struct {
	next    int   // the first step not run yet
	last    []int // by slot: the last step reading it
	root    []int // by slot: the slot whose memory it shares (itself if its own)
	until   []int // by root: the last step reading it or a view of it
	members map[int][]int
	buf     map[int]*T.Dense
	free    map[bufKey][]*T.Dense
}

type bufKey struct {
	dt T.Dtype
	n  int
}

// firstRun runs every op (step.do, no memory given) and decides, as it goes, which memory each
// step writes into on later runs: steps whose values are never alive at the
// same time share it. The first run shows which outputs are views of which
// inputs; a value's memory (its "root": the step that wrote it, through any
// views) is free again after the last step that reads it or a view of it, and
// a later step whose output has the same type and size then writes there. A
// step never gets the memory of one of its own arguments, and values read
// after the run (outputs, gradients) are never shared. The first run drops
// each value once it is dead, so its peak is the live set, not the whole
// graph: an unrolled solver keeps hundreds of intermediates (several GB at
// the seed's size), a working set that never stayed in cache. It may come in
// two calls (the phases); a first phase run again starts it over.
func (p *plan) firstRun(lo, hi int) error {
	fs := p.first
	if lo == 0 || fs == nil {
		if lo != 0 {
			return fmt.Errorf("graphstage: phase from step %d before the first", lo)
		}
		fs = p.startFirst()
	} else if lo != fs.next {
		return fmt.Errorf("graphstage: first run resumed at step %d, want %d", lo, fs.next)
	}
	release := func(r, i int) {
		if fs.until[r] > i {
			return
		}
		if b := fs.buf[r]; b != nil {
			k := bufKey{b.Dtype(), b.DataSize()}
			fs.free[k] = append(fs.free[k], b)
			delete(fs.buf, r)
		}
		for _, m := range fs.members[r] {
			p.vals[m] = nil // this run's value, for the GC
		}
		delete(fs.members, r)
	}
	for i := lo; i < hi; i++ {
		st := &p.steps[i]
		args, err := p.gather(i)
		if err != nil {
			p.first = nil
			return err
		}
		v, err := st.do(args)
		if err != nil {
			p.first = nil
			return fmt.Errorf("%s (%v): %w", st.n.Name(), st.op, err)
		}
		p.vals[st.out] = v
		if d, ok := v.(*T.Dense); ok {
			if j := overlaps(d, args); j >= 0 {
				r := fs.root[st.args[j]]
				fs.root[st.out] = r
				fs.until[r] = max(fs.until[r], fs.last[st.out])
			} else if (st.reuse != reuseNone || st.fast != fastNone) && !d.IsView() {
				st.prealloc = d
				k := bufKey{d.Dtype(), d.DataSize()}
				if l := fs.free[k]; len(l) > 0 {
					st.prealloc = T.New(T.Of(d.Dtype()), T.WithShape(d.Shape().Clone()...), T.WithBacking(l[len(l)-1].Data()))
					fs.free[k] = l[:len(l)-1]
				}
				fs.buf[st.out] = st.prealloc
			}
		}
		clear(args) // they would keep this run's values alive
		r := fs.root[st.out]
		fs.members[r] = append(fs.members[r], st.out)
		for _, a := range st.args {
			release(fs.root[a], i)
		}
		release(r, i)
	}
	fs.next = hi
	if hi == len(p.steps) {
		p.ran, p.first = true, nil
	}
	return nil
}

// startFirst (re)starts the first run: no step has memory of its own yet.
func (p *plan) startFirst() *firstState {
	const forever = int(^uint(0) >> 1)
	fs := &firstState{last: make([]int, len(p.vals)), root: make([]int, len(p.vals)),
		members: map[int][]int{}, buf: map[int]*T.Dense{}, free: map[bufKey][]*T.Dense{}}
	for i := range fs.last {
		fs.last[i], fs.root[i] = -1, i
	}
	for i := range p.steps {
		p.steps[i].prealloc = nil
		for _, a := range p.steps[i].args {
			fs.last[a] = i
		}
	}
	for _, w := range p.want {
		fs.last[w] = forever
	}
	fs.until = slices.Clone(fs.last)
	p.first = fs
	return fs
}

// do runs the step's op, into its preallocated output when it has one: with
// the kit's kernel when there is one for the op and its arguments, else with
// gorgonia's.
func (st *step) do(args []G.Value) (G.Value, error) {
	if st.fast != fastNone {
		if v, ok := st.fastDo(args); ok {
			return v, nil
		}
	}
	pre := st.prealloc
	if pre == nil {
		return st.op.Do(args...)
	}
	switch st.reuse {
	case reuseOverwrite:
		return st.op.(G.UsePreallocDoer).UsePreallocDo(pre, args...)
	case reuseZeroed:
		pre.Zero()
		return st.op.(G.UsePreallocDoer).UsePreallocDo(pre, args...)
	case reuseUnary:
		a, ok := args[0].(*T.Dense)
		if !ok || a.IsView() || a.Dtype() != pre.Dtype() || !a.Shape().Eq(pre.Shape()) {
			return st.op.Do(args...)
		}
		if err := T.Copy(pre, a); err != nil {
			return nil, err
		}
		return st.op.(G.UnsafeDoer).UnsafeDo(pre)
	}
	return st.op.Do(args...)
}

// overlaps is the index of the first argument whose memory d's overlaps, or
// −1 when d is memory of its own.
func overlaps(d *T.Dense, args []G.Value) int {
	if d.MemSize() == 0 {
		return -1
	}
	lo, hi := d.Uintptr(), d.Uintptr()+d.MemSize()
	for j, a := range args {
		m, ok := a.(T.Memory)
		if !ok || m.MemSize() == 0 {
			continue
		}
		alo, ahi := m.Uintptr(), m.Uintptr()+m.MemSize()
		if alo < hi && lo < ahi {
			return j
		}
	}
	return -1
}

// sharing counts, over the stage's plans, the steps that write into
// preallocated memory and how many of them write into memory another step
// also uses (tests use it).
func (s *Stage) sharing() (steps, shared int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.graphs {
		for _, c := range []*compiled{e.fwd, e.full} {
			if c == nil {
				continue
			}
			seen := map[uintptr]int{}
			for _, st := range c.plan.steps {
				if st.prealloc != nil {
					steps++
					seen[st.prealloc.Uintptr()]++
				}
			}
			for _, n := range seen {
				shared += n - 1
			}
		}
	}
	return steps, shared
}
