package stagefix

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/safetensors"
	"liquidlab/framework/tensor"
	"liquidlab/plugins/attention/causal"
)

var shared = []string{"attn_full_h2", "attn_window", "attn_linear_h2"}

func path(name string) string {
	return filepath.Join("..", "..", "testdata", "fixtures", "attention", name+".safetensors")
}

// TestSharedFixtures runs the PyTorch fixtures (copies of
// shared/fixtures/attention) against the built-in causal stage.
func TestSharedFixtures(t *testing.T) {
	for _, name := range shared {
		t.Run(name, func(t *testing.T) {
			fx, err := Load(path(name))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), fx, causal.New(), 1e-4, 1e-3)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			rep.Print(&buf)
			if !rep.OK() {
				t.Errorf("out of tolerance:\n%s", buf.String())
			}
			// whole-pass outputs, every gradient (8 params + e), chunked outputs
			if want := 2 + 9 + 2; len(rep.Rows) != want {
				t.Errorf("%d rows, want %d:\n%s", len(rep.Rows), want, buf.String())
			}
		})
	}
}

// load returns a fixture file's parsed content for editing.
func load(t *testing.T, name string) *safetensors.File {
	t.Helper()
	f, err := safetensors.ReadFile(path(name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func write(t *testing.T, f *safetensors.File) string {
	t.Helper()
	raw, err := safetensors.Encode(f.Floats, f.Ints, f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "x.safetensors")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDetectsWrongValues: a reference output, gradient or chunked output off
// by more than the tolerance fails.
func TestDetectsWrongValues(t *testing.T) {
	for _, tc := range []struct {
		tensor string
		scale  float32
		row    string
	}{
		{"output.y", 1.001, "output.y"},
		{"grad.param.value.weight", 1.01, "grad.param.value.weight"},
		{"grad.input.e", 0.99, "grad.input.e"},
	} {
		f := load(t, "attn_window")
		for i := range f.Floats[tc.tensor].Data {
			f.Floats[tc.tensor].Data[i] *= tc.scale
		}
		fx, err := Load(write(t, f))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), fx, causal.New(), 1e-4, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Errorf("%s scaled by %g passed", tc.tensor, tc.scale)
		}
		for _, r := range rep.Rows {
			if r.Name == tc.row && r.Pass == "whole" && r.OK() {
				t.Errorf("%s scaled by %g: row ok (rel %g)", tc.tensor, tc.scale, r.Rel)
			}
		}
	}
	// a chunked pass that does not carry state would differ: give the file a
	// window larger than its chunks and check the chunked rows are compared
	f := load(t, "attn_window")
	f.Metadata["chunks"] = "[1,39]"
	fx, _ := Load(write(t, f))
	rep, err := Run(context.Background(), fx, causal.New(), 1e-4, 1e-3)
	if err != nil || !rep.OK() {
		t.Fatalf("chunks [1,39]: %v %v", err, rep)
	}
}

// TestMalformed: every defect is a one-line error naming the problem.
func TestMalformed(t *testing.T) {
	cases := []struct {
		name string
		edit func(f *safetensors.File)
		want string
	}{
		{"not stage", func(f *safetensors.File) { f.Metadata["fixture"] = "seed" }, "fixture"},
		{"bad kind", func(f *safetensors.File) { f.Metadata["kind"] = "attn" }, "kind"},
		{"no impl", func(f *safetensors.File) { delete(f.Metadata, "impl") }, "impl"},
		{"options json", func(f *safetensors.File) { f.Metadata["options"] = "{pattern" }, "options"},
		{"unknown option", func(f *safetensors.File) { f.Metadata["options"] = `{"pattern":"window","windw":"3"}` }, `"windw"`},
		{"bad option value", func(f *safetensors.File) { f.Metadata["options"] = `{"pattern":"wavy"}` }, "pattern"},
		{"dims json", func(f *safetensors.File) { f.Metadata["dims"] = `{"hidden_size":"x"}` }, "hidden_size"},
		{"chunks sum", func(f *safetensors.File) { f.Metadata["chunks"] = "[13,13]" }, "chunks"},
		{"chunks zero", func(f *safetensors.File) { f.Metadata["chunks"] = "[0,40]" }, "chunks"},
		{"chunks json", func(f *safetensors.File) { f.Metadata["chunks"] = "13,27" }, "chunks"},
		{"missing param", func(f *safetensors.File) { delete(f.Floats, "param.key.bias") }, "param.key.bias"},
		{"extra param", func(f *safetensors.File) { f.Floats["param.gate.weight"] = tensor.New(2) }, "param.gate.weight"},
		{"param shape", func(f *safetensors.File) { f.Floats["param.out.weight"] = tensor.New(16, 15) }, "param.out.weight"},
		{"unknown tensor", func(f *safetensors.File) { f.Floats["weights.x"] = tensor.New(1) }, "weights.x"},
		{"unknown input", func(f *safetensors.File) { f.Floats["input.z"] = tensor.New(1, 40, 16) }, "input.z"},
		{"unknown output", func(f *safetensors.File) { f.Floats["output.w"] = tensor.New(1, 16) }, "output.w"},
		{"input shape", func(f *safetensors.File) {
			f.Floats["input.e"] = tensor.New(1, 40, 17)
			f.Floats["grad.input.e"] = tensor.New(1, 40, 17)
		}, `"e"`},
		{"output shape", func(f *safetensors.File) {
			f.Floats["output.c"] = tensor.New(1, 17)
			f.Floats["cotangent.c"] = tensor.New(1, 17)
		}, "output.c"},
		{"cotangent shape", func(f *safetensors.File) { f.Floats["cotangent.y"] = tensor.New(1, 40, 15) }, "cotangent.y"},
		{"grad shape", func(f *safetensors.File) { f.Floats["grad.param.key.bias"] = tensor.New(15) }, "grad.param.key.bias"},
		{"int tensor", func(f *safetensors.File) {
			f.Ints = map[string]safetensors.IntTensor{"input.ids": {Shape: []int{1}, Data: []int64{1}}}
		}, "input.ids"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := load(t, "attn_window")
			tc.edit(f)
			fx, err := Load(write(t, f))
			if err == nil {
				_, err = Run(context.Background(), fx, causal.New(), 1e-4, 1e-3)
			}
			if err == nil {
				t.Fatalf("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line naming %s", msg, tc.want)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.safetensors")); err == nil {
		t.Error("missing file accepted")
	}
}
