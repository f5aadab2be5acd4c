package model_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"liquidlab/framework/model"
)

// TestParityFixtures runs every PyTorch fixture in testdata through the
// in-process seed stages: outputs within 1e-4 and gradients within 1e-3
// relative, the tolerances of `liquidlab parity` (whose own test runs the CLI).
func TestParityFixtures(t *testing.T) {
	fixtures, _ := filepath.Glob("../../testdata/fixtures/*.safetensors")
	extra, _ := filepath.Glob("../../testdata/fixtures/extra/*.safetensors")
	if len(fixtures) < 3 || len(extra) < 7 {
		t.Fatalf("found %d fixtures in testdata/fixtures and %d in extra/", len(fixtures), len(extra))
	}
	for _, path := range append(fixtures, extra...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			fx, err := model.LoadFixture(path)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := model.RunParity(context.Background(), fx, seedStages(t), 1e-4, 1e-3)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Grads) == 0 {
				t.Fatal("no gradient compared")
			}
			if !rep.OK() {
				var b strings.Builder
				rep.Print(&b)
				t.Errorf("out of tolerance:\n%s", b.String())
			}
		})
	}
}

// TestParityCatchesAWrongModel checks the check: perturbing one parameter of
// the fixture must make its outputs fail, so the test above cannot pass
// vacuously.
func TestParityCatchesAWrongModel(t *testing.T) {
	fx, err := model.LoadFixture("../../testdata/fixtures/seed_rk4.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	w := fx.Params["output_proj.bias"]
	if w == nil {
		t.Fatal("fixture lacks output_proj.bias")
	}
	w = w.Clone()
	w.Data[0] += 0.5
	fx.Params["output_proj.bias"] = w
	rep, err := model.RunParity(context.Background(), fx, seedStages(t), 1e-4, 1e-3)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Error("a model with a changed output bias passed the parity check")
	}
}
