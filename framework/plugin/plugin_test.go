package plugin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// The test binary is its own plugin: `<test binary> plugintest serve` serves
// scaleStage, `serve-v2` serves it with the next protocol version, and `host`
// launches a plugin, prints its pid and shared-memory directory, and waits to
// be killed.
func TestMain(m *testing.M) {
	if len(os.Args) >= 3 && os.Args[1] == "plugintest" {
		switch os.Args[2] {
		case "serve":
			serve(stage.KindFlows, &scaleStage{}, ProtocolVersion)
		case "serve-v2":
			serve(stage.KindFlows, &scaleStage{}, ProtocolVersion+1)
		case "noisy":
			noisyPlugin()
		case "slowstart":
			time.Sleep(time.Hour)
		case "exit":
			os.Exit(0)
		case "sleeper":
			time.Sleep(time.Hour)
		case "hostloop":
			hostLoop()
		case "closerace":
			if err := closeRace(); err != nil {
				fmt.Println("error:", err)
				os.Exit(1)
			}
		case "host":
			c, err := Launch(context.Background(), testOptions(TransportShm))
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Printf("%d %s\n", c.PID(), c.dir)
			select {}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// scaleStage is y = w[0]·x with a parameter w of any shape, a counter state n
// and a backward pass; cfg.Options["mode"] makes it misbehave.
type scaleStage struct{ stage.Handles }

type scaleSaved struct {
	x     *tensor.Tensor // kept aliased: the host must pin it
	w0    float32
	shape []int
}

func (s *scaleStage) Describe(_ context.Context, cfg stage.Config) (*stage.Description, error) {
	return &stage.Description{Kind: stage.KindFlows, Name: "scale", Version: "1",
		Params:  []stage.ParamSpec{{Name: "w", Shape: []int{2, 2}, Init: "ones", Aliases: []string{"v"}}},
		State:   []stage.StateSpec{{Name: "n", Shape: []int{}}},
		Options: []stage.OptionSpec{{Name: "mode", Type: "string", Choices: []string{"", "crash", "hang", "error", "panic"}}},
		Inputs:  []string{"x"}, Outputs: []string{"y"},
		// Carried over the wire (TestRoundTripSameInEveryMode compares it).
		Memory: &stage.MemoryHint{Saved: 3, Work: 2, Row: 7}}, nil
}

func (s *scaleStage) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	switch cfg.Options["mode"] {
	case "waitctx": // until the call is cancelled, then leave a mark
		<-ctx.Done()
		_ = os.WriteFile(cfg.Options["mark"], []byte("cancelled"), 0o600)
		return nil, ctx.Err()
	case "crash":
		fmt.Fprintln(os.Stderr, "about to crash")
		go func() { panic("boom: the test stage crashed") }()
		select {}
	case "hang":
		select {}
	case "crash-leaving-child": // a child in its own session keeps stdout and stderr open
		cmd := exec.Command("sleep", "60")
		cmd.Stdout, cmd.Stderr = os.NewFile(1, "stdout"), os.NewFile(2, "stderr") // the host's pipes, not go-plugin's redirection
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err == nil {
			_ = os.WriteFile(cfg.Options["mark"], []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		}
		os.Exit(3)
	case "error":
		return nil, errors.New("the test stage refuses to run with mode=error")
	case "panic":
		panic("boom in Forward")
	}
	x, err := req.Inputs.Need("x")
	if err != nil {
		return nil, err
	}
	w, err := req.Params.Need("w")
	if err != nil {
		return nil, err
	}
	if len(w.Data) == 0 {
		return nil, errors.New("parameter w is empty")
	}
	y := tensor.New(x.Shape...)
	for i, v := range x.Data {
		y.Data[i] = w.Data[0] * v
	}
	n := float32(0)
	if t, ok := req.State["n"]; ok && len(t.Data) == 1 {
		n = t.Data[0]
	}
	res := &stage.ForwardResult{Outputs: tensor.Map{"y": y}, State: tensor.Map{"n": tensor.From([]float32{n + 1})},
		Stats: map[string]float64{"calls": 1}}
	if req.NeedGrad {
		res.Handle = s.Put(&scaleSaved{x: x, w0: w.Data[0], shape: w.Shape})
	}
	return res, nil
}

func (s *scaleStage) Backward(_ context.Context, handle uint64, g tensor.Map) (*stage.BackwardResult, error) {
	v, err := s.Take(handle)
	if err != nil {
		return nil, err
	}
	sv := v.(*scaleSaved)
	gy, err := g.Need("y", sv.x.Shape...)
	if err != nil {
		return nil, err
	}
	dx := tensor.New(sv.x.Shape...)
	dw := tensor.New(sv.shape...)
	for i, v := range gy.Data {
		dx.Data[i] = sv.w0 * v
		dw.Data[0] += v * sv.x.Data[i]
	}
	return &stage.BackwardResult{InputGrads: tensor.Map{"x": dx}, ParamGrads: tensor.Map{"w": dw}}, nil
}

func (s *scaleStage) Release(_ context.Context, handle uint64) error {
	s.Drop(handle)
	return nil
}

func testOptions(transport string) Options {
	return Options{Kind: stage.KindFlows, Name: "scale", Path: os.Args[0], Args: []string{"plugintest", "serve"},
		Transport: transport, CallTimeout: 20 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Error})}
}

func launch(t testing.TB, o Options) *Client {
	t.Helper()
	c, err := Launch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func randTensor(r *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = r.Float32()*2 - 1
	}
	return t
}

// pidGone reports whether a process no longer runs (gone or a zombie).
func pidGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func waitGone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if pidGone(pid) {
			return true
		}
	}
	return pidGone(pid)
}

