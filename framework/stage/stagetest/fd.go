package stagetest

import (
	"fmt"
	"math"

	"liquidlab/framework/tensor"
)

// solverStats are the Stats counters that must not move under a perturbation:
// if they do, an adaptive solver took other steps and finite differences see
// the step sizes move, which Backward (holding them constant) does not.
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
	loss := func() (float64, error) {
		out, err := k.forward(k.request(false))
		if err != nil {
			return 0, err
		}
		for _, s := range solverStats {
			if a, ok := stats[s]; ok && out.Stats[s] != a {
				return 0, fmt.Errorf("the perturbation changed the solver's steps (%s %v → %v), so finite differences "+
					"see the step sizes move: use a smaller Settings.Step or tighter solver tolerances", s, a, out.Stats[s])
			}
		}
		var l float64
		for name, c := range cot {
			o := out.Outputs[name]
			if o == nil || len(o.Data) != len(c.Data) {
				return 0, fmt.Errorf("output %q changed shape under a perturbation", name)
			}
			for i, w := range c.Data {
				if w != 0 {
					l += float64(w) * float64(o.Data[i])
				}
			}
		}
		return l, nil
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
func (k *kit) probe(check, what string, x *tensor.Tensor, g []float32, loss func() (float64, error)) bool {
	k.t.Helper()
	st := k.c.Settings
	orig := append([]float32(nil), x.Data...)
	defer copy(x.Data, orig)
	plus, minus := make([]float32, len(orig)), make([]float32, len(orig))
	for p := 0; p < st.Probes; p++ {
		for i, v := range orig {
			d := st.Step
			if k.rng.IntN(2) == 0 {
				d = -d
			}
			plus[i], minus[i] = float32(float64(v)+d), float32(float64(v)-d)
		}
		copy(x.Data, plus)
		lp, err := loss()
		if err == nil {
			copy(x.Data, minus)
			var lm float64
			lm, err = loss()
			lp -= lm
		}
		copy(x.Data, orig)
		if err != nil {
			k.errorf(check, "%s: %v", what, err)
			return false
		}
		// The directional derivative along the perturbation actually applied
		// (float32 rounding of x ± step included).
		num := lp / (2 * st.Step)
		var ana float64
		for i, gv := range g {
			ana += float64(gv) * (float64(plus[i]) - float64(minus[i]))
		}
		ana /= 2 * st.Step
		if math.Abs(ana-num) > st.ATol+st.RTol*math.Max(math.Abs(ana), math.Abs(num)) || math.IsNaN(ana-num) {
			if g == nil {
				k.errorf(check, "%s: no gradient returned, but the loss depends on it (directional derivative %.6g, probe %d)", what, num, p)
			} else {
				k.errorf(check, "%s: directional derivative, probe %d: Backward gives %.6g, finite differences %.6g", what, p, ana, num)
			}
			return true
		}
	}
	return true
}
