package report

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"liquidlab/framework/results"
)

// configLines parses a resolved config as stored in a cell (config.toml's
// "key = value" lines) into a map. Lines of another form are ignored.
func configLines(b []byte) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, " = ")
		if ok && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// runConfig is the part of a run's configuration that every cell shares: the
// settings with one value over all its cells (the grid axes drop out).
func runConfig(recs []*results.Record) map[string]string {
	var common map[string]string
	for _, r := range recs {
		if r == nil || len(r.Config) == 0 {
			continue
		}
		c := configLines(r.Config)
		if common == nil {
			common = c
			continue
		}
		for k, v := range common {
			if c[k] != v {
				delete(common, k)
			}
		}
		for k := range c {
			if _, ok := common[k]; !ok {
				delete(common, k)
			}
		}
	}
	return common
}

// ConfigDiff lists, one line each, the settings that every cell of run A
// shares and every cell of run B shares but with another value ("key: A=x
// B=y"), with settings only one run has as "(unset)". It says so when the
// runs' shared settings are the same, and is empty when either run has no
// stored configuration.
func ConfigDiff(a, b []*results.Record) []string {
	ca, cb := runConfig(a), runConfig(b)
	if ca == nil || cb == nil {
		return nil
	}
	keys := slices.Sorted(maps.Keys(ca))
	for k := range cb {
		if _, ok := ca[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var out []string
	for _, k := range keys {
		va, oka := ca[k]
		vb, okb := cb[k]
		if va == vb && oka == okb {
			continue
		}
		if !oka {
			va = "(unset or varied)"
		}
		if !okb {
			vb = "(unset or varied)"
		}
		out = append(out, fmt.Sprintf("%s: A=%s B=%s", k, va, vb))
	}
	if len(out) == 0 {
		return []string{"configuration: A and B share every setting (outside their grids)"}
	}
	return append([]string{"configuration differs:"}, indent(out)...)
}

func indent(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = "  " + x
	}
	return out
}

// SplitByAxis splits one run's records by the value of axis, for comparing
// cells inside a run (benchstat's -col): the groups in order of first
// appearance, each record a copy with the axis removed from its axes so that
// Compare matches the cells on the remaining axes. Records without the axis
// are left out.
func SplitByAxis(recs []*results.Record, axis string) (values []string, groups [][]*results.Record) {
	idx := map[string]int{}
	for _, r := range recs {
		if r == nil {
			continue
		}
		v, ok := r.Info.Axes[axis]
		if !ok {
			continue
		}
		i, seen := idx[v]
		if !seen {
			i = len(values)
			idx[v] = i
			values = append(values, v)
			groups = append(groups, nil)
		}
		c := *r
		c.Info.Axes = maps.Clone(r.Info.Axes)
		delete(c.Info.Axes, axis)
		c.Info.Experiment = axis + "=" + v
		groups[i] = append(groups[i], &c)
	}
	return values, groups
}
