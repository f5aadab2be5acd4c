package plugin

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// TestDoorbell: with the shared-memory transport Forward and Backward go over
// the doorbell (same results as gRPC, TestRoundTripSameInEveryMode); a call
// whose caller gives up retires the doorbell, the plugin's stage sees its
// context cancelled, and later calls go over gRPC; LIQUIDLAB_PLUGIN_DOORBELL=0
// turns it off.
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
	if !c.bell.retired.Load() {
		t.Fatal("the doorbell is still used after a call on it was abandoned")
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the stage did not see its context cancelled within 5 s")
		}
	}
	roundTrip(t, c) // over gRPC now

	t.Setenv("LIQUIDLAB_PLUGIN_DOORBELL", "0")
	c2 := launch(t, testOptions(TransportShm))
	if c2.bell != nil {
		t.Fatal("LIQUIDLAB_PLUGIN_DOORBELL=0 left the doorbell on")
	}
	roundTrip(t, c2)
}
