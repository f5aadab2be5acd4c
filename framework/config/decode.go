package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"liquidlab/framework/stage"
)

// maxErrors bounds how many problems one message lists.
const maxErrors = 10

// decoder writes raw TOML values into an Experiment, strictly: every key must
// name a field, every value must fit the field's type.
type decoder struct {
	e *Experiment
	// loc says where the value at a raw path was written ("file:line", or the
	// -set argument); line orders keys as written (nil: by name).
	loc  func(path []string) string
	line func(path []string) int
	// prefix starts every message (e.g. which grid axis is being checked).
	prefix string
	errs   []error
}

func (d *decoder) fail(path []string, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s%s", d.loc(path), d.prefix, fmt.Sprintf(format, args...)))
}

// err joins the problems found, at most maxErrors of them.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	errs := d.errs
	if len(errs) > maxErrors {
		errs = append(errs[:maxErrors:maxErrors], fmt.Errorf("… and %d more problems", len(d.errs)-maxErrors))
	}
	return errors.Join(errs...)
}

// decodeFile parses data and writes it over e.
func (e *Experiment) decodeFile(data []byte) error {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d: %s", e.File, pe.Position.Line, pe.Message)
		}
		return fmt.Errorf("%s: %w", e.File, err)
	}
	lines := keyLines(data)
	lineOf := func(path []string) int {
		for n := len(path); n > 0; n-- {
			if l, ok := lines[joinKey(path[:n])]; ok {
				return l
			}
		}
		return 0
	}
	d := &decoder{e: e, line: lineOf, loc: func(path []string) string {
		if l := lineOf(path); l > 0 {
			return fmt.Sprintf("%s:%d", e.File, l)
		}
		return e.File
	}}
	if g, ok := raw["grid"]; ok {
		delete(raw, "grid")
		d.grid(g)
	}
	d.table(reflect.ValueOf(e).Elem(), raw, nil)
	return d.err()
}

// keysByLine returns m's keys in the order they are written, using loc.
func (d *decoder) keysByLine(m map[string]any, path []string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if d.line != nil {
		sort.SliceStable(keys, func(i, j int) bool {
			return d.line(append(path[:len(path):len(path)], keys[i])) < d.line(append(path[:len(path):len(path)], keys[j]))
		})
	}
	return keys
}

// fieldsOf returns the toml names of a struct type's settable fields.
func fieldsOf(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		out[tag] = i
	}
	return out
}

func validKeys(fields map[string]int, skip ...string) string {
	var keys []string
	for k := range fields {
		if !contains(skip, k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func tableName(path []string) string {
	if len(path) == 0 {
		return "the top level"
	}
	return "[" + strings.Join(path, ".") + "]"
}

// table writes raw into the struct rv, whose dotted path is path.
func (d *decoder) table(rv reflect.Value, raw map[string]any, path []string) {
	fields := fieldsOf(rv.Type())
	for _, k := range d.keysByLine(raw, path) {
		p := append(path[:len(path):len(path)], k)
		i, ok := fields[k]
		if !ok {
			what := fmt.Sprintf("key %q", k)
			if _, isTable := raw[k].(map[string]any); isTable {
				what = "table " + tableName(p)
			}
			d.fail(p, "unknown %s in %s; valid keys: %s", what, tableName(path), validKeys(fields))
			continue
		}
		d.field(rv.Field(i), raw[k], p)
	}
}

// field writes one raw value into a field.
func (d *decoder) field(fv reflect.Value, v any, path []string) {
	name := strings.Join(path, ".")
	switch {
	case fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)):
		m, ok := v.(map[string]any)
		if !ok {
			d.fail(path, "%s is a table ([%s]), not %s", name, name, describeValue(v))
			return
		}
		d.table(fv, m, path)
		return
	case fv.Type() == reflect.TypeOf(map[string]Component(nil)):
		d.components(fv, v, path)
		return
	case fv.Type() == reflect.TypeOf(map[string]any(nil)):
		d.options(fv, v, path)
		return
	}
	got, msg := convert(fv.Type(), v)
	if msg != "" {
		d.fail(path, "%s = %s: %s", name, formatValue(v), msg)
		return
	}
	fv.Set(got)
	d.e.origin[name] = d.loc(path)
}

func (d *decoder) components(fv reflect.Value, v any, path []string) {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "components is a table of stage kinds (%s), not %s", strings.Join(sortedKinds(), ", "), describeValue(v))
		return
	}
	comps := fv.Interface().(map[string]Component)
	for _, kind := range d.keysByLine(m, path) {
		p := append(path[:len(path):len(path)], kind)
		if !contains(stage.Kinds, kind) {
			d.fail(p, "unknown stage kind %q in [components]; valid kinds: %s", kind, strings.Join(sortedKinds(), ", "))
			continue
		}
		c := comps[kind]
		cv := reflect.ValueOf(&c).Elem()
		d.field(cv, m[kind], p)
		comps[kind] = c
	}
}

