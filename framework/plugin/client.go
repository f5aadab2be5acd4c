package plugin

import (
	"context"
	"fmt"
	"os/exec"
	"sync"

	goplugin "github.com/hashicorp/go-plugin"

	"liquidlab/framework/plugin/proto"
	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Client is a running plugin process; it implements stage.Stage. Its methods
// may be called concurrently. Close it to stop the process and remove its
// shared memory.
type Client struct {
	o   Options
	who string // "plugin flows/coupling at /path"
	cmd *exec.Cmd
	// cancelStart kills the process through cmd's context; used while it
	// starts, and to release that context once it is gone.
	cancelStart context.CancelFunc
	pc          *goplugin.Client
	rpc         proto.StageClient
	stderr      *tailWriter
	sess        *session  // shared memory; nil for the bytes transport
	dir         string    // sess.dir, or ""
	bell        *doorbell // Forward and Backward without gRPC (doorbell.go); nil when not answered

	// mu is hostMu, shared by every Client of the process: a call may pin
	// regions of other Clients (zero-copy hand-off, see arena.go).
	mu       *sync.Mutex
	regions  map[string]*region
	pins     map[uint64]*region
	retire   []string
	next     int
	replyEst map[string]int
	needEst  map[string]int // largest request seen per method (bytes)
	dead     error          // set once the process is gone or closed
	closed   bool

	// Zero-copy hand-off (arena.go).
	lent       map[string][]*region // by method: regions holding the reply of its last call (LendOutputs)
	borrowPins map[uint64][]*region // other regions a handle's inputs alias
	links      map[*region]string   // hard links in dir to regions of other Clients
	handoff    handoffStats
}

// hostMu guards the shared-memory bookkeeping of every Client in the process.
var hostMu sync.Mutex

var _ stage.Stage = (*Client)(nil)

// PID is the plugin process's id.
func (c *Client) PID() int {
	if c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Transport is the transport in use: TransportShm, or TransportBytes when asked
// for or when the plugin could not map shared memory.
func (c *Client) Transport() string {
	if c.dir != "" {
		return TransportShm
	}
	return TransportBytes
}

func (c *Client) alive(method string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return fmt.Errorf("%s cannot run %s: %w", c.who, method, c.dead)
	}
	return nil
}

// gone reports whether the plugin process has exited: go-plugin's Exited,
// which waits for the end of its stdout and stderr (a child that inherited
// them can put that off), or /proc showing the process gone or a zombie.
func (c *Client) gone() bool {
	if c.pc.Exited() {
		return true
	}
	pid := c.PID()
	if pid == 0 {
		return false
	}
	_, zombie, ok := procStat(pid)
	return !ok || zombie
}

// forwardRPC sends a Forward request over the doorbell, or over gRPC when
// the doorbell is not there or not free.
func (c *Client) forwardRPC(ctx context.Context, p *proto.ForwardRequest) (*proto.ForwardResponse, error) {
	resp := &proto.ForwardResponse{}
	if used, err := c.bell.ring(ctx, dbForward, p, resp, c.gone); used {
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	return c.rpc.Forward(ctx, p)
}

// backwardRPC is forwardRPC for Backward.
func (c *Client) backwardRPC(ctx context.Context, p *proto.BackwardRequest) (*proto.BackwardResponse, error) {
	resp := &proto.BackwardResponse{}
	if used, err := c.bell.ring(ctx, dbBackward, p, resp, c.gone); used {
		if err != nil {
			return nil, err
		}
		return resp, nil
	}
	return c.rpc.Backward(ctx, p)
}

func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.o.CallTimeout > 0 {
		return context.WithTimeout(ctx, c.o.CallTimeout)
	}
	return context.WithCancel(ctx)
}

// Describe asks the plugin to describe the stage for cfg.
func (c *Client) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	if err := c.alive("Describe"); err != nil {
		return nil, err
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.rpc.Describe(cctx, &proto.DescribeRequest{Config: configToProto(cfg)})
	if err != nil {
		return nil, c.callError(ctx, cctx, "Describe", err)
	}
	if resp.GetDescription() == nil {
		return nil, fmt.Errorf("%s: Describe returned no description: fix the plugin", c.who)
	}
	return descriptionFromProto(resp.GetDescription()), nil
}

// Forward runs one chunk through the plugin. The returned tensors are the
// caller's (copied out of shared memory), or with Options.LendOutputs views
// of it valid until this Client's next Forward returns (state is copied).
func (c *Client) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("%s: Forward needs a request", c.who)
	}
	if err := c.alive("Forward"); err != nil {
		return nil, err
	}
	p := &proto.ForwardRequest{Config: configToProto(cfg), NeedGrad: req.NeedGrad}
	var own *region
	var w *shmWriter
	var borrowed []*region
	if c.dir != "" {
		hand, pinned, decl, saved := c.borrowInputs(req.Inputs, req.State)
		borrowed = pinned
		r, a, err := c.take("Forward", mapBytes(req.Params)+mapBytes(req.Inputs)+mapBytes(req.State)-saved)
		if err != nil {
			c.releaseBorrows(borrowed)
			return nil, err
		}
		a.Regions = append(a.Regions, decl...)
		own, w, p.Arena = r, &shmWriter{r: r, handoffs: hand}, a
	}
	var err error
	if p.Params, err = encodeMap("parameter", req.Params, w); err == nil {
		if p.Inputs, err = encodeMap("input", req.Inputs, w); err == nil {
			p.State, err = encodeMap("state", req.State, w)
		}
	}
	if err != nil {
		c.finish("Forward", own, nil, true, 0, 0, borrowed, false)
		return nil, fmt.Errorf("%s: Forward: %w", c.who, err)
	}
	if w != nil {
		p.Arena.ReplyOffset = uint64(w.off)
	}

	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.forwardRPC(cctx, p)
	if err != nil {
		c.finish("Forward", own, nil, finished(err), 0, 0, borrowed, false)
		return nil, c.callError(ctx, cctx, "Forward", err)
	}
	adopted, err := c.adopt(resp.GetRegions())
	if err != nil {
		c.finish("Forward", own, nil, true, resp.GetHandle(), 0, borrowed, false)
		return nil, fmt.Errorf("%s: Forward sent a reply this host cannot read: %w", c.who, err)
	}
	res := &stage.ForwardResult{Handle: resp.GetHandle(), Stats: resp.GetStats()}
	look := c.lookup(own, adopted)
	// With LendOutputs the outputs stay where the plugin wrote them (see
	// "Zero-copy hand-off" in arena.go); otherwise they are copied out. State
	// is always copied: it is small, and a caller may keep it past the next
	// Forward (a stream keeps its old state when a later stage fails).
	lend := c.o.LendOutputs && c.dir != ""
	if res.Outputs, err = decodeMap("output", resp.GetOutputs(), look, !lend); err == nil {
		res.State, err = decodeMap("state", resp.GetState(), look, true)
	}
	c.finish("Forward", own, adopted, true, res.Handle, mapBytes(res.Outputs)+mapBytes(res.State), borrowed, lend && err == nil)
	if err != nil {
		return nil, fmt.Errorf("%s: Forward sent a bad reply: %w: fix the plugin", c.who, err)
	}
	return res, nil
}

