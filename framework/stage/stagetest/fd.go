package stagetest

import (
	"fmt"
	"math"

	"liquidlab/framework/tensor"
)

// solverStats are the Stats counters of an adaptive solver: when they move under
// a perturbation, the solver took other steps and finite differences see the
// step sizes move, which Backward (holding them constant) does not; a failure
// then says so.
var solverStats = []string{"nfe", "accepted", "rejected"}

// checkGradients compares Backward with central finite differences of
// L = Σ out ⊙ cotangent along random ±1 directions, per input and parameter.
func (k *kit) checkGradients() {
	k.t.Helper()
	const check = "gradients"
	res, err := k.forward(k.request(true))
	if err != nil {
		k.errorf(check, "Forward with NeedGrad: %v", err)
		return
	}
	cot := k.cotangents(res.Outputs)
	bw, err := k.backward(res.Handle, cot)
	if err != nil {
		k.errorf(check, "Backward: %v", err)
		return
	}
	stats := res.Stats
	loss := func() (float64, bool, error) {
		out, err := k.forward(k.request(false))
		if err != nil {
			return 0, false, err
		}
		moved := false
		for _, s := range solverStats {
			if a, ok := stats[s]; ok && out.Stats[s] != a {
				moved = true
			}
		}
		var l float64
		for name, c := range cot {
			o := out.Outputs[name]
			if o == nil || len(o.Data) != len(c.Data) {
				return 0, false, fmt.Errorf("output %q changed shape under a perturbation", name)
			}
			for i, w := range c.Data {
				if w != 0 {
					l += float64(w) * float64(o.Data[i])
				}
			}
		}
		return l, moved, nil
	}
	for _, name := range k.desc.Inputs {
		if k.noGrad[name] {
			continue
		}
		var g []float32
		if t := bw.InputGrads[name]; t != nil && len(t.Data) == len(k.inputs[name].Data) {
			g = t.Data
		}
		if !k.probe(check, "input "+name, k.inputs[name], g, loss) {
			return
		}
	}
	for _, p := range k.desc.Params {
		if p.NoGrad {
			continue
		}
		t := bw.ParamGrads[p.Name]
		if t == nil || len(t.Data) != len(k.params[p.Name].Data) {
			continue // reported by checkBackward
		}
		if !k.probe(check, "parameter "+p.Name, k.params[p.Name], t.Data, loss) {
			return
		}
	}
}

// probe checks one tensor; g nil means the stage returned no gradient, so the
// loss must not depend on x. It returns false when the loss cannot be computed.
//
// Each probe compares Backward's directional derivative along a random ±1
// direction with the central difference at Settings.Step. A kink (ReLU, max)
// between x − step and x + step spoils the central difference, and an adaptive
// solver may take other steps: so a probe that disagrees is repeated at a
// quarter step, and also passes when one of the one-sided differences there
// agrees (the kink is then on the other side). A wrong gradient disagrees with
// all of them.
func (k *kit) probe(check, what string, x *tensor.Tensor, g []float32, loss func() (float64, bool, error)) bool {
	k.t.Helper()
	st := k.c.Settings
	orig := append([]float32(nil), x.Data...)
	defer copy(x.Data, orig)
	l0, _, err := loss()
	if err != nil {
		k.errorf(check, "%s: %v", what, err)
		return false
	}
	plus, minus := make([]float32, len(orig)), make([]float32, len(orig))
	sign := make([]float64, len(orig))
	agree := func(a, n float64) bool {
		return math.Abs(a-n) <= st.ATol+st.RTol*math.Max(math.Abs(a), math.Abs(n))
	}
	moved := false
	// try compares at step h, along the perturbation actually applied (float32
	// rounding of x ± h included); it returns Backward's and the central
	// difference's derivatives and whether they, or a one-sided pair, agree.
	try := func(h float64, oneSided bool) (ana, num float64, ok bool, err error) {
		for i, v := range orig {
			plus[i], minus[i] = float32(float64(v)+h*sign[i]), float32(float64(v)-h*sign[i])
		}
		defer copy(x.Data, orig)
		copy(x.Data, plus)
		lp, mp, err := loss()
		if err != nil {
			return 0, 0, false, err
		}
		copy(x.Data, minus)
		lm, mm, err := loss()
		if err != nil {
			return 0, 0, false, err
		}
		moved = moved || mp || mm
		var ap, am float64 // Backward's change of L towards plus and towards minus
		for i, gv := range g {
			ap += float64(gv) * (float64(plus[i]) - float64(orig[i]))
			am += float64(gv) * (float64(orig[i]) - float64(minus[i]))
		}
		ana, num = (ap+am)/(2*h), (lp-lm)/(2*h)
		ok = agree(ana, num) || oneSided && (agree(ap/h, (lp-l0)/h) || agree(am/h, (l0-lm)/h))
		return ana, num, ok, nil
	}
	for p := 0; p < st.Probes; p++ {
		for i := range sign {
			sign[i] = float64(1 - 2*k.rng.IntN(2))
		}
		moved = false
		ana, num, ok, err := try(st.Step, false)
		if err == nil && !ok {
			_, _, ok, err = try(st.Step/4, true)
		}
		if err != nil {
			k.errorf(check, "%s: %v", what, err)
			return false
		}
		if ok {
			continue
		}
		hint := ""
		if moved {
			hint = " (the perturbation changed the solver's steps, which finite differences see and Backward does not: " +
				"tighten the solver's tolerances or loosen Settings)"
		}
		if g == nil {
			k.errorf(check, "%s: no gradient returned, but the loss depends on it (directional derivative %.6g, probe %d)%s", what, num, p, hint)
		} else {
			k.errorf(check, "%s: directional derivative, probe %d: Backward gives %.6g, finite differences %.6g%s", what, p, ana, num, hint)
		}
		return true
	}
	return true
}
