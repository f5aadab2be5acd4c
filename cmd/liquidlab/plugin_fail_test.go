package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/plugin"
	"liquidlab/framework/stage"
	"liquidlab/plugins/attention/singlequery"
)

// misbehaving is an attention stage that crashes or hangs in Forward.
type misbehaving struct {
	*singlequery.Stage
	how string
}

func (m misbehaving) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if m.how == "hang" {
		time.Sleep(time.Hour)
	}
	os.Exit(3)
	return nil, nil
}

// serveMisbehaving is called from TestMain when the test binary is started as
// a plugin binary by path (through a script that sets the variable).
func serveMisbehaving() bool {
	how := os.Getenv("LIQUIDLAB_TEST_PLUGIN")
	if how == "" {
		return false
	}
	plugin.Serve(stage.KindAttention, misbehaving{singlequery.New(), how})
	return true
}

// TestBrokenPluginFailsOnlyItsCell runs a grid whose first cell uses a plugin
// binary that crashes (then one that hangs past run.call_timeout) and whose
// second cell uses the built-in attention: the first fails with a message that
// names the plugin, the second finishes, and no plugin process is left.
func TestBrokenPluginFailsOnlyItsCell(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"crash", "hang"} {
		dir := t.TempDir()
		script := filepath.Join(dir, "bad-attention")
		os.WriteFile(script, []byte("#!/bin/sh\nLIQUIDLAB_TEST_PLUGIN="+how+" exec "+exe+" \"$@\"\n"), 0o755)
		exp := filepath.Join(dir, "grid.toml")
		body := strings.Replace(tinyExperiment, `[run]
mode = "inprocess"`, `[run]
mode = "plugin"
call_timeout = "2s"`, 1)
		body = strings.Replace(body, `"model.num_flows" = [0, 2]`, `"components.attention.impl" = ["`+script+`", "singlequery"]`, 1)
		os.WriteFile(exp, []byte(body), 0o644)
		var out bytes.Buffer
		err := run(&env{stdout: &out, stderr: &out}, []string{"run", "-results", filepath.Join(dir, "results"), exp})
		if err == nil || !strings.Contains(err.Error(), "1 of 2 cells failed") {
			t.Fatalf("%s: want one failed cell, got %v\n%s", how, err, out.String())
		}
		t.Log(out.String())
		if !strings.Contains(out.String(), "bad-attention") || strings.Count(out.String(), ": done ") != 1 {
			t.Errorf("%s: the failure should name the plugin and the other cell finish:\n%s", how, out.String())
		}
	}
}
