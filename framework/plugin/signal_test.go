package plugin

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// hostLoop (`plugintest hostloop`) is a host that trains through a plugin
// until SIGINT or SIGTERM, then closes the plugin as a run does. Its stderr
// carries the plugin's (raw and logged); it prints "ready <pid> <dir>" once
// the plugin runs and exits 0 after a clean shutdown.
func hostLoop() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := testOptions(TransportShm)
	o.Stderr = os.Stderr
	o.Logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, Level: hclog.Warn})
	c, err := Launch(ctx, o)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d %s\n", c.PID(), c.dir)
	r := rand.New(rand.NewSource(1))
	x, g := randTensor(r, 512, 1024), randTensor(r, 512, 1024)
	w := tensor.From([]float32{2}, 1)
	for ctx.Err() == nil {
		f, err := c.Forward(ctx, stage.Config{}, &stage.ForwardRequest{Params: tensor.Map{"w": w}, Inputs: tensor.Map{"x": x}, NeedGrad: true})
		if err != nil {
			break
		}
		if _, err := c.Backward(ctx, f.Handle, tensor.Map{"y": g}); err != nil {
			break
		}
	}
	if ctx.Err() == nil {
		fmt.Println("error: a call failed before the signal")
		os.Exit(1)
	}
	if err := c.Close(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("closed")
}

// TestSignalsDuringTraining interrupts a host that trains through a plugin at
// random moments, sending the signal to its process group as a terminal does:
// the plugin never crashes, nothing but the host's own lines
// reaches its output, and neither the plugin nor its shared memory is left.
func TestSignalsDuringTraining(t *testing.T) {
	runs := 8
	if testing.Short() {
		runs = 2
	}
	r := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := range runs {
		sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}[i%2]
		delay := time.Duration(r.Intn(300)) * time.Millisecond
		host := exec.Command(os.Args[0], "plugintest", "hostloop")
		var errb lockedBuffer
		host.Stderr = &errb
		// As from a terminal: the signal goes to the host's process group.
		host.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := host.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := host.Start(); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(out)
		line, err := rd.ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 3 || f[0] != "ready" {
			host.Process.Kill()
			host.Wait()
			t.Fatalf("host said %q (%v)\n%s", line, err, errb.String())
		}
		pid, _ := strconv.Atoi(f[1])
		time.Sleep(delay)
		syscall.Kill(-host.Process.Pid, sig)
		done := make(chan error, 1)
		rest := make(chan string, 1)
		go func() {
			b, _ := bufio.NewReader(rd).ReadString(0)
			rest <- b
			done <- host.Wait()
		}()
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			host.Process.Kill()
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("run %d (%v after %v): the host did not stop", i, sig, delay)
		}
		tail := <-rest
		if err != nil || !strings.Contains(tail, "closed") {
			t.Errorf("run %d (%v after %v): host exit %v, said %q", i, sig, delay, err, tail)
		}
		if s := errb.String(); strings.Contains(s, "fatal error") || strings.Contains(s, "goroutine ") || strings.Contains(s, "SIGSEGV") {
			t.Errorf("run %d (%v after %v): the plugin crashed:\n%s", i, sig, delay, firstLines(s, 30))
		}
		if !waitGone(pid, 5*time.Second) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("run %d: plugin %d left running", i, pid)
		}
		if _, err := os.Stat(f[2]); !os.IsNotExist(err) {
			os.RemoveAll(f[2])
			t.Errorf("run %d: shared memory %s left (%v)", i, f[2], err)
		}
	}
}