// roundTrip runs Describe, two forwards with gradients, a backward and a release.
func roundTrip(t *testing.T, s stage.Stage) []any {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewSource(1))
	cfg := stage.Config{Dims: map[string]int{"hidden_size": 4}, Options: map[string]string{"mode": ""}}
	d, err := s.Describe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := randTensor(r, 2, 2)
	x1, x2 := randTensor(r, 3, 5), randTensor(r, 3, 5)
	x1c := x1.Clone()
	f1, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: tensor.Map{"w": w}, Inputs: tensor.Map{"x": x1}, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	// A second forward must not disturb what the first saved under its handle.
	f2, err := s.Forward(ctx, cfg, &stage.ForwardRequest{Params: tensor.Map{"w": w}, Inputs: tensor.Map{"x": x2}, State: f1.State, NeedGrad: true})
	if err != nil {
		t.Fatal(err)
	}
	g := randTensor(r, 3, 5)
	b1, err := s.Backward(ctx, f1.Handle, tensor.Map{"y": g})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, f2.Handle); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x1, x1c) {
		t.Error("Forward modified its input")
	}
	want := float32(0)
	for i := range g.Data {
		want += g.Data[i] * x1.Data[i]
	}
	if got := b1.ParamGrads["w"].Data[0]; got != want {
		t.Errorf("dw[0] = %v, want %v (the saved input was overwritten?)", got, want)
	}
	f1.Handle, f2.Handle = 0, 0
	return []any{d, f1, f2, b1}
}

