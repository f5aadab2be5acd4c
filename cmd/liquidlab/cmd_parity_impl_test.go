package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestParityImpl runs the seed fixture (rk4) through the gorgonia-graph flows
// and ODE (-impl flows=coupling-graph,ode=odefunc-graph) and checks that -impl
// refuses a bad value; a built-in of the wrong architecture fails to load the
// fixture, which shows the flag does swap the stage.
func TestParityImpl(t *testing.T) {
	fixture := "../../testdata/fixtures/seed_rk4.safetensors"
	var out bytes.Buffer
	if err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-q", "-impl", "flows=coupling-graph,ode=odefunc-graph", fixture}); err != nil {
		t.Fatalf("parity -impl flows=coupling-graph,ode=odefunc-graph: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Errorf("no PASS line:\n%s", out.String())
	}
	for _, bad := range []string{"flows", "flows=nope", "nokind=coupling"} {
		out.Reset()
		if err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-impl", bad, fixture}); err == nil {
			t.Errorf("-impl %q accepted", bad)
		}
	}
	out.Reset()
	if err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-q", "-impl", "flows=realnvp", fixture}); err == nil {
		t.Errorf("-impl flows=realnvp passed the coupling fixture; the flag does not swap the stage")
	}
}

// TestParityImplAttentionGraph runs the attention stage fixtures (window, and
// full with two heads, chunked) through the gorgonia-graph attention
// (-impl attention=causal-graph), and checks that the pattern it does not
// write as a graph (linear) is refused with an error naming the option.
func TestParityImplAttentionGraph(t *testing.T) {
	for _, f := range []string{"attn_window", "attn_full_h2"} {
		fixture := "../../testdata/fixtures/attention/" + f + ".safetensors"
		var out bytes.Buffer
		if err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-impl", "attention=causal-graph", fixture}); err != nil {
			t.Fatalf("parity -impl attention=causal-graph %s: %v\n%s", f, err, out.String())
		}
		if !strings.Contains(out.String(), "PASS") || !strings.Contains(out.String(), "attention/causal-graph") || !strings.Contains(out.String(), "chunked") {
			t.Errorf("%s: no PASS line through causal-graph with a chunked pass:\n%s", f, out.String())
		}
	}
	var out bytes.Buffer
	err := run(&env{stdout: &out, stderr: &out}, []string{"parity", "-impl", "attention=causal-graph", "../../testdata/fixtures/attention/attn_linear_h2.safetensors"})
	if err == nil || !strings.Contains(err.Error(), "pattern") {
		t.Errorf("linear fixture through causal-graph: err %v, want a refusal naming option pattern", err)
	}
}
