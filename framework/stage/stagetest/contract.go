package stagetest

import (
	"fmt"
	"regexp"
	"slices"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// checkForward: a forward pass without gradients keeps no handle, returns the
// declared outputs and state, and leaves its inputs alone.
func (k *kit) checkForward() {
	k.t.Helper()
	const check = "forward"
	if _, err := k.forward(nil); true {
		k.wantError("Forward(nil request)", err)
	}
	before := snapshot(k.inputs, k.params)
	res, err := k.forward(k.request(false))
	if err != nil {
		k.errorf(check, "Forward: %v", err)
		return
	}
	k.unchanged(check+" (after Forward)", []string{"input", "parameter"}, before, k.inputs, k.params)
	if res.Handle != 0 {
		k.errorf(check, "Forward without NeedGrad returned handle %d, want 0", res.Handle)
		_ = k.release(res.Handle)
	}
	k.wantLive(check+" without NeedGrad", 0)
	if got, want := sorted(res.Outputs.Names()), sorted(k.desc.Outputs); !slices.Equal(got, want) {
		k.errorf(check, "outputs %v, Describe declares %v", got, want)
	}
	for _, name := range res.Outputs.Names() {
		if o := res.Outputs[name]; o == nil || len(o.Data) != tensor.Numel(o.Shape) {
			k.errorf(check, "output %q is nil or its data does not fit its shape", name)
		}
	}
	k.checkState(check, res.State)
}

// checkState compares a returned state with the declared StateSpecs.
func (k *kit) checkState(check string, st tensor.Map) {
	k.t.Helper()
	if len(k.desc.State) == 0 {
		if len(st) != 0 {
			k.errorf(check, "state %v returned, but Describe declares none", st.Names())
		}
		return
	}
	names := []string{}
	for _, spec := range k.desc.State {
		names = append(names, spec.Name)
		want := slices.Clone(spec.Shape)
		for i, d := range want {
			if d == -1 {
				want[i] = k.c.B
			}
		}
		if _, err := st.Need(spec.Name, want...); err != nil {
			k.errorf(check, "declared state: %v", err)
		}
	}
	if got := sorted(st.Names()); !slices.Equal(got, sorted(names)) {
		k.errorf(check, "state %v, Describe declares %v", got, sorted(names))
	}
}

// checkBackward: one forward + backward pass; the handle is consumed; nothing
// passed in is modified; the gradients have the right names and shapes.
func (k *kit) checkBackward() {
	k.t.Helper()
	const check = "backward"
	res, err := k.forward(k.request(true))
	if err != nil {
		k.errorf(check, "Forward with NeedGrad: %v", err)
		return
	}
	if res.Handle == 0 {
		k.errorf(check, "Forward with NeedGrad returned handle 0")
		return
	}
	k.wantLive(check+" after Forward with NeedGrad", 1)
	g := k.cotangents(res.Outputs)
	before := snapshot(k.inputs, k.params, g)
	bw, err := k.backward(res.Handle, g)
	if err != nil {
		k.errorf(check, "Backward: %v", err)
		return
	}
	k.unchanged(check+" (after Backward)", []string{"input", "parameter", "output gradient"}, before, k.inputs, k.params, g)
	k.wantLive(check+" after Backward", 0)
	if _, err := k.backward(res.Handle, g); true {
		k.wantError("Backward twice on one handle", err)
	}
	if err := k.release(res.Handle); err != nil {
		k.errorf(check, "Release after Backward: %v, want no error (the handle is gone, which is not an error)", err)
	}
	k.checkGradNames(check, bw)
}

// checkGradNames checks which gradients a Backward returned and their shapes.
func (k *kit) checkGradNames(check string, bw *stage.BackwardResult) {
	k.t.Helper()
	for _, name := range bw.InputGrads.Names() {
		in, ok := k.inputs[name]
		if !ok {
			k.errorf(check, "gradient for %q, which is not an input", name)
			continue
		}
		if k.noGrad[name] {
			k.errorf(check, "gradient for input %q, which Config.NoGrad says the stage does not differentiate", name)
		}
		k.sameShape(check, "gradient of input "+name, bw.InputGrads[name], in.Shape)
	}
	for _, name := range k.desc.Inputs {
		if _, ok := bw.InputGrads[name]; !ok && !k.noGrad[name] {
			k.t.Logf("stagetest: %s: %s: no gradient for input %q: its finite differences must be zero", k.name, check, name)
		}
	}
	specs := map[string]stage.ParamSpec{}
	for _, p := range k.desc.Params {
		specs[p.Name] = p
		g, ok := bw.ParamGrads[p.Name]
		switch {
		case p.NoGrad && ok:
			k.errorf(check, "gradient for parameter %q, which is declared NoGrad", p.Name)
		case !p.NoGrad && !ok:
			k.errorf(check, "no gradient for parameter %q", p.Name)
		case ok:
			k.sameShape(check, "gradient of parameter "+p.Name, g, p.Shape)
		}
	}
	for _, name := range bw.ParamGrads.Names() {
		if _, ok := specs[name]; !ok {
			k.errorf(check, "gradient for %q, which is not a declared parameter", name)
		}
	}
}

func (k *kit) sameShape(check, what string, g *tensor.Tensor, shape []int) {
	k.t.Helper()
	if g == nil || !tensor.SameShape(g.Shape, shape) || len(g.Data) != tensor.Numel(shape) {
		got := "nil"
		if g != nil {
			got = fmt.Sprintf("shape %v with %d values", g.Shape, len(g.Data))
		}
		k.errorf(check, "%s: %s, want shape %v", what, got, shape)
		return
	}
	for i, v := range g.Data {
		if isBad(v) {
			k.errorf(check, "%s[%d] = %v", what, i, v)
			return
		}
	}
}

// checkHandles: Release drops a handle, Backward after Release fails, Release
// twice and Release of an unknown handle are not errors, Backward of an unknown
// handle is.
func (k *kit) checkHandles() {
	k.t.Helper()
	const check = "release"
	res, err := k.forward(k.request(true))
	if err != nil {
		k.errorf(check, "Forward with NeedGrad: %v", err)
		return
	}
	if err := k.release(res.Handle); err != nil {
		k.errorf(check, "Release: %v", err)
	}
	k.wantLive(check+" after Release", 0)
	if _, err := k.backward(res.Handle, k.cotangents(res.Outputs)); true {
		k.wantError("Backward after Release", err)
	}
	if err := k.release(res.Handle); err != nil {
		k.errorf(check, "Release twice: %v, want no error", err)
	}
	if err := k.release(unknownHandle); err != nil {
		k.errorf(check, "Release of an unknown handle: %v, want no error", err)
	}
	if _, err := k.backward(unknownHandle, k.cotangents(res.Outputs)); true {
		k.wantError("Backward of an unknown handle", err)
	}
	k.wantLive(check+" at the end", 0)
}

// wrongShapes returns shapes that differ from s: the last dimension one larger,
// one more dimension, and (from rank 2) the first dimension dropped.
func wrongShapes(s []int) [][]int {
	var out [][]int
	if len(s) > 0 {
		w := slices.Clone(s)
		w[len(w)-1]++
		out = append(out, w)
	}
	out = append(out, append(slices.Clone(s), 2))
	if len(s) >= 2 {
		out = append(out, slices.Clone(s[1:]))
	}
	return out
}

func zeros(shape []int) *tensor.Tensor {
	t := tensor.New(shape...)
	if t.Shape == nil {
		t.Shape = []int{}
	}
	return t
}

func with(m tensor.Map, name string, v *tensor.Tensor) tensor.Map {
	out := tensor.Map{}
	for n, t := range m {
		out[n] = t
	}
	if v == nil {
		delete(out, name)
	} else {
		out[name] = v
	}
	return out
}

// checkBadRequests: missing and wrong-shape inputs and parameters and
// wrong-shape output gradients are errors, and leave no handle behind.
func (k *kit) checkBadRequests() {
	k.t.Helper()
	bad := func(what, name string, req *stage.ForwardRequest) {
		k.t.Helper()
		req.NeedGrad = true
		res, err := k.forward(req)
		k.wantError("Forward with "+what, err)
		k.names("Forward with "+what, err, name)
		if err == nil && res.Handle != 0 {
			_ = k.release(res.Handle)
		}
		if err != nil {
			k.wantLive("Forward with "+what, 0)
		}
	}
	for _, name := range k.desc.Inputs {
		if k.opt[name] {
			if _, err := k.forward(&stage.ForwardRequest{Params: k.params, Inputs: with(k.inputs, name, nil)}); err != nil {
				k.errorf("optional input", "Forward without input %q (Config.Optional): %v", name, err)
			}
		} else {
			bad(fmt.Sprintf("input %q missing", name), name, &stage.ForwardRequest{Params: k.params, Inputs: with(k.inputs, name, nil)})
		}
		for _, s := range wrongShapes(k.inputs[name].Shape) {
			bad(fmt.Sprintf("input %q of shape %v", name, s), name, &stage.ForwardRequest{Params: k.params, Inputs: with(k.inputs, name, zeros(s))})
		}
		if in := k.inputs[name]; len(in.Data) > 0 {
			short := &tensor.Tensor{Shape: in.Shape, Data: in.Data[:len(in.Data)-1]}
			bad(fmt.Sprintf("input %q of %d values for shape %v", name, len(short.Data), in.Shape), name,
				&stage.ForwardRequest{Params: k.params, Inputs: with(k.inputs, name, short)})
		}
	}
	for _, p := range k.desc.Params {
		if p.NoGrad {
			continue // possibly never read
		}
		bad(fmt.Sprintf("parameter %q missing", p.Name), p.Name, &stage.ForwardRequest{Params: with(k.params, p.Name, nil), Inputs: k.inputs})
		s := wrongShapes(p.Shape)[0]
		bad(fmt.Sprintf("parameter %q of shape %v", p.Name, s), p.Name, &stage.ForwardRequest{Params: with(k.params, p.Name, zeros(s)), Inputs: k.inputs})
	}
	res, err := k.forward(k.request(false))
	if err != nil {
		return // reported by checkForward
	}
	// A carried state of the wrong shape, or with a tensor missing, would carry
	// garbage into the next chunk.
	for _, spec := range k.desc.State {
		st := res.State[spec.Name]
		if st == nil {
			continue // reported by checkForward
		}
		if len(k.desc.State) > 1 {
			bad(fmt.Sprintf("state %q missing", spec.Name), spec.Name,
				&stage.ForwardRequest{Params: k.params, Inputs: k.inputs, State: with(res.State, spec.Name, nil)})
		}
		s := wrongShapes(st.Shape)[0]
		bad(fmt.Sprintf("state %q of shape %v", spec.Name, s), spec.Name,
			&stage.ForwardRequest{Params: k.params, Inputs: k.inputs, State: with(res.State, spec.Name, zeros(s))})
	}
	good := k.cotangents(res.Outputs)
	for _, name := range good.Names() {
		shapes := wrongShapes(good[name].Shape)
		if s := good[name].Shape; len(s) >= 2 && s[0] != s[1] {
			// the same number of values, transposed: only the shape tells
			shapes = append(shapes, append([]int{s[1], s[0]}, s[2:]...))
		}
		for _, s := range shapes {
			what := fmt.Sprintf("output gradient %q of shape %v", name, s)
			fw, err := k.forward(k.request(true))
			if err != nil {
				k.errorf("Backward with "+what, "Forward: %v", err)
				return
			}
			_, err = k.backward(fw.Handle, with(good, name, zeros(s)))
			k.wantError("Backward with "+what, err)
			k.names("Backward with "+what, err, name)
			k.wantLive("Backward with "+what, 0)
			if _, err := k.backward(fw.Handle, good); err == nil {
				k.errorf("Backward with "+what, "the handle survived the failed Backward, want it released")
			}
			_ = k.release(fw.Handle)
		}
	}
}

// names reports an error that does not name the tensor it is about (as a word:
// "e" inside "input" does not count): a user must be able to tell which tensor
// to fix.
func (k *kit) names(check string, err error, name string) {
	k.t.Helper()
	var p errPanic
	word := regexp.MustCompile(`(^|[^\w.])` + regexp.QuoteMeta(name) + `($|[^\w.])`)
	if err != nil && !asPanic(err, &p) && !word.MatchString(err.Error()) {
		k.errorf(check, "error %q does not name %q", err, name)
	}
}
