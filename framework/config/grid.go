package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
)

// Grid is the set of settings an experiment varies. Axes are crossed with each
// other and with every paired group; the axes of one paired group vary together.
type Grid struct {
	Axes   []Axis   // crossed, in the order written
	Paired [][]Axis // groups of axes of equal length, after Axes
}

// Axis is one varied setting: a dotted key path ("model.num_flows",
// "components.ode.options.rtol") and the values it takes, as TOML gave them
// (string, int64, float64, bool, []any).
type Axis struct {
	Key    string
	Values []any
	origin string // where it was written, for messages
}

// Cell is one point of the grid.
type Cell struct {
	Index int
	Axes  []AxisValue // the varied settings of this cell, in grid order
	Exp   *Experiment // fully resolved copy, with an empty Grid
}

// AxisValue is the value one axis takes in a cell.
type AxisValue struct {
	Key   string
	Value any
}

// Empty reports whether the grid varies nothing.
func (g Grid) Empty() bool { return len(g.Axes) == 0 && len(g.Paired) == 0 }

func (g Grid) clone() Grid {
	var c Grid
	for _, a := range g.Axes {
		c.Axes = append(c.Axes, a.clone())
	}
	for _, grp := range g.Paired {
		var cg []Axis
		for _, a := range grp {
			cg = append(cg, a.clone())
		}
		c.Paired = append(c.Paired, cg)
	}
	return c
}

func (a Axis) clone() Axis {
	a.Values = cloneValue(a.Values).([]any)
	return a
}

// dims returns the grid's dimensions in order: each crossed axis alone, then each
// paired group.
func (g Grid) dims() [][]Axis {
	var out [][]Axis
	for _, a := range g.Axes {
		out = append(out, []Axis{a})
	}
	return append(out, g.Paired...)
}

// grid reads the raw [grid] table.
func (d *decoder) grid(v any) {
	path := []string{"grid"}
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "grid is a table of axes, e.g. [grid] \"model.num_flows\" = [0, 4]; got %s", describeValue(v))
		return
	}
	for _, k := range d.keysByLine(m, path) {
		p := []string{"grid", k}
		if k != "paired" {
			d.axes(m[k], p, []string{k}, &d.e.Grid.Axes)
			continue
		}
		var groups []map[string]any
		switch x := m[k].(type) {
		case []map[string]any:
			groups = x
		case []any:
			for _, g := range x {
				gm, ok := g.(map[string]any)
				if !ok {
					d.fail(p, "grid.paired is an array of tables ([[grid.paired]]); got a list of %s", describeValue(g))
					return
				}
				groups = append(groups, gm)
			}
		default:
			d.fail(p, "grid.paired is an array of tables ([[grid.paired]]); got %s", describeValue(x))
			return
		}
		for i, g := range groups {
			gp := []string{"grid", "paired", fmt.Sprintf("#%d", i)}
			var grp []Axis
			for _, ak := range d.keysByLine(g, gp) {
				d.axes(g[ak], append(gp[:3:3], ak), []string{ak}, &grp)
			}
			if len(grp) == 0 {
				d.fail(gp, "a [[grid.paired]] group needs at least one axis")
				continue
			}
			d.e.Grid.Paired = append(d.e.Grid.Paired, grp)
		}
	}
}

// axes reads one grid entry: a list of values, or a table of further key
// segments (an unquoted dotted key such as model.num_flows = [..]).
func (d *decoder) axes(v any, raw, key []string, out *[]Axis) {
	switch x := v.(type) {
	case []any:
		*out = append(*out, Axis{Key: strings.Join(key, "."), Values: x, origin: d.loc(raw)})
	case map[string]any:
		for _, k := range d.keysByLine(x, raw) {
			d.axes(x[k], append(raw[:len(raw):len(raw)], k), append(key[:len(key):len(key)], k), out)
		}
	default:
		d.fail(raw, "grid axis %q = %s: an axis is a list of values, e.g. [1, 2]", strings.Join(key, "."), formatValue(v))
	}
}