func TestRoundTripSameInEveryMode(t *testing.T) {
	want := roundTrip(t, &scaleStage{})
	for _, tr := range []string{TransportShm, TransportBytes} {
		t.Run(tr, func(t *testing.T) {
			c := launch(t, testOptions(tr))
			if c.Transport() != tr {
				t.Fatalf("transport = %s, want %s", c.Transport(), tr)
			}
			got := roundTrip(t, c)
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("result %d differs from in process:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestLargeTensor(t *testing.T) {
	x := tensor.New(32768, 512) // 64 MiB
	for i := range x.Data {
		x.Data[i] = float32(i % 1000)
	}
	for _, tr := range []string{TransportShm, TransportBytes} {
		t.Run(tr, func(t *testing.T) {
			o := testOptions(tr)
			// 64 MiB through gRPC bytes takes seconds, tens of them when the
			// machine is loaded: the call timeout is not what this test checks.
			o.CallTimeout = 5 * time.Minute
			c := launch(t, o)
			for range 2 { // the second call reuses the grown region
				res, err := c.Forward(context.Background(), stage.Config{},
					&stage.ForwardRequest{Params: tensor.Map{"w": tensor.From([]float32{2})}, Inputs: tensor.Map{"x": x}})
				if err != nil {
					t.Fatal(err)
				}
				y := res.Outputs["y"]
				if !tensor.SameShape(y.Shape, x.Shape) {
					t.Fatalf("shape %v", y.Shape)
				}
				for i, v := range y.Data {
					if v != 2*x.Data[i] {
						t.Fatalf("y[%d] = %v, want %v", i, v, 2*x.Data[i])
					}
				}
			}
		})
	}
}

func TestSHA256Pin(t *testing.T) {
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	o := testOptions(TransportShm)
	o.SHA256 = hex.EncodeToString(sum[:])
	launch(t, o)

	o.SHA256 = strings.Repeat("ab", 32)
	_, err = Launch(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "has sha256 "+hex.EncodeToString(sum[:])) ||
		!strings.Contains(err.Error(), "pins "+o.SHA256) || !strings.Contains(err.Error(), "rebuild the plugin or update the pin") {
		t.Fatalf("wrong pin: err = %v", err)
	}
	o.SHA256 = "xyz"
	if _, err = Launch(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not 64 hex digits") {
		t.Fatalf("bad pin: err = %v", err)
	}
}

func TestCrashMidCall(t *testing.T) {
	c := launch(t, testOptions(TransportShm))
	pid := c.PID()
	_, err := c.Forward(context.Background(), stage.Config{Options: map[string]string{"mode": "crash"}},
		&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"plugin flows/scale at " + os.Args[0], "exited during Forward", "exit status 2", "panic: boom: the test stage crashed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if !waitGone(pid, 5*time.Second) {
		t.Error("crashed plugin still listed")
	}
	if _, err := c.Describe(context.Background(), stage.Config{}); err == nil || !strings.Contains(err.Error(), "exited during Forward") {
		t.Errorf("call after crash: %v", err)
	}
	roundTrip(t, launch(t, testOptions(TransportShm))) // the host carries on
}

func TestHangIsKilled(t *testing.T) {
	o := testOptions(TransportShm)
	o.CallTimeout = 300 * time.Millisecond
	c := launch(t, o)
	pid := c.PID()
	_, err := c.Forward(context.Background(), stage.Config{Options: map[string]string{"mode": "hang"}},
		&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
	if err == nil || !strings.Contains(err.Error(), "did not finish Forward within the call timeout of 300ms, so it was killed") {
		t.Fatalf("err = %v", err)
	}
	if !waitGone(pid, 5*time.Second) {
		t.Error("hung plugin still runs")
	}
}

func TestStageErrors(t *testing.T) {
	c := launch(t, testOptions(TransportShm))
	for mode, want := range map[string]string{
		"error": "Forward failed: the test stage refuses to run with mode=error",
		"panic": "Forward failed: the stage panicked in Forward: boom in Forward",
	} {
		_, err := c.Forward(context.Background(), stage.Config{Options: map[string]string{"mode": mode}},
			&stage.ForwardRequest{Inputs: tensor.Map{"x": tensor.New(2)}})
		var se *StageError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "plugin flows/scale at ") {
			t.Errorf("mode %s: err = %v", mode, err)
		}
	}
	if _, err := c.Backward(context.Background(), 12345, nil); err == nil || !strings.Contains(err.Error(), "unknown or already released handle 12345") {
		t.Errorf("bad handle: err = %v", err)
	}
	roundTrip(t, c) // still usable
}

func TestProtocolMismatch(t *testing.T) {
	o := testOptions(TransportShm)
	o.Args = []string{"plugintest", "serve-v2"}
	_, err := Launch(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "speaks liquidlab plugin protocol version 2, this liquidlab speaks version 1: rebuild") {
		t.Fatalf("err = %v", err)
	}
}

func TestLaunchErrors(t *testing.T) {
	o := testOptions(TransportShm)
	o.Kind = stage.KindODE
	if _, err := Launch(context.Background(), o); err == nil || !strings.Contains(err.Error(), `serves stages of kind "flows", not "ode"`) {
		t.Errorf("wrong kind: err = %v", err)
	}
	o = testOptions(TransportShm)
	o.Path = "/nonexistent/plugin"
	if _, err := Launch(context.Background(), o); err == nil || !strings.Contains(err.Error(), "cannot be run") {
		t.Errorf("missing binary: err = %v", err)
	}
	o = testOptions(TransportShm)
	o.Args = []string{"plugintest", "nosuchmode"} // exits at once
	if _, err := Launch(context.Background(), o); err == nil || !strings.Contains(err.Error(), "exited before it finished starting (exit status 0)") {
		t.Errorf("plugin exits at start: err = %v", err)
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	c := launch(t, testOptions(TransportShm))
	roundTrip(t, c)
	dir, pid := c.dir, c.PID()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !pidGone(pid) {
		t.Error("plugin process left after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("shared memory %s left after Close: %v", dir, err)
	}
	if _, err := c.Describe(context.Background(), stage.Config{}); err == nil || !strings.Contains(err.Error(), "was closed") {
		t.Errorf("call after Close: %v", err)
	}
}

func TestKilledHostTakesPluginAlong(t *testing.T) {
	host := exec.Command(os.Args[0], "plugintest", "host")
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		t.Fatalf("host said %q", line)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("host said %q", line)
	}
	if pidGone(pid) {
		t.Fatal("plugin not running")
	}
	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	if !waitGone(pid, 10*time.Second) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("plugin still runs 10s after its host was killed")
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(f[1]); os.IsNotExist(err) {
			return
		}
	}
	t.Errorf("shared memory %s left after the host was killed", f[1])
}

func BenchmarkForward(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	req := &stage.ForwardRequest{Params: tensor.Map{"w": randTensor(r, 256, 256)}, Inputs: tensor.Map{"x": randTensor(r, 4096, 256)}}
	run := func(b *testing.B, s stage.Stage) {
		b.SetBytes(4 * 4096 * 256)
		for b.Loop() {
			if _, err := s.Forward(context.Background(), stage.Config{}, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("inprocess", func(b *testing.B) { run(b, &scaleStage{}) })
	b.Run("shm", func(b *testing.B) { run(b, launch(b, testOptions(TransportShm))) })
	b.Run("bytes", func(b *testing.B) { run(b, launch(b, testOptions(TransportBytes))) })
}

// TestProfileAndTraceFiles: LIQUIDLAB_PLUGIN_CPUPROFILE and
// LIQUIDLAB_PLUGIN_TRACE make a plugin write a CPU profile (gzip) and a Go
// execution trace ("go 1.…" header) named after its kind and pid, complete
// once the plugin is closed.
func TestProfileAndTraceFiles(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LIQUIDLAB_PLUGIN_CPUPROFILE", dir)
	t.Setenv("LIQUIDLAB_PLUGIN_TRACE", dir)
	c := launch(t, testOptions(TransportShm))
	if _, err := c.Forward(context.Background(), stage.Config{},
		&stage.ForwardRequest{Params: tensor.Map{"w": tensor.From([]float32{2})}, Inputs: tensor.Map{"x": tensor.From([]float32{1, 2, 3}, 3)}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, ext := range []string{".prof", ".trace"} {
		m, _ := filepath.Glob(filepath.Join(dir, stage.KindFlows+"-*"+ext))
		if len(m) != 1 {
			t.Fatalf("%s files: %v", ext, m)
		}
		b, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		ok := len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b // gzip
		if ext == ".trace" {
			ok = strings.HasPrefix(string(b), "go 1.")
		}
		if !ok {
			t.Errorf("%s: %d bytes, not a %s file", m[0], len(b), ext)
		}
	}
}

// TestPinnedWorkers: on a machine with two or more CPUs a plugin process runs
// its parallel sections on worker threads pinned one per CPU (num.PinWorkers);
// LIQUIDLAB_PLUGIN_PIN=0, in its environment (Options.Env) or the host's, turns
// that off.
func TestPinnedWorkers(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.NumCPU() < 2 {
		t.Skip("needs Linux and two CPUs")
	}
	pinnedThreads := func(env ...string) int {
		o := testOptions(TransportShm)
		o.Env = env
		c := launch(t, o)
		defer c.Close()
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", c.PID()))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of plugin %d: %v", c.PID(), err)
		}
		n := 0
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread exited
			}
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok && !strings.ContainsAny(strings.TrimSpace(v), ",-") {
					n++
				}
			}
		}
		return n
	}
	if n := pinnedThreads(); n < 1 {
		t.Errorf("plugin has %d threads pinned to one CPU, want at least 1 worker", n)
	}
	if n := pinnedThreads("LIQUIDLAB_PLUGIN_PIN=0"); n != 0 {
		t.Errorf("with Options.Env LIQUIDLAB_PLUGIN_PIN=0 the plugin has %d pinned threads", n)
	}
	t.Setenv("LIQUIDLAB_PLUGIN_PIN", "0")
	if n := pinnedThreads(); n != 0 {
		t.Errorf("with LIQUIDLAB_PLUGIN_PIN=0 the plugin has %d pinned threads", n)
	}
}
