package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// noisyPlugin (`plugintest noisy`) is a broken plugin binary: it starts a
// child that inherits its stdout and stderr, writes the child's pid to the file
// $LIQUIDLAB_TEST_CHILD_PID, prints a line that is not a handshake and keeps
// running.
func noisyPlugin() {
	child := exec.Command(os.Args[0], "plugintest", "sleeper")
	child.Stdout, child.Stderr = os.Stdout, os.Stderr
	if err := child.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Getenv("LIQUIDLAB_TEST_CHILD_PID"), []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("hello from a binary that is not a liquidlab plugin")
	select {}
}

// TestNonHandshakeLineDoesNotHang: go-plugin's Kill waits until the plugin's
// stdout and stderr close, which a child holding them puts off forever. Launch
// must fail within its bounds, with a sentence, and leave no process behind.
func TestNonHandshakeLineDoesNotHang(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	t.Setenv("LIQUIDLAB_TEST_CHILD_PID", pidFile)
	o := testOptions(TransportShm)
	o.Args = []string{"plugintest", "noisy"}
	var c *Client
	t.Cleanup(func() { // whatever happened, leave nothing running
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(string(b)); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if c != nil && c.PID() > 0 {
			syscall.Kill(c.PID(), syscall.SIGKILL)
		}
	})
	type result struct {
		c   *Client
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := Launch(context.Background(), o)
		res <- result{c, err}
	}()
	var r result
	select {
	case r = <-res:
	case <-time.After(stopGrace + stopWait + 10*time.Second):
		t.Fatal("Launch of a plugin that printed a non-handshake line did not return")
	}
	if r.c != nil {
		c = r.c
		t.Fatal("Launch succeeded")
	}
	if want := `printed "hello from a binary that is not a liquidlab plugin" instead of the plugin handshake, so it was stopped`; r.err == nil || !strings.Contains(r.err.Error(), want) {
		t.Errorf("err = %v, want it to contain %q", r.err, want)
	}
	t.Logf("Launch failed after %v: %v", time.Since(start).Round(time.Millisecond), r.err)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Errorf("the plugin's child %d still runs", pid)
	}
}

// lockedBuffer is a bytes.Buffer safe for go-plugin's writer goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCrashDumpLeftOut: a crashing plugin's goroutine dump reaches neither
// the host's log nor the raw stderr stream (the terminal in a run); the
// headline does, and the error quotes the report's first lines.
func TestCrashDumpLeftOut(t *testing.T) {
	var raw, log lockedBuffer
	o := testOptions(TransportShm)
	o.Stderr = &raw
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})
	c := launch(t, o)
	_, err := c.Forward(context.Background(), stage.Config{Options: map[string]string{"mode": "crash"}},
		&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
	if err == nil || !strings.Contains(err.Error(), "panic: boom: the test stage crashed") || !strings.Contains(err.Error(), "goroutine ") {
		t.Fatalf("err = %v, want the crash report's first lines", err)
	}
	for what, out := range map[string]string{"raw stderr": raw.String(), "host log": log.String()} {
		if !strings.Contains(out, "panic: boom: the test stage crashed") {
			t.Errorf("%s lacks the crash headline:\n%s", what, out)
		}
		if strings.Contains(out, "goroutine ") || strings.Contains(out, ".go:") {
			t.Errorf("%s shows the goroutine dump:\n%s", what, out)
		}
	}
}

// TestLaunchHonoursCancel: a signal while a plugin starts (a cancelled
// context) ends Launch within a second and leaves no process.
func TestLaunchHonoursCancel(t *testing.T) {
	o := testOptions(TransportShm)
	o.Args = []string{"plugintest", "slowstart"} // never answers the handshake
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	res := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := Launch(ctx, o)
		if c != nil {
			c.Close()
		}
		res <- err
	}()
	var err error
	select {
	case err = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("Launch did not return after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "start abandoned") {
		t.Errorf("err = %v, want the start abandoned: context canceled", err)
	}
	if d := time.Since(start); d > 1200*time.Millisecond {
		t.Errorf("Launch returned %v after the cancel", d-200*time.Millisecond)
	}
}
