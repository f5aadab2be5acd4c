package plugin

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestDoorbell: with the shared-memory transport Forward and Backward go over
// the doorbell (same results as gRPC, TestRoundTripSameInEveryMode); a call
// whose caller gives up keeps later calls on gRPC until the plugin has
// answered it, and the plugin's stage sees its context cancelled;
// LIQUIDLAB_PLUGIN_DOORBELL=0 turns it off.
func TestDoorbell(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the doorbell needs Linux futexes")
	}
	c := launch(t, testOptions(TransportShm))
	if c.bell == nil {
		t.Fatal("no doorbell with the shared-memory transport")
	}
	want := roundTrip(t, launch(t, testOptions(TransportBytes)))
	before := c.bell.seq
	got := roundTrip(t, c)
	if n := c.bell.seq - before; n != 3 {
		t.Fatalf("%d calls went over the doorbell, want 3 (two Forward, one Backward)", n)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("over the doorbell:\n%+v\nover gRPC:\n%+v", got, want)
	}

	mark := filepath.Join(t.TempDir(), "mark")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Forward(ctx, stage.Config{Options: map[string]string{"mode": "waitctx", "mark": mark}},
		&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
	if err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("abandoned call: err = %v", err)
	}
	if c.bell.abandoned != c.bell.seq {
		t.Fatal("the abandoned call is not marked")
	}
	before = c.bell.seq
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the stage did not see its context cancelled within 5 s")
		}
	}
	// Once the plugin has answered the abandoned call the doorbell is free.
	for end := time.Now().Add(5 * time.Second); c.bell.word(dbResp).Load() != c.bell.seq; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the plugin did not answer the cancelled call within 5 s")
		}
	}
	roundTrip(t, c)
	if c.bell.seq != before+3 {
		t.Fatalf("after the abandoned call was answered %d calls went over the doorbell, want 3", c.bell.seq-before)
	}

	// A stage that never answers keeps every later call on gRPC.
	c3 := launch(t, testOptions(TransportShm))
	ctx3, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	if _, err := c3.Forward(ctx3, stage.Config{Options: map[string]string{"mode": "hang"}},
		&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}}); err == nil {
		t.Fatal("a hung call returned no error")
	}
	before = c3.bell.seq
	roundTrip(t, c3)
	if c3.bell.seq != before {
		t.Fatal("the doorbell was used while the plugin could still write an abandoned call's reply")
	}

	t.Setenv("LIQUIDLAB_PLUGIN_DOORBELL", "0")
	c2 := launch(t, testOptions(TransportShm))
	if c2.bell != nil {
		t.Fatal("LIQUIDLAB_PLUGIN_DOORBELL=0 left the doorbell on")
	}
	roundTrip(t, c2)
}

// TestCrashLeavingChild: a plugin that exits while a child it started keeps
// its stdout and stderr open (so go-plugin does not see it exit) still fails
// the call within seconds, over the doorbell and over gRPC.
func TestCrashLeavingChild(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	// Killing the plugin then waits for its pipes: bounded by these.
	g, w := stopGrace, stopWait
	stopGrace, stopWait = 300*time.Millisecond, 300*time.Millisecond
	t.Cleanup(func() { stopGrace, stopWait = g, w })
	for _, off := range []string{"1", "0"} {
		t.Run("doorbell="+off, func(t *testing.T) {
			t.Setenv("LIQUIDLAB_PLUGIN_DOORBELL", off)
			c := launch(t, testOptions(TransportShm))
			mark := filepath.Join(t.TempDir(), "child")
			t.Cleanup(func() {
				if b, err := os.ReadFile(mark); err == nil {
					if pid, err := strconv.Atoi(string(b)); err == nil {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			start := time.Now()
			_, err := c.Forward(context.Background(), stage.Config{Options: map[string]string{"mode": "crash-leaving-child", "mark": mark}},
				&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
			if err == nil || !strings.Contains(err.Error(), "exited during Forward") {
				t.Fatalf("err = %v", err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("the crash took %v to be reported", d)
			}
		})
	}
}
