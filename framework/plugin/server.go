package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"liquidlab/framework/num"
	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// grpcServer adapts a stage.Stage to the Stage gRPC service.
//
// Tensors handed to Impl alias the host's request region (shared memory) or
// the request message (bytes): no copy on the way in. This is safe because the
// host pins a request region under the handle a Forward returns until Backward
// or Release of that handle, so an implementation may keep its inputs under a
// handle exactly as in process.
type grpcServer struct {
	proto.UnimplementedStageServer
	kind string
	Impl stage.Stage
	log  hclog.Logger

	mu      sync.Mutex
	regions *regionTable // nil until Info names a session directory
	closing bool         // closeSession began: calls are refused
	calls   sync.WaitGroup

	bellOnce sync.Once // the doorbell (doorbell.go) is opened once
}

// sessionCloseWait bounds how long closeSession waits for running calls. It is
// below go-plugin's 2 s grace for a plugin to exit by itself after the host
// asks it to, so the plugin exits on its own rather than being killed.
var sessionCloseWait = 1500 * time.Millisecond

// errShuttingDown is the reply to a call that arrives while the plugin stops.
var errShuttingDown = status.Error(codes.Unavailable, "the plugin is shutting down")

// enter admits a call that may touch the session's shared memory; the caller
// runs s.calls.Done when it returns. Once closeSession began it refuses, so a
// late call fails without touching a mapping that is about to go away.
func (s *grpcServer) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errShuttingDown
	}
	s.calls.Add(1)
	return nil
}

func (s *grpcServer) table() *regionTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.regions
}

// removeSession deletes the session's shared memory: the host died and cannot.
func (s *grpcServer) removeSession() {
	if t := s.table(); t != nil {
		_ = os.RemoveAll(t.dir)
	}
}

// closeSession unmaps the session's shared memory once no call runs. Calls
// still running after sessionCloseWait (an implementation that ignores its
// cancelled context) are abandoned: their memory stays mapped, and goes when
// the process exits, so they never read a mapping that is gone. New calls are
// refused from the start. It reports whether the memory was unmapped.
func (s *grpcServer) closeSession() bool {
	s.mu.Lock()
	s.closing = true
	t := s.regions
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.calls.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(sessionCloseWait):
		s.log.Warn("calls still running at shutdown are abandoned; their shared memory stays mapped until the process exits")
		return false
	}
	if t != nil {
		t.unmapAll()
	}
	return true
}

func (s *grpcServer) Info(_ context.Context, req *proto.InfoRequest) (*proto.InfoResponse, error) {
	resp := &proto.InfoResponse{Kind: s.kind, Pid: int64(os.Getpid())}
	if dir := req.GetShmDir(); dir != "" {
		fi, err := os.Stat(dir)
		switch {
		case err != nil:
			s.log.Warn("cannot use the host's shared memory; falling back to bytes", "dir", dir, "error", err)
		case !fi.IsDir() || !strings.HasPrefix(filepath.Base(dir), "liquidlab-"):
			s.log.Warn("the host's shared-memory path is not a liquidlab session directory; falling back to bytes", "dir", dir)
		default:
			s.mu.Lock()
			if s.regions == nil || s.regions.dir != dir {
				s.regions = newRegionTable(dir)
			}
			s.mu.Unlock()
			s.openDoorbell(dir)
			resp.Shm = true
		}
	}
	return resp, nil
}

func (s *grpcServer) Describe(ctx context.Context, req *proto.DescribeRequest) (resp *proto.DescribeResponse, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.calls.Done()
	defer s.recoverPanic("Describe", &err)
	d, err := s.Impl.Describe(ctx, configFromProto(req.GetConfig()))
	if err != nil {
		return nil, implError(err)
	}
	if d == nil {
		return nil, status.Error(codes.Internal, "the stage's Describe returned no description")
	}
	return &proto.DescribeResponse{Description: descriptionToProto(d)}, nil
}

// call holds what one request maps and where its reply goes.
type call struct {
	s    *grpcServer
	regs *callRegions // nil for the bytes transport
	mu   sync.Mutex   // guards w, new and out (stage.OutputBuf may run on any goroutine)
	w    *shmWriter
	new  []*proto.Region
	out  map[*float32]handoff // vectors alloc placed in the reply's shared memory
	sent bool                 // the reply (naming the regions in new) is on its way
}

func (s *grpcServer) begin(a *proto.Arena) (*call, error) {
	c := &call{s: s}
	if a == nil {
		return c, nil
	}
	t := s.table()
	if t == nil {
		return nil, status.Error(codes.FailedPrecondition, "the request uses shared memory but the host did not name a session directory")
	}
	regs, err := t.acquire(a)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	c.regs = regs
	if name := a.GetReplyRegion(); name != "" {
		c.w = &shmWriter{r: regs.m[name], off: alignUp(int(min(a.GetReplyOffset(), uint64(len(regs.m[name].mem)))))}
	}
	return c, nil
}

func (c *call) end() {
	if c.regs == nil {
		return
	}
	if !c.sent {
		// the host never learns of regions made for a reply it does not get
		for _, r := range c.new {
			c.regs.t.drop(r.GetName())
		}
	}
	c.regs.release()
}

func (c *call) lookup(name string) *region {
	if c.regs == nil {
		return nil
	}
	return c.regs.m[name]
}

func (c *call) decode(what string, ps []*proto.Tensor) (tensor.Map, error) {
	m, err := decodeMap(what, ps, c.lookup, false)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return m, nil
}

