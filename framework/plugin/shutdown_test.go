package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// gatedStage is scaleStage whose Backward announces that it started and then
// waits for the gate before it reads what Forward saved (which aliases the
// Forward's request region in shared memory).
type gatedStage struct {
	scaleStage
	started chan struct{}
	gate    chan struct{}
}

func (g *gatedStage) Backward(ctx context.Context, handle uint64, grads tensor.Map) (*stage.BackwardResult, error) {
	close(g.started)
	<-g.gate
	return g.scaleStage.Backward(ctx, handle, grads)
}

// sessionServer is a plugin server on a fresh session directory, and a host
// region "h-1" holding x, as the host would send it.
func sessionServer(impl stage.Stage, x *tensor.Tensor) (*grpcServer, *proto.ForwardRequest, func(), error) {
	dir, err := os.MkdirTemp(shmBase(), "liquidlab-test-")
	if err != nil {
		return nil, nil, nil, err
	}
	s := &grpcServer{kind: stage.KindFlows, Impl: impl, log: hclog.New(&hclog.LoggerOptions{Output: io.Discard})}
	if info, err := s.Info(context.Background(), &proto.InfoRequest{Kind: stage.KindFlows, ShmDir: dir}); err != nil || !info.GetShm() {
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("Info: %v, shm %v", err, info.GetShm())
	}
	host, err := createRegion(dir, "h-1", minRegionSize)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	w := &shmWriter{r: host}
	ps, err := encodeMap("input", tensor.Map{"x": x}, w)
	if err == nil {
		var pw []*proto.Tensor
		pw, err = encodeMap("parameter", tensor.Map{"w": tensor.From([]float32{3}, 1)}, w)
		ps = append(ps, pw...)
	}
	if err != nil {
		host.unmap()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	req := &proto.ForwardRequest{Config: configToProto(stage.Config{}), Inputs: ps[:1], Params: ps[1:], NeedGrad: true,
		Arena: &proto.Arena{Regions: []*proto.Region{{Name: "h-1", Size: uint64(len(host.mem))}}, ReplyRegion: "h-1", ReplyOffset: uint64(w.off)}}
	return s, req, func() { host.unmap(); os.RemoveAll(dir) }, nil
}

// closeRace is run in a subprocess (`plugintest closerace`), since before the
// fix it died of a segmentation fault: the session is closed while a Backward
// runs, and the Backward then reads what its Forward saved in shared memory.
func closeRace() error {
	x := tensor.From([]float32{1, 2, 3, 4}, 4)
	g := &gatedStage{started: make(chan struct{}), gate: make(chan struct{})}
	s, req, cleanup, err := sessionServer(g, x)
	if err != nil {
		return err
	}
	defer cleanup()
	ctx := context.Background()
	f, err := s.Forward(ctx, req)
	if err != nil {
		return err
	}
	type result struct {
		r   *proto.BackwardResponse
		err error
	}
	back := make(chan result, 1)
	go func() {
		gy := tensor.From([]float32{1, 1, 1, 1}, 4)
		r, err := s.Backward(ctx, &proto.BackwardRequest{Handle: f.GetHandle(), OutGrads: []*proto.Tensor{{Name: "y", Shape: []int64{4}, Dtype: proto.DType_DTYPE_FLOAT32, Data: rawBytes(gy.Data)}}})
		back <- result{r, err}
	}()
	<-g.started
	closed := make(chan bool, 1)
	go func() { closed <- s.closeSession() }()
	time.Sleep(200 * time.Millisecond)
	var problems []string
	unmapped, early := false, false
	select {
	case unmapped = <-closed:
		early = true
		problems = append(problems, "closeSession returned while a Backward was still running")
	default:
	}
	fmt.Println(strings.Join(problems, "\n")) // before the crash, if there is one
	close(g.gate)
	res := <-back
	if res.err != nil {
		return res.err
	}
	if !early {
		unmapped = <-closed
	}
	if !unmapped {
		problems = append(problems, "closeSession did not unmap after the Backward ended")
	}
	// A call that arrives after close is refused without touching the mapping.
	if _, err := s.Forward(ctx, req); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		problems = append(problems, fmt.Sprintf("a Forward after close: err = %v, want Unavailable: the plugin is shutting down", err))
	}
	m, err := decodeMap("parameter gradient", res.r.GetParamGrads(), nil, true)
	if err != nil {
		return err
	}
	if got := m["w"].Data[0]; got != 10 { // sum of x times a gradient of ones
		problems = append(problems, fmt.Sprintf("dw[0] = %v, want 10", got))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

func TestCloseWaitsForRunningCalls(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, os.Args[0], "plugintest", "closerace").CombinedOutput()
	if err != nil || strings.Contains(string(out), "fatal error") || strings.Contains(string(out), "goroutine ") {
		t.Fatalf("closing a session during a Backward: %v\n%s", err, firstLines(string(out), 20))
	}
}

func TestCloseAbandonsStuckCalls(t *testing.T) {
	defer func(d time.Duration) { sessionCloseWait = d }(sessionCloseWait)
	sessionCloseWait = 100 * time.Millisecond
	g := &gatedStage{started: make(chan struct{}), gate: make(chan struct{})}
	s, req, cleanup, err := sessionServer(g, tensor.From([]float32{1, 2}, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	f, err := s.Forward(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	go s.Backward(context.Background(), &proto.BackwardRequest{Handle: f.GetHandle()})
	<-g.started
	start := time.Now()
	if s.closeSession() {
		t.Error("closeSession unmapped the memory of a call that still runs")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closeSession took %v with a stuck call", d)
	}
	if r := s.table().m["h-1"]; r == nil || r.mem == nil {
		t.Error("the stuck call's region was unmapped")
	}
	close(g.gate) // the Backward ends (its gradient is missing) while the memory is still there
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines[n] = "..."
	}
	return strings.Join(lines, "\n")
}