// applyOverride applies one -set argument.
func (e *Experiment) applyOverride(arg string) error {
	origin := "-set " + arg
	k, val, ok := strings.Cut(arg, "=")
	if !ok {
		return fmt.Errorf("%s: want key.path=value", origin)
	}
	path, err := parseKeyPath(k)
	if err != nil {
		return fmt.Errorf("%s: %w", origin, err)
	}
	v := parseOverrideValue(val)
	if path[0] == "grid" {
		return e.setAxis(path[1:], v, origin)
	}
	if err := e.set(path, v, origin, ""); err != nil {
		return err
	}
	e.pin(strings.Join(path, "."))
	return nil
}

// parseKeyPath reads a TOML dotted key (bare or quoted segments).
func parseKeyPath(k string) ([]string, error) {
	s := &lineScanner{src: strings.TrimSpace(k), line: 1, lines: map[string]int{}, aot: map[string]int{}}
	path := s.key()
	s.skipSpace(false)
	if len(path) == 0 || !s.eof() {
		return nil, fmt.Errorf("%q is not a key path such as train.steps", k)
	}
	for _, seg := range path {
		if seg == "" {
			return nil, fmt.Errorf("%q has an empty key segment", k)
		}
	}
	return path, nil
}

// parseOverrideValue reads a TOML value, or takes the text as a string.
func parseOverrideValue(s string) any {
	var m map[string]any
	if _, err := toml.Decode("v = "+s, &m); err == nil {
		switch v := m["v"].(type) {
		case string, int64, float64, bool, []any, map[string]any:
			return v
		}
	}
	return s
}

// setAxis replaces (or adds) a crossed axis, or the values of an axis of a
// paired group, from -set grid.KEY=[...].
func (e *Experiment) setAxis(key []string, v any, origin string) error {
	if len(key) == 0 || key[0] == "paired" {
		return fmt.Errorf("%s: -set can replace a grid axis (grid.model.num_flows=[0,4]); edit the file for anything else", origin)
	}
	name := strings.Join(key, ".")
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("%s: grid axis %q = %s: an axis is a list of values, e.g. [1, 2]", origin, name, formatValue(v))
	}
	ax := Axis{Key: name, Values: list, origin: origin}
	for i := range e.Grid.Axes {
		if e.Grid.Axes[i].Key == name {
			e.Grid.Axes[i] = ax
			return nil
		}
	}
	for _, grp := range e.Grid.Paired {
		for i := range grp {
			if grp[i].Key == name {
				grp[i] = ax
				return nil
			}
		}
	}
	e.Grid.Axes = append(e.Grid.Axes, ax)
	return nil
}

// pin removes the axes of key: a setting fixed by -set no longer varies.
func (e *Experiment) pin(key string) {
	var axes []Axis
	for _, a := range e.Grid.Axes {
		if a.Key != key {
			axes = append(axes, a)
		}
	}
	e.Grid.Axes = axes
	var groups [][]Axis
	for _, grp := range e.Grid.Paired {
		var g []Axis
		for _, a := range grp {
			if a.Key != key {
				g = append(g, a)
			}
		}
		if len(g) > 0 {
			groups = append(groups, g)
		}
	}
	e.Grid.Paired = groups
}

// set writes one value at a key path, with the same checks as the file.
func (e *Experiment) set(path []string, v any, origin, prefix string) error {
	raw := v
	for i := len(path) - 1; i >= 0; i-- {
		raw = map[string]any{path[i]: raw}
	}
	d := &decoder{e: e, prefix: prefix, loc: func([]string) string { return origin }}
	if path[0] == "grid" {
		d.fail(path, "the grid cannot be a grid axis")
		return d.err()
	}
	oldSeed := e.Seed
	d.table(reflect.ValueOf(e).Elem(), raw.(map[string]any), nil)
	if e.Seed != oldSeed && e.Data.Seed == 0 {
		// seed is the model seed: changing it (-set seed=2, a seed grid
		// axis) keeps the data of the file's seed, as repeats do.
		e.Data.Seed = oldSeed
	}
	return d.err()
}