// reserve makes room for the reply tensors of ms that alloc did not place:
// in the offered region when they fit, else in a new plugin-owned region.
func (c *call) reserve(ms ...tensor.Map) error {
	if c.regs == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range ms {
		for _, t := range m {
			if t == nil || len(t.Data) == 0 {
				continue
			}
			if _, placed := c.out[&t.Data[0]]; !placed {
				n += alignUp(4 * len(t.Data))
			}
		}
	}
	if err := c.roomLocked(n); err != nil {
		return status.Error(codes.ResourceExhausted, err.Error())
	}
	return nil
}

// roomLocked makes the writer's region have n free bytes, creating a
// plugin-owned region when the current one has not.
func (c *call) roomLocked(n int) error {
	if c.w != nil && c.w.off+n <= len(c.w.r.mem) {
		return nil
	}
	size := max(minRegionSize, alignUp(n+n/4))
	r, err := c.regs.t.create(c.regs, size)
	if err != nil {
		return err
	}
	c.w = &shmWriter{r: r}
	c.new = append(c.new, &proto.Region{Name: r.name, Size: uint64(len(r.mem))})
	return nil
}

// alloc is stage.OutputBuf's allocator in a plugin: n zeroed values in the
// reply's shared memory, after what the call has placed there, so that the
// tensor the stage returns in them is sent as a descriptor, not copied. The
// offered region is reused from call to call (its pages stay mapped and
// touched); a vector that does not fit goes to a new region of the plugin's.
// nil with the bytes transport, or when no region can be made.
func (c *call) alloc(n int) []float32 {
	if c.regs == nil || n <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := 4 * n
	if c.roomLocked(b) != nil {
		return nil
	}
	off := c.w.off
	v := floats(c.w.r.mem[off : off+b])
	clear(v)
	if c.out == nil {
		c.out = map[*float32]handoff{}
	}
	c.out[&v[0]] = handoff{name: c.w.r.name, off: uint64(off)}
	c.w.off += alignUp(b)
	return v
}

func (c *call) encode(what string, m tensor.Map) ([]*proto.Tensor, error) {
	var w *shmWriter
	if c.regs != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		w = c.w
		if w != nil {
			w.handoffs = c.out
		}
	}
	ps, err := encodeMap(what, m, w)
	if err != nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("the stage returned a bad tensor: %v", err))
	}
	return ps, nil
}

func (s *grpcServer) Forward(ctx context.Context, req *proto.ForwardRequest) (resp *proto.ForwardResponse, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.calls.Done()
	defer s.recoverPanic("Forward", &err)
	c, err := s.begin(req.GetArena())
	if err != nil {
		return nil, err
	}
	defer c.end()
	r := &stage.ForwardRequest{NeedGrad: req.GetNeedGrad()}
	if r.Params, err = c.decode("parameter", req.GetParams()); err != nil {
		return nil, err
	}
	if r.Inputs, err = c.decode("input", req.GetInputs()); err != nil {
		return nil, err
	}
	if r.State, err = c.decode("state", req.GetState()); err != nil {
		return nil, err
	}
	defer num.PinCaller()()
	res, err := s.Impl.Forward(stage.WithOutputs(ctx, c.alloc), configFromProto(req.GetConfig()), r)
	if err != nil {
		return nil, implError(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "the stage's Forward returned no result")
	}
	resp = &proto.ForwardResponse{Handle: res.Handle, Stats: res.Stats}
	if err := c.reserve(res.Outputs, res.State); err != nil {
		return nil, err
	}
	if resp.Outputs, err = c.encode("output", res.Outputs); err != nil {
		return nil, err
	}
	if resp.State, err = c.encode("state", res.State); err != nil {
		return nil, err
	}
	resp.Regions, c.sent = c.new, true
	return resp, nil
}

func (s *grpcServer) Backward(ctx context.Context, req *proto.BackwardRequest) (resp *proto.BackwardResponse, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.calls.Done()
	defer s.recoverPanic("Backward", &err)
	c, err := s.begin(req.GetArena())
	if err != nil {
		return nil, err
	}
	defer c.end()
	g, err := c.decode("output gradient", req.GetOutGrads())
	if err != nil {
		return nil, err
	}
	defer num.PinCaller()()
	res, err := s.Impl.Backward(stage.WithOutputs(ctx, c.alloc), req.GetHandle(), g)
	if err != nil {
		return nil, implError(err)
	}
	if res == nil {
		return nil, status.Error(codes.Internal, "the stage's Backward returned no result")
	}
	if err := c.reserve(res.InputGrads, res.ParamGrads); err != nil {
		return nil, err
	}
	resp = &proto.BackwardResponse{}
	if resp.InputGrads, err = c.encode("input gradient", res.InputGrads); err != nil {
		return nil, err
	}
	if resp.ParamGrads, err = c.encode("parameter gradient", res.ParamGrads); err != nil {
		return nil, err
	}
	resp.Regions, c.sent = c.new, true
	return resp, nil
}

func (s *grpcServer) Release(ctx context.Context, req *proto.ReleaseRequest) (resp *proto.ReleaseResponse, err error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.calls.Done()
	defer s.recoverPanic("Release", &err)
	c, err := s.begin(req.GetArena())
	if err != nil {
		return nil, err
	}
	defer c.end()
	if err := s.Impl.Release(ctx, req.GetHandle()); err != nil {
		return nil, implError(err)
	}
	return &proto.ReleaseResponse{}, nil
}

// recoverPanic turns a panic of the implementation into an error of the call,
// so the host gets a sentence rather than a dead plugin.
func (s *grpcServer) recoverPanic(method string, err *error) {
	if v := recover(); v != nil {
		s.log.Error("stage panicked", "method", method, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*err = status.Errorf(codes.Internal, "the stage panicked in %s: %v", method, v)
	}
}

// implError carries an implementation's error to the host: its text, with
// cancellation kept recognisable.
func implError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