func (d *decoder) options(fv reflect.Value, v any, path []string) {
	name := strings.Join(path, ".")
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(path, "%s is a table of stage options, e.g. %s = { method = \"rk4\" }; got %s", name, name, describeValue(v))
		return
	}
	if fv.IsNil() {
		fv.Set(reflect.ValueOf(map[string]any{}))
	}
	opts := fv.Interface().(map[string]any)
	for _, k := range d.keysByLine(m, path) {
		p := append(path[:len(path):len(path)], k)
		switch x := m[k].(type) {
		case string, int64, float64, bool:
			opts[k] = x
			d.e.origin[name+"."+k] = d.loc(p)
		default:
			d.fail(p, "option %s.%s = %s: an option is a string, integer, float or bool", name, k, formatValue(x))
		}
	}
}

func sortedKinds() []string {
	k := append([]string(nil), stage.Kinds...)
	sort.Strings(k)
	return k
}

var durationType = reflect.TypeOf(time.Duration(0))

// convert turns a raw TOML value into a value of type t, or says why it cannot.
func convert(t reflect.Type, v any) (reflect.Value, string) {
	if t == durationType {
		s, ok := v.(string)
		if !ok {
			return reflect.Value{}, "want a duration string such as \"10m\" or \"90s\""
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			return reflect.Value{}, "want a duration such as \"10m\" or \"90s\""
		}
		return reflect.ValueOf(dur), ""
	}
	switch t.Kind() {
	case reflect.String:
		if s, ok := v.(string); ok {
			return reflect.ValueOf(s).Convert(t), ""
		}
		return reflect.Value{}, "want a string"
	case reflect.Bool:
		if b, ok := v.(bool); ok {
			return reflect.ValueOf(b), ""
		}
		return reflect.Value{}, "want true or false"
	case reflect.Int, reflect.Int64:
		i, ok := v.(int64)
		if !ok {
			return reflect.Value{}, "want an integer"
		}
		out := reflect.New(t).Elem()
		if out.OverflowInt(i) {
			return reflect.Value{}, "integer out of range"
		}
		out.SetInt(i)
		return out, ""
	case reflect.Float64:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return reflect.Value{}, "want a finite number"
			}
			return reflect.ValueOf(x), ""
		case int64:
			return reflect.ValueOf(float64(x)), ""
		}
		return reflect.Value{}, "want a number"
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return reflect.Value{}, "want a list, e.g. [" + exampleElem(t.Elem()) + "]"
		}
		out := reflect.MakeSlice(t, len(arr), len(arr))
		for i, x := range arr {
			ev, msg := convert(t.Elem(), x)
			if msg != "" {
				return reflect.Value{}, fmt.Sprintf("element %d (%s): %s", i, formatValue(x), msg)
			}
			out.Index(i).Set(ev)
		}
		return out, ""
	}
	return reflect.Value{}, fmt.Sprintf("unsupported setting type %s", t)
}

func exampleElem(t reflect.Type) string {
	if t.Kind() == reflect.String {
		return `"a", "b"`
	}
	return "1, 2"
}

// describeValue names the TOML type of a raw value.
func describeValue(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a table"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "a list"
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	}
	return fmt.Sprintf("a %T", v)
}
