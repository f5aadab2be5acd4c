package config

import (
	"bytes"
	"fmt"
	"liquidlab/framework/golden"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/stage"
)

func TestExperimentFiles(t *testing.T) {
	files, err := filepath.Glob("../../experiments/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	cells := map[string]int{
		"quickstart": 1, "ablation-flows": 10, "ablation-ode": 12,
		"ablation-attention": 4, "seed-table": 1,
	}
	if len(files) < len(cells) {
		t.Fatalf("found %d experiment files, want at least %d", len(files), len(cells))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			e, err := Load(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(nil); err != nil {
				t.Fatal(err)
			}
			cs, err := e.Cells()
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := cells[e.Name]; ok && len(cs) != want {
				t.Errorf("%d cells, want %d", len(cs), want)
			}
			if err := DryRun(&bytes.Buffer{}, e); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	e, err := Parse("dir/my-exp.toml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "my-exp" || e.File != "dir/my-exp.toml" {
		t.Errorf("name %q file %q", e.Name, e.File)
	}
	want := Default()
	want.Name, want.File = e.Name, e.File
	if !reflect.DeepEqual(e, want) {
		t.Errorf("empty file gives\n%+v\nwant the defaults\n%+v", e, want)
	}
	if e.Run.CallTimeout != 10*time.Minute || e.Train.LR != 1e-4 || e.Model.VocabSize != 32000 {
		t.Errorf("unexpected defaults: %+v", e)
	}
	golden.Check(t, "default.canonical", e.Canonical())
}

// errorCases are experiment files (and overrides) that must be refused; every
// message is in testdata/errors.golden.
var errorCases = []struct {
	name string
	src  string
	sets []string
}{
	{"syntax", "seed = 1\n[model\n", nil},
	{"unknown top-level key", "seed = 1\nseeds = 2\n", nil},
	{"unknown key in model", "[model]\nembedding_dim = 64\nlatent_dim = 16\nnum_flow = 4\n", nil},
	{"unknown table", "[modle]\nnum_flows = 4\n", nil},
	{"unknown stage kind", "[components.flow]\nimpl = \"coupling\"\n", nil},
	{"unknown component key", "[components.ode]\nimplementation = \"odefunc\"\n", nil},
	{"string for int", "[train]\nsteps = \"10\"\n", nil},
	{"float for int", "[train]\nbatch = 3.5\n", nil},
	{"table for scalar", "[train.steps]\nx = 1\n", nil},
	{"scalar for table", "model = 3\n", nil},
	{"negative steps", "[train]\nsteps = -1\n", nil},
	{"odd embedding", "[model]\nembedding_dim = 63\nlatent_dim = 16\n", nil},
	{"latent above embedding default", "[model]\nembedding_dim = 64\n", nil},
	{"unknown run mode", "[run]\nmode = \"thread\"\n", nil},
	{"bad objective", "[train]\nobjective = \"next\"\n", nil},
	{"bad bench mode", "[bench]\nmodes = [\"forward\", \"backward\"]\n", nil},
	{"bad bench length", "[bench]\nlengths = [512, 0]\n", nil},
	{"bad duration", "[run]\ncall_timeout = \"ten minutes\"\n", nil},
	{"bad name", "name = \"My Exp\"\n", nil},
	{"sha256 on builtin", "[components.ode]\nimpl = \"odefunc\"\nsha256 = \"abc\"\n", nil},
	{"bad sha256", "[components.ode]\nimpl = \"./bin/ode\"\nsha256 = \"abc\"\n", nil},
	{"option is a list", "[components.ode]\noptions = { method = [\"rk4\"] }\n", nil},
	{"several problems", "[model]\nnum_flow = 1\n[train]\nstep = 3\nbatch = 0\n", nil},
	{"grid unknown key", "[grid]\n\"model.num_flow\" = [1, 2]\n", nil},
	{"grid unknown table", "[grid]\n\"modle.num_flows\" = [1, 2]\n", nil},
	{"grid empty axis", "[grid]\n\"model.num_flows\" = []\n", nil},
	{"grid axis not a list", "[grid]\n\"model.num_flows\" = 4\n", nil},
	{"grid wrong value type", "[grid]\n\"model.num_flows\" = [1, \"two\"]\n", nil},
	{"grid name axis", "[grid]\nname = [\"a\", \"b\"]\n", nil},
	{"grid paired unequal", "[grid]\n\"seed\" = [1, 2]\n[[grid.paired]]\n\"components.ode.options.rtol\" = [1e-3, 1e-6]\n\"components.ode.options.atol\" = [1e-3]\n", nil},
	{"grid paired empty group", "[[grid.paired]]\n", nil},
	{"grid duplicate axis", "[grid]\n\"seed\" = [1, 2]\n[[grid.paired]]\nseed = [3, 4]\n", nil},
	{"grid invalid cell", "[model]\nembedding_dim = 64\nlatent_dim = 16\n[grid]\n\"seed\" = [1, 2]\n\"model.embedding_dim\" = [64, 63]\n", nil},
	{"override unknown key", "", []string{"train.step=3"}},
	{"override wrong type", "", []string{"train.steps=many"}},
	{"override without value", "", []string{"train.steps"}},
	{"override bad key", "", []string{"train..steps=3"}},
	{"override paired", "", []string{"grid.paired=[1]"}},
	{"override grid not a list", "", []string{"grid.seed=3"}},
	{"override invalid value", "", []string{"model.embedding_dim=63"}},
}

func TestErrors(t *testing.T) {
	var out bytes.Buffer
	for _, tc := range errorCases {
		_, err := Parse("exp.toml", []byte(tc.src), tc.sets)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		fmt.Fprintf(&out, "=== %s\n%v\n", tc.name, err)
	}
	golden.Check(t, "errors.golden", out.Bytes())
}

func TestOverrides(t *testing.T) {
	src := `
[model]
embedding_dim = 64
latent_dim = 16
[grid]
"model.num_flows" = [0, 4]
"train.lr" = [1e-3, 1e-4]
[[grid.paired]]
"components.ode.options.rtol" = [1e-3, 1e-6]
"components.ode.options.atol" = [1e-3, 1e-6]
`
	tests := []struct {
		sets  []string
		check func(e *Experiment) string
	}{
		{[]string{"train.steps=7"}, func(e *Experiment) string { return fmt.Sprint(e.Train.Steps) }},
		{[]string{"train.steps=7", "train.steps=8"}, func(e *Experiment) string { return fmt.Sprint(e.Train.Steps) }},
		{[]string{"train.lr=0.5"}, func(e *Experiment) string { return fmt.Sprint(e.Train.LR, len(e.Grid.Axes)) }},
		{[]string{"train.lr=1"}, func(e *Experiment) string { return fmt.Sprint(e.Train.LR) }},
		{[]string{"run.call_timeout=90s"}, func(e *Experiment) string { return e.Run.CallTimeout.String() }},
		{[]string{"data.source=/data/wiki.txt"}, func(e *Experiment) string { return e.Data.Source }},
		{[]string{"description=a b c"}, func(e *Experiment) string { return e.Description }},
		{[]string{`name="other"`}, func(e *Experiment) string { return e.Name }},
		{[]string{"bench.lengths=[8, 16]"}, func(e *Experiment) string { return fmt.Sprint(e.Bench.Lengths) }},
		{[]string{"components.ode.options.method=rk4"}, func(e *Experiment) string {
			return fmt.Sprintf("%#v", e.Components["ode"].Options["method"])
		}},
		{[]string{"components.liquid.impl=./bin/ltc2"}, func(e *Experiment) string { return e.Components["liquid"].Impl }},
		{[]string{"model.tie_output=true", "model.hidden_size=64"}, func(e *Experiment) string { return fmt.Sprint(e.Model.TieOutput) }},
		// A -set on an axis pins it; on a paired axis it leaves its partners.
		{[]string{"model.num_flows=2"}, func(e *Experiment) string { return fmt.Sprint(e.Model.NumFlows, axisKeys(e)) }},
		{[]string{"components.ode.options.rtol=1e-9"}, func(e *Experiment) string { return fmt.Sprint(axisKeys(e)) }},
		// grid.KEY replaces or adds an axis.
		{[]string{"grid.model.num_flows=[1, 2, 3]"}, func(e *Experiment) string { return fmt.Sprint(e.Grid.Axes[0].Values) }},
		{[]string{`grid."model.num_flows"=[1]`}, func(e *Experiment) string { return fmt.Sprint(e.Grid.Axes[0].Values) }},
		{[]string{"grid.seed=[1, 2]"}, func(e *Experiment) string { return fmt.Sprint(axisKeys(e)) }},
		{[]string{"grid.components.ode.options.atol=[1, 2]"}, func(e *Experiment) string { return fmt.Sprint(e.Grid.Paired[0][1].Values) }},
	}
	var out bytes.Buffer
	for _, tc := range tests {
		e, err := Parse("exp.toml", []byte(src), tc.sets)
		if err != nil {
			t.Errorf("%q: %v", tc.sets, err)
			continue
		}
		fmt.Fprintf(&out, "%q → %s\n", tc.sets, tc.check(e))
	}
	golden.Check(t, "overrides.golden", out.Bytes())
}

func axisKeys(e *Experiment) []string {
	var keys []string
	for _, dim := range e.Grid.dims() {
		var grp []string
		for _, a := range dim {
			grp = append(grp, a.Key)
		}
		keys = append(keys, strings.Join(grp, "+"))
	}
	return keys
}

func TestCells(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string // axes of every cell, in order
	}{
		{"no grid", "", []string{"no axes"}},
		{"one axis", "[grid]\nseed = [3, 1]\n", []string{"seed=3", "seed=1"}},
		{"cartesian, first axis slowest", "[grid]\n\"model.num_flows\" = [0, 1]\n\"components.flows.options.share_params\" = [true, false]\n",
			[]string{
				"model.num_flows=0, components.flows.options.share_params=true",
				"model.num_flows=0, components.flows.options.share_params=false",
				"model.num_flows=1, components.flows.options.share_params=true",
				"model.num_flows=1, components.flows.options.share_params=false",
			}},
		{"unquoted dotted keys", "[grid]\nmodel.num_flows = [0, 1]\n", []string{"model.num_flows=0", "model.num_flows=1"}},
		{"cartesian × paired", "[grid]\nseed = [1, 2]\n[[grid.paired]]\n\"components.ode.options.method\" = [\"rk4\", \"dopri5\", \"dopri5\"]\n\"components.ode.options.rtol\" = [0, 1e-3, 1e-6]\n",
			[]string{
				`seed=1, components.ode.options.method="rk4", components.ode.options.rtol=0`,
				`seed=1, components.ode.options.method="dopri5", components.ode.options.rtol=0.001`,
				`seed=1, components.ode.options.method="dopri5", components.ode.options.rtol=1e-06`,
				`seed=2, components.ode.options.method="rk4", components.ode.options.rtol=0`,
				`seed=2, components.ode.options.method="dopri5", components.ode.options.rtol=0.001`,
				`seed=2, components.ode.options.method="dopri5", components.ode.options.rtol=1e-06`,
			}},
		{"two paired groups", "[[grid.paired]]\nseed = [1, 2]\n\"train.steps\" = [10, 20]\n[[grid.paired]]\n\"train.lr\" = [0.1, 0.2]\n",
			[]string{
				"seed=1, train.steps=10, train.lr=0.1", "seed=1, train.steps=10, train.lr=0.2",
				"seed=2, train.steps=20, train.lr=0.1", "seed=2, train.steps=20, train.lr=0.2",
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse("exp.toml", []byte(tc.src), nil)
			if err != nil {
				t.Fatal(err)
			}
			cells, err := e.Cells()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, c := range cells {
				if c.Index != i {
					t.Errorf("cell %d has index %d", i, c.Index)
				}
				if !c.Exp.Grid.Empty() {
					t.Errorf("cell %d still has a grid", i)
				}
				got = append(got, axesString(c.Axes))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("cells\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestCellsResolve(t *testing.T) {
	e, err := Parse("exp.toml", []byte("[grid]\n\"model.num_flows\" = [0, 8]\n\"components.ode.options.rtol\" = [1e-3]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if cells[1].Exp.Model.NumFlows != 8 || cells[1].Exp.Components["ode"].Options["rtol"] != 1e-3 {
		t.Errorf("cell 1 not resolved: %+v", cells[1].Exp)
	}
	// Cells are copies: changing one changes neither the experiment nor the others.
	cells[0].Exp.Components["ode"].Options["rtol"] = 5.0
	if e.Components["ode"].Options["rtol"] != nil || cells[1].Exp.Components["ode"].Options["rtol"] != 1e-3 {
		t.Error("cells share state")
	}
	if bytes.Equal(cells[0].Exp.Canonical(), cells[1].Exp.Canonical()) {
		t.Error("different cells have the same canonical encoding")
	}
}

func TestCanonicalStable(t *testing.T) {
	a, err := Parse("a.toml", []byte("[components.ode]\noptions = { method = \"rk4\", rtol = 1e-3, atol = 1e-4 }\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.toml", []byte("name = \"other\"\ndescription = \"words\"\n[components.ode]\noptions = { atol = 1e-4, rtol = 1e-3, method = \"rk4\" }\n[run]\njobs = 4\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := a.Canonical()
	for i := 0; i < 20; i++ { // map iteration order differs from call to call
		if got := b.Canonical(); !bytes.Equal(got, want) {
			t.Fatalf("canonical bytes differ:\n%s\nvs\n%s", got, want)
		}
	}
	c, _ := Parse("c.toml", []byte("[components.ode]\noptions = { method = \"rk4\", rtol = 1e-3, atol = 1e-5 }\n"), nil)
	if bytes.Equal(c.Canonical(), want) {
		t.Error("a different option value gives the same canonical bytes")
	}
	// The canonical form is itself a valid experiment body with the same meaning.
	d, err := Parse("a.toml", want, nil)
	if err != nil {
		t.Fatalf("canonical form does not parse: %v", err)
	}
	if !bytes.Equal(d.Canonical(), want) {
		t.Errorf("canonical form does not round-trip:\n%s", d.Canonical())
	}
}

// fakeDescribe describes built-ins with options like the real plugins'.
func fakeDescribe(kind, impl string, _ map[string]string) (*stage.Description, error) {
	opts := map[string][]stage.OptionSpec{
		"flows": {{Name: "share_params", Type: "bool", Default: "true"}},
		"ode": {
			{Name: "method", Type: "string", Default: "dopri5", Choices: []string{"euler", "midpoint", "heun", "rk4", "bosh3", "dopri5"}},
			{Name: "rtol", Type: "float", Default: "1e-3"},
			{Name: "atol", Type: "float", Default: "1e-3"},
		},
		"attention": {
			{Name: "pattern", Type: "string", Default: "all", Choices: []string{"all", "window"}},
			{Name: "window", Type: "int", Default: "256"},
		},
		"liquid": {{Name: "method", Type: "string", Default: "dopri5"}},
	}
	switch impl {
	case DefaultImpl[kind]:
		return &stage.Description{Kind: kind, Name: impl, Options: opts[kind]}, nil
	case "./bin/" + kind + "-plain":
		return &stage.Description{Kind: kind, Name: impl}, nil
	}
	return nil, fmt.Errorf("no %s implementation named %q", kind, impl)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		src  string
		sets []string
	}{
		{"defaults filled", "", nil},
		{"given options typed", "[components.ode]\noptions = { method = \"rk4\", rtol = 1, atol = 1e-6 }\n[components.attention]\noptions = { window = 64 }\n", nil},
		{"grid on options", "[grid]\n\"components.ode.options.method\" = [\"euler\", \"rk4\"]\n", nil},
		{"grid on impl", "[grid]\n\"components.liquid.impl\" = [\"ltc\", \"./bin/liquid-plain\"]\n", nil},
		{"unknown impl", "[components.ode]\nimpl = \"odefun\"\n", nil},
		{"unknown option", "[components.ode]\noptions = { methd = \"rk4\" }\n", nil},
		{"not a choice", "[components.ode]\noptions = { method = \"rk5\" }\n", nil},
		{"wrong option type", "[components.attention]\noptions = { window = \"wide\" }\n", nil},
		{"float for int option", "[components.attention]\noptions = { window = 6.5 }\n", nil},
		{"string for bool option", "", []string{"components.flows.options.share_params=yes"}},
		{"grid cell bad choice", "[grid]\n\"components.ode.options.method\" = [\"rk4\", \"rk9\"]\n", nil},
		{"option unknown to a grid impl", "[components.liquid]\noptions = { method = \"rk4\" }\n[grid]\n\"components.liquid.impl\" = [\"ltc\", \"./bin/liquid-plain\"]\n", nil},
	}
	var out bytes.Buffer
	for _, tc := range tests {
		e, err := Parse("exp.toml", []byte(tc.src), tc.sets)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fmt.Fprintf(&out, "=== %s\n", tc.name)
		if err := e.Validate(fakeDescribe); err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
			continue
		}
		cells, err := e.Cells()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, c := range cells {
			for _, kind := range stage.Kinds {
				fmt.Fprintf(&out, "cell %d %s: %s\n", c.Index, kind, c.Exp.StageConfig(kind).String())
			}
		}
	}
	golden.Check(t, "validate.golden", out.Bytes())
}

func TestFillerNeedsPasskeySource(t *testing.T) {
	if _, err := Parse("exp.toml", []byte("[data]\nfiller = \"goroot\"\n"), nil); err == nil || !strings.Contains(err.Error(), "data.filler") {
		t.Errorf("data.filler with the builtin source: %v", err)
	}
	if _, err := Parse("exp.toml", []byte("[data]\nsource = \"task:passkey\"\nfiller = \"goroot\"\n[train]\nobjective = \"next_token\"\n"), nil); err != nil {
		t.Errorf("data.filler with task:passkey: %v", err)
	}
}

func TestValidateIdempotent(t *testing.T) {
	e, err := Parse("exp.toml", []byte("[components.ode]\noptions = { rtol = 1 }\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := e.Validate(fakeDescribe); err != nil {
			t.Fatal(err)
		}
	}
	got := e.StageConfig("ode")
	want := stage.Config{
		Dims: map[string]int{"vocab_size": 32000, "embedding_dim": 512, "latent_dim": 128,
			"hidden_size": 256, "hidden_dim": 128, "num_flows": 4},
		Options: map[string]string{"method": "dopri5", "rtol": "1", "atol": "0.001"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StageConfig = %+v, want %+v", got, want)
	}
	if v := e.Components["ode"].Options["rtol"]; v != 1.0 {
		t.Errorf("rtol = %#v, want float64 1", v)
	}
}

func TestDryRun(t *testing.T) {
	e, err := Load("../../experiments/ablation-ode.toml", []string{"train.steps=5"})
	if err != nil {
		t.Fatal(err)
	}
	e.File = "experiments/ablation-ode.toml" // independent of where the test runs
	if err := e.Validate(fakeDescribe); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := DryRun(&out, e); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "dryrun.golden", out.Bytes())
}

func TestKeyLines(t *testing.T) {
	src := `# comment with [brackets] and key = 1
name = "x" # trailing
s = """multi
line = "not a key"
"""
l = '''one\n'''
[model]
  num_flows = 4
  "quoted.key" = 1
a.b.c = [1,
  2, { inner = 3 },
]
[components.ode]
options = { method = "rk4", rtol = 1e-3 }
[[grid.paired]]
x = [1]
[[grid.paired]]
y = [2]
[grid.paired.sub]
z = 1
`
	lines := keyLines([]byte(src))
	tests := []struct {
		path []string
		want int
	}{
		{[]string{"name"}, 2},
		{[]string{"s"}, 3},
		{[]string{"line"}, 0},
		{[]string{"l"}, 6},
		{[]string{"model"}, 7},
		{[]string{"model", "num_flows"}, 8},
		{[]string{"model", "quoted.key"}, 9},
		{[]string{"model", "a", "b", "c"}, 10},
		{[]string{"model", "a", "b", "c", "#2", "inner"}, 11},
		{[]string{"components", "ode", "options", "rtol"}, 14},
		{[]string{"grid", "paired", "#0", "x"}, 16},
		{[]string{"grid", "paired", "#1", "y"}, 18},
		{[]string{"grid", "paired", "#1", "sub", "z"}, 20},
	}
	for _, tc := range tests {
		if got := lines[joinKey(tc.path)]; got != tc.want {
			t.Errorf("line of %q = %d, want %d", tc.path, got, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("err = %v, want a wrapped not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// FuzzParse checks that no input makes Parse, Cells, Validate or DryRun panic.
func FuzzParse(f *testing.F) {
	for _, tc := range errorCases {
		f.Add(tc.src, strings.Join(tc.sets, "\n"))
	}
	files, _ := filepath.Glob("../../experiments/*.toml")
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(string(data), "train.steps=3")
		}
	}
	f.Fuzz(func(t *testing.T, src, sets string) {
		var overrides []string
		if sets != "" {
			overrides = strings.Split(sets, "\n")
		}
		e, err := Parse("fuzz.toml", []byte(src), overrides)
		if err != nil {
			return
		}
		if err := e.Validate(fakeDescribe); err != nil {
			return
		}
		_ = e.Canonical()
		_ = DryRun(&bytes.Buffer{}, e)
	})
}

// TestDocExample parses the example file of the package manual: it must be
// valid, list the true defaults and have the number of cells the manual says.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "// # An experiment file\n")
	if !ok {
		t.Fatal("doc.go has no example file section")
	}
	var src strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		if strings.HasPrefix(line, "// #") {
			break
		}
		if l, ok := strings.CutPrefix(line, "//\t"); ok {
			src.WriteString(l + "\n")
		} else if line == "//" {
			src.WriteString("\n")
		}
	}
	e, err := Parse("quickstart.toml", []byte(src.String()), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, src.String())
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 20 {
		t.Errorf("%d cells, the manual says 20", len(cells))
	}
	d := Default()
	got := []any{e.Seed, e.Repeats, e.Model, e.Data, e.Train, e.Eval, e.Bench, e.Run}
	want := []any{d.Seed, d.Repeats, d.Model, d.Data, d.Train, d.Eval, d.Bench, d.Run}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the manual's defaults\n%+v\ndiffer from Default()\n%+v", got, want)
	}
	for kind, c := range e.Components {
		if c.Impl != d.Components[kind].Impl {
			t.Errorf("components.%s.impl = %q, default %q", kind, c.Impl, d.Components[kind].Impl)
		}
	}
}

// seed is the model seed; data.seed (0: seed) the data's. Changing seed by
// -set or a grid axis keeps the file's data seed, as repeats do, and leaves
// the canonical form of a file that does neither as it was.
func TestDataSeed(t *testing.T) {
	base := "seed = 3\nrepeats = 2\n"
	e, err := Parse("s.toml", []byte(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.DataSeed() != 3 || strings.Contains(string(e.Canonical()), "data.seed") {
		t.Errorf("default: data seed %d, canonical has data.seed: %v", e.DataSeed(), strings.Contains(string(e.Canonical()), "data.seed"))
	}
	if strings.Contains("\n"+string(e.IdentityForm()), "\nrepeats = ") || !strings.Contains(string(e.Canonical()), "\nrepeats = 2\n") ||
		!strings.Contains(string(e.IdentityForm()), "\nbench.repeats = 3\n") {
		t.Errorf("repeats must be in the canonical form only, not in the identity form")
	}
	e, err = Parse("s.toml", []byte(base), []string{"seed=4"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seed != 4 || e.DataSeed() != 3 || !strings.Contains(string(e.Canonical()), "data.seed = 3\n") {
		t.Errorf("-set seed=4: seed %d data seed %d, want 4 and the file's 3", e.Seed, e.DataSeed())
	}
	e, err = Parse("s.toml", []byte(base+"[data]\nseed = 7\n"), []string{"seed=4"})
	if err != nil {
		t.Fatal(err)
	}
	if e.DataSeed() != 7 {
		t.Errorf("data.seed = 7, -set seed=4: data seed %d, want 7", e.DataSeed())
	}
	e, err = Parse("s.toml", []byte(base+"[grid]\nseed = [3, 5]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := e.Cells()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		if c.Exp.DataSeed() != 3 {
			t.Errorf("grid cell seed %d: data seed %d, want 3", c.Exp.Seed, c.Exp.DataSeed())
		}
	}
}

// TestHeadPrecision checks model.head_precision: "fp32" (the default, spelled
// out or not) leaves the canonical form as it was before the setting existed,
// "bf16" enters it (and round-trips), and other values are refused.
func TestHeadPrecision(t *testing.T) {
	base, err := Parse("a.toml", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if base.Model.HeadPrecision != HeadFP32 {
		t.Errorf("default head_precision %q, want fp32", base.Model.HeadPrecision)
	}
	if bytes.Contains(base.Canonical(), []byte("head_precision")) {
		t.Errorf("the default head precision is in the canonical form:\n%s", base.Canonical())
	}
	fp, err := Parse("a.toml", []byte("[model]\nhead_precision = \"fp32\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fp.Canonical(), base.Canonical()) {
		t.Error("head_precision = \"fp32\" spelled out changes the canonical form")
	}
	bf, err := Parse("a.toml", nil, []string{"model.head_precision=bf16"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bf.Canonical(), []byte("model.head_precision = \"bf16\"\n")) {
		t.Errorf("bf16 is not in the canonical form:\n%s", bf.Canonical())
	}
	rt, err := Parse("a.toml", bf.Canonical(), nil)
	if err != nil || !bytes.Equal(rt.Canonical(), bf.Canonical()) {
		t.Errorf("bf16 canonical form does not round-trip (%v)", err)
	}
	if _, err := Parse("a.toml", []byte("[model]\nhead_precision = \"fp16\"\n"), nil); err == nil || !strings.Contains(err.Error(), "head_precision") {
		t.Errorf("head_precision = \"fp16\": error %v, want one naming model.head_precision", err)
	}
}