// checkGrid checks the shape of the grid and that every value of every axis
// fits its setting.
func (e *Experiment) checkGrid() error {
	// The size first: a grid too large is refused before its values are checked.
	n := 1
	for _, dim := range e.Grid.dims() {
		n *= len(dim[0].Values)
		if n > MaxCells {
			return fmt.Errorf("%s: the grid has more than %d cells; split the experiment", e.File, MaxCells)
		}
	}
	var errs []error
	seen := map[string]string{}
	for _, dim := range e.Grid.dims() {
		for _, a := range dim {
			if prev, ok := seen[a.Key]; ok {
				errs = append(errs, fmt.Errorf("%s: grid axis %q is already an axis at %s", a.origin, a.Key, prev))
				continue
			}
			seen[a.Key] = a.origin
			if a.Key == "name" {
				errs = append(errs, fmt.Errorf("%s: grid axis \"name\": the experiment's name cannot vary", a.origin))
				continue
			}
			if len(a.Values) == 0 {
				errs = append(errs, fmt.Errorf("%s: grid axis %q is empty; give it at least one value", a.origin, a.Key))
				continue
			}
			path := strings.Split(a.Key, ".")
			for _, v := range a.Values {
				c := e.cloneSettings()
				prefix := fmt.Sprintf("grid axis %q: ", a.Key)
				if err := c.set(path, v, a.origin, prefix); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
		if len(dim) > 1 {
			n := len(dim[0].Values)
			for _, a := range dim[1:] {
				if len(a.Values) != n {
					var parts []string
					for _, b := range dim {
						parts = append(parts, fmt.Sprintf("%s has %d", b.Key, len(b.Values)))
					}
					errs = append(errs, fmt.Errorf("%s: paired axes must have equal lengths: %s", a.origin, strings.Join(parts, ", ")))
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Cells expands the grid: the cartesian product of the crossed axes and the
// paired groups, the first axis varying slowest. An experiment without a grid
// has one cell. After Validate, every cell's options are checked and completed
// with their defaults.
func (e *Experiment) Cells() ([]Cell, error) {
	if err := e.checkGrid(); err != nil {
		return nil, err
	}
	dims := e.Grid.dims()
	n := 1
	for _, dim := range dims {
		n *= len(dim[0].Values)
	}
	cells := make([]Cell, 0, n)
	idx := make([]int, len(dims))
	for ci := 0; ci < n; ci++ {
		rem := ci
		for j := len(dims) - 1; j >= 0; j-- {
			l := len(dims[j][0].Values)
			idx[j] = rem % l
			rem /= l
		}
		c := e.cloneSettings()
		c.describe, c.validated = nil, false
		c.stripDefaults()
		var axes []AxisValue
		for j, dim := range dims {
			for _, a := range dim {
				v := a.Values[idx[j]]
				axes = append(axes, AxisValue{Key: a.Key, Value: cloneValue(v)})
				if err := c.set(strings.Split(a.Key, "."), v, a.origin, ""); err != nil {
					return nil, fmt.Errorf("grid cell %d (%s): %w", ci, axesString(axes), err)
				}
			}
		}
		if len(axes) > 0 {
			c.note = fmt.Sprintf(" (grid cell %d: %s)", ci, axesString(axes))
		}
		if err := c.check(); err != nil {
			return nil, err
		}
		if e.validated && e.describe != nil {
			if err := c.fillOptions(e.describe); err != nil {
				return nil, err
			}
		}
		cells = append(cells, Cell{Index: ci, Axes: axes, Exp: c})
	}
	return cells, nil
}

func axesString(axes []AxisValue) string {
	if len(axes) == 0 {
		return "no axes"
	}
	parts := make([]string, len(axes))
	for i, a := range axes {
		parts[i] = a.Key + "=" + formatValue(a.Value)
	}
	return strings.Join(parts, ", ")
}