// Backward runs the backward pass of a handle and releases it. The returned
// tensors are the caller's, or with Options.LendOutputs views of shared
// memory valid until this Client's next Backward returns.
func (c *Client) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	if err := c.alive("Backward"); err != nil {
		return nil, err
	}
	p := &proto.BackwardRequest{Handle: handle}
	var own *region
	var w *shmWriter
	var borrowed []*region
	if c.dir != "" {
		hand, pinned, decl, saved := c.borrowInputs(outGrads)
		borrowed = pinned
		r, a, err := c.take("Backward", mapBytes(outGrads)-saved)
		if err != nil {
			c.releaseBorrows(borrowed)
			return nil, err
		}
		a.Regions = append(a.Regions, decl...)
		own, w, p.Arena = r, &shmWriter{r: r, handoffs: hand}, a
	}
	var err error
	if p.OutGrads, err = encodeMap("output gradient", outGrads, w); err != nil {
		c.finish("Backward", own, nil, true, 0, 0, borrowed, false)
		return nil, fmt.Errorf("%s: Backward: %w", c.who, err)
	}
	if w != nil {
		p.Arena.ReplyOffset = uint64(w.off)
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.backwardRPC(cctx, p)
	if err != nil {
		done := finished(err)
		c.finish("Backward", own, nil, done, 0, 0, borrowed, false)
		c.unpin(handle, done)
		return nil, c.callError(ctx, cctx, "Backward", err)
	}
	c.unpin(handle, true)
	adopted, err := c.adopt(resp.GetRegions())
	if err != nil {
		c.finish("Backward", own, nil, true, 0, 0, borrowed, false)
		return nil, fmt.Errorf("%s: Backward sent a reply this host cannot read: %w", c.who, err)
	}
	res := &stage.BackwardResult{}
	look := c.lookup(own, adopted)
	// With LendOutputs the gradients stay where the plugin wrote them, lent
	// until the next Backward returns, as Forward's outputs are.
	lend := c.o.LendOutputs && c.dir != ""
	if res.InputGrads, err = decodeMap("input gradient", resp.GetInputGrads(), look, !lend); err == nil {
		res.ParamGrads, err = decodeMap("parameter gradient", resp.GetParamGrads(), look, !lend)
	}
	c.finish("Backward", own, adopted, true, 0, mapBytes(res.InputGrads)+mapBytes(res.ParamGrads), borrowed, lend && err == nil)
	if err != nil {
		return nil, fmt.Errorf("%s: Backward sent a bad reply: %w: fix the plugin", c.who, err)
	}
	return res, nil
}

// Release drops a handle without a backward pass.
func (c *Client) Release(ctx context.Context, handle uint64) error {
	if err := c.alive("Release"); err != nil {
		return err
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	a := c.pendingRetire()
	_, err := c.rpc.Release(cctx, &proto.ReleaseRequest{Handle: handle, Arena: a})
	if err != nil {
		c.unpin(handle, finished(err))
		if a != nil {
			c.mu.Lock()
			c.retire = append(c.retire, a.Retire...)
			c.mu.Unlock()
		}
		return c.callError(ctx, cctx, "Release", err)
	}
	c.unpin(handle, true)
	return nil
}
