package coupling

import (
	"fmt"
	"strconv"

	"liquidlab/framework/num/packed"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Names the stage reports in its Description.
const (
	Kind    = stage.KindFlows
	Name    = "coupling"
	Version = "1.0.0"
)

// Option names.
const (
	OptSharePar    = "share_params"
	OptExactLogdet = "exact_logdet"
)

// Residual is the seed's residual_scale: odd layers add Residual·x0.
const Residual = 0.1

// dims is a parsed and validated stage.Config.
type dims struct {
	D, H, L, F, K int // H = D/2
	share, exact  bool
}

func parseConfig(cfg stage.Config) (dims, error) {
	var d dims
	get := func(name string, lo int, dst *int) error {
		v, err := cfg.Dim(name)
		if err != nil {
			return fmt.Errorf("coupling: %w", err)
		}
		if v < lo {
			return fmt.Errorf("coupling: dimension %s = %d, want ≥ %d", name, v, lo)
		}
		*dst = v
		return nil
	}
	if err := get("embedding_dim", 2, &d.D); err != nil {
		return d, err
	}
	if d.D%2 != 0 {
		return d, fmt.Errorf("coupling: dimension embedding_dim = %d must be even (the coupling splits it in halves)", d.D)
	}
	d.H = d.D / 2
	if err := get("latent_dim", 1, &d.L); err != nil {
		return d, err
	}
	if d.L > d.D {
		return d, fmt.Errorf("coupling: dimension latent_dim = %d exceeds embedding_dim = %d", d.L, d.D)
	}
	if err := get("hidden_dim", 1, &d.F); err != nil {
		return d, err
	}
	if err := get("num_flows", 0, &d.K); err != nil {
		return d, err
	}
	var err error
	if d.share, err = boolOption(cfg, OptSharePar, true); err != nil {
		return d, err
	}
	if d.exact, err = boolOption(cfg, OptExactLogdet, false); err != nil {
		return d, err
	}
	return d, nil
}

func boolOption(cfg stage.Config, name string, def bool) (bool, error) {
	s, ok := cfg.Options[name]
	if !ok || s == "" {
		return def, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("coupling: option %s = %q is not a bool (true or false)", name, s)
	}
	return v, nil
}

func options() []stage.OptionSpec {
	return []stage.OptionSpec{
		{Name: OptSharePar, Type: "bool", Default: "true",
			Help: "one set of scale/translate nets shared by every coupling layer (the seed's default)"},
		{Name: OptExactLogdet, Type: "bool", Default: "false",
			Help: "ldj = Σ log|g·exp(s)+1−g|, the true log-determinant of the gated coupling, instead of the seed's Σ g·s"},
	}
}

// Local parameter names.
const (
	nameProjW = "initial_proj.weight"
	nameProjB = "initial_proj.bias"
	nameProjG = "proj_gate"
)

func flowName(i int, what string) string { return fmt.Sprintf("flows.%d.%s", i, what) }

var netKinds = [2]string{"scale_net", "translate_net"}

// netParamNames lists a net's four tensors: .0.weight [F,H], .0.bias [F],
// .2.weight [H,F], .2.bias [H].
func netParamNames(i int, kind string) [4]string {
	return [4]string{
		flowName(i, kind+".0.weight"), flowName(i, kind+".0.bias"),
		flowName(i, kind+".2.weight"), flowName(i, kind+".2.bias"),
	}
}

func (d dims) params() []stage.ParamSpec {
	ps := []stage.ParamSpec{
		{Name: nameProjW, Shape: []int{d.D, d.D}, Init: "linear_weight", FanIn: d.D},
		{Name: nameProjB, Shape: []int{d.D}, Init: "linear_bias", FanIn: d.D},
		{Name: nameProjG, Shape: []int{}, Init: "zeros"},
	}
	for i := 0; i < d.K; i++ {
		ps = append(ps,
			stage.ParamSpec{Name: flowName(i, "scale_adapter"), Shape: []int{1}, Init: "ones"},
			stage.ParamSpec{Name: flowName(i, "translate_adapter"), Shape: []int{1}, Init: "zeros"},
			stage.ParamSpec{Name: flowName(i, "gate"), Shape: []int{}, Init: "zeros"},
		)
		if d.share && i > 0 {
			continue
		}
		for _, kind := range netKinds {
			names := netParamNames(i, kind)
			shapes := [4][]int{{d.F, d.H}, {d.F}, {d.H, d.F}, {d.H}}
			inits := [4]stage.Init{"linear_weight", "linear_bias", "linear_weight", "linear_bias"}
			fanIn := [4]int{d.H, d.H, d.F, d.F}
			for k := range names {
				spec := stage.ParamSpec{Name: names[k], Shape: shapes[k], Init: inits[k], FanIn: fanIn[k]}
				if d.share {
					for j := 1; j < d.K; j++ {
						spec.Aliases = append(spec.Aliases, netParamNames(j, kind)[k])
					}
				}
				ps = append(ps, spec)
			}
		}
	}
	return ps
}

// net is one scale or translate net: Lin(H→F), ReLU, Lin(F→H). p1 and p2
// are w1 and w2 packed for package packed's kernel, made by the net's first
// netForward (a net lives for one call's parameters, so they cannot go
// stale).
type net struct {
	w1, b1, w2, b2 []float32
	p1, p2         *packed.Matrix
}

// flow is one coupling layer's parameters.
type flow struct {
	nets      [2]*net // scale, translate
	as, at, g float32
}

// paramSet is a bound parameter map.
type paramSet struct {
	wp, bp []float32
	gp     float32
	flows  []flow
}

// bind checks every declared parameter in m and returns views of their data.
func bind(d dims, m tensor.Map) (*paramSet, error) {
	data := map[string][]float32{}
	for _, spec := range d.params() {
		t, ok := m[spec.Name]
		if !ok || t == nil {
			return nil, fmt.Errorf("coupling: parameter %q is missing", spec.Name)
		}
		if !tensor.SameShape(t.Shape, spec.Shape) || len(t.Data) != tensor.Numel(spec.Shape) {
			return nil, fmt.Errorf("coupling: parameter %q has shape %v (%d values), want %v",
				spec.Name, t.Shape, len(t.Data), spec.Shape)
		}
		data[spec.Name] = t.Data
	}
	return assemble(d, data), nil
}

// assemble builds a paramSet from slices by local name (parameters or their
// gradients); with shared nets every layer points at flows.0's slices.
func assemble(d dims, data map[string][]float32) *paramSet {
	p := &paramSet{wp: data[nameProjW], bp: data[nameProjB], gp: data[nameProjG][0]}
	p.flows = make([]flow, d.K)
	for i := range p.flows {
		f := &p.flows[i]
		f.as = data[flowName(i, "scale_adapter")][0]
		f.at = data[flowName(i, "translate_adapter")][0]
		f.g = data[flowName(i, "gate")][0]
		src := i
		if d.share {
			src = 0
		}
		for k, kind := range netKinds {
			if d.share && i > 0 {
				f.nets[k] = p.flows[0].nets[k]
				continue
			}
			n := netParamNames(src, kind)
			f.nets[k] = &net{w1: data[n[0]], b1: data[n[1]], w2: data[n[2]], b2: data[n[3]]}
		}
	}
	return p
}
