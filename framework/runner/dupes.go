package runner

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"liquidlab/framework/config"
	"liquidlab/framework/odeint"
	"liquidlab/framework/stage"
)

// EffectiveDuplicate is a group of grid cells that differ only in settings
// their components ignore, and so are the same run in effect.
type EffectiveDuplicate struct {
	Cells  []config.Cell // two or more, in grid order
	Reason string        // which settings are ignored, and why
}

// EffectiveDuplicates finds the cells of a grid that are duplicates in
// effect. It reads each component's description: a component whose options
// are odeint's solver options (method, rtol, atol) ignores rtol and atol
// when its method takes fixed steps (odeint.Adaptive), so two cells that
// differ only there train the same model. describe may be nil (nothing is
// found); a component it cannot describe is taken at its word.
func EffectiveDuplicates(cells []config.Cell, describe config.Describer) []EffectiveDuplicate {
	if describe == nil {
		return nil
	}
	type desc struct {
		d   *stage.Description
		err error
	}
	cache := map[[2]string]desc{}
	describeOnce := func(kind, impl string) *stage.Description {
		k := [2]string{kind, impl}
		if c, ok := cache[k]; ok {
			return c.d
		}
		d, err := describe(kind, impl, nil) // the option specs, which do not depend on the values
		cache[k] = desc{d, err}
		return d
	}
	groups := map[string][]int{}
	reasons := map[string][]string{}
	var order []string
	for i, c := range cells {
		e := *c.Exp
		e.Components = maps.Clone(c.Exp.Components)
		var why []string
		for _, kind := range stage.Kinds {
			comp := e.Components[kind]
			d := describeOnce(kind, comp.Impl)
			if d == nil || !solverOptions(d) {
				continue
			}
			method := optionValue(comp.Options, d, odeint.OptionMethod)
			if odeint.Adaptive(method) {
				continue
			}
			comp.Options = maps.Clone(comp.Options)
			var dropped []string
			for _, o := range []string{odeint.OptionRTol, odeint.OptionATol} {
				if _, ok := comp.Options[o]; ok {
					delete(comp.Options, o)
					dropped = append(dropped, o)
				}
			}
			e.Components[kind] = comp
			if len(dropped) > 0 {
				why = append(why, fmt.Sprintf("%s %s %s: %s takes fixed steps and ignores them", kind, comp.Impl, strings.Join(dropped, ", "), method))
			}
		}
		key := string(e.IdentityForm())
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
		reasons[key] = why
	}
	var out []EffectiveDuplicate
	for _, key := range order {
		idx := groups[key]
		if len(idx) < 2 {
			continue
		}
		g := EffectiveDuplicate{Reason: strings.Join(reasons[key], "; ")}
		for _, i := range idx {
			g.Cells = append(g.Cells, cells[i])
		}
		out = append(out, g)
	}
	return out
}

// solverOptions says whether a component's options are odeint's solver
// options.
func solverOptions(d *stage.Description) bool {
	names := map[string]stage.OptionSpec{}
	for _, o := range d.Options {
		names[o.Name] = o
	}
	m, ok := names[odeint.OptionMethod]
	_, rtol := names[odeint.OptionRTol]
	_, atol := names[odeint.OptionATol]
	return ok && rtol && atol && slices.Equal(m.Choices, odeint.Methods())
}

// optionValue is a component's option as set, or its described default.
func optionValue(opts map[string]any, d *stage.Description, name string) string {
	if v, ok := opts[name]; ok {
		return config.OptionString(v)
	}
	for _, o := range d.Options {
		if o.Name == name {
			return o.Default
		}
	}
	return ""
}

// WarnDuplicates prints a warning for each group of cells that are
// duplicates in effect (see EffectiveDuplicates); it never fails a run.
func WarnDuplicates(w io.Writer, cells []config.Cell, describe config.Describer) {
	for _, g := range EffectiveDuplicates(cells, describe) {
		var names []string
		for _, c := range g.Cells {
			names = append(names, fmt.Sprintf("%d %s", c.Index+1, axesString(c)))
		}
		fmt.Fprintf(w, "warning: cells %s are the same run in effect (%s); each costs a full run: drop the ignored values from the grid\n",
			strings.Join(names, ", "), g.Reason)
	}
}
