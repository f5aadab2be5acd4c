package plugin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"liquidlab/framework/stage"
	"liquidlab/framework/tensor"
)

// Transports.
const (
	TransportShm   = "shm"   // tensors in shared memory, descriptors in messages (default)
	TransportBytes = "bytes" // tensors inside the gRPC messages
)

// Options says which plugin to start and how to talk to it.
type Options struct {
	Kind string // stage kind the plugin must serve, e.g. stage.KindFlows
	Name string // implementation name, for messages; defaults to the binary's base name

	Path string   // plugin binary
	Args []string // its arguments

	SHA256 string // optional hex sha256 the binary must have (go-plugin SecureConfig)

	Transport string // TransportShm (default) or TransportBytes

	CallTimeout  time.Duration // a call running longer kills the plugin; 0 = no limit
	StartTimeout time.Duration // default 30s

	Logger hclog.Logger // host logger; the plugin's log lines appear under it. Default: stderr, warnings and up
	Stderr io.Writer    // gets the plugin's raw stderr as well; may be nil
}

// Builtin returns Options that start the current executable as
// `liquidlab plugin serve <kind> <name> [extraArgs...]`.
func Builtin(kind, name string, extraArgs ...string) Options {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	args := append([]string{"plugin", "serve", kind, name}, extraArgs...)
	return Options{Kind: kind, Name: name, Path: exe, Args: args}
}

// Client is a running plugin process; it implements stage.Stage. Its methods
// may be called concurrently. Close it to stop the process and remove its
// shared memory.
type Client struct {
	o      Options
	who    string // "plugin flows/coupling at /path"
	cmd    *exec.Cmd
	pc     *goplugin.Client
	rpc    StageClient
	stderr *tailWriter
	dir    string // session directory; "" for the bytes transport

	mu       sync.Mutex
	regions  map[string]*region
	pins     map[uint64]*region
	retire   []string
	next     int
	replyEst map[string]int
	dead     error // set once the process is gone or closed
	closed   bool
}

var _ stage.Stage = (*Client)(nil)

// Launch starts the plugin, checks its pin, protocol version and kind, and sets
// up the transport. On error no process is left running.
func Launch(ctx context.Context, o Options) (*Client, error) {
	if o.Name == "" {
		o.Name = filepath.Base(o.Path)
	}
	who := fmt.Sprintf("plugin %s/%s at %s", o.Kind, o.Name, o.Path)
	if o.Kind == "" {
		return nil, fmt.Errorf("%s: no stage kind given: say which kind of stage the plugin serves", who)
	}
	if o.Path == "" {
		return nil, fmt.Errorf("plugin %s/%s has no path: give the plugin binary's path or use a built-in", o.Kind, o.Name)
	}
	switch o.Transport {
	case "":
		o.Transport = TransportShm
	case TransportShm, TransportBytes:
	default:
		return nil, fmt.Errorf("%s: unknown transport %q: use %q or %q", who, o.Transport, TransportShm, TransportBytes)
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	if o.Logger == nil {
		// The plugins' own level (LIQUIDLAB_PLUGIN_LOG_LEVEL) also lets their
		// lines through here, so one variable turns on debugging output.
		level := hclog.LevelFromString(os.Getenv("LIQUIDLAB_PLUGIN_LOG_LEVEL"))
		if level == hclog.NoLevel || level > hclog.Warn {
			level = hclog.Warn
		}
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "liquidlab.plugin", Level: level, Output: os.Stderr})
	}
	path, err := exec.LookPath(o.Path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be run: %w: check the path", who, err)
	}
	var secure *goplugin.SecureConfig
	if o.SHA256 != "" {
		want, err := hex.DecodeString(strings.TrimSpace(o.SHA256))
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("%s: the sha256 pin %q is not 64 hex digits: fix the pin", who, o.SHA256)
		}
		got, err := fileSHA256(path)
		if err != nil {
			return nil, fmt.Errorf("%s: cannot check its sha256 pin: %w", who, err)
		}
		if !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%s has sha256 %x, the experiment pins %x: rebuild the plugin or update the pin", who, got, want)
		}
		secure = &goplugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}

	c := &Client{o: o, who: who, stderr: newTailWriter(o.Stderr), regions: map[string]*region{},
		pins: map[uint64]*region{}, replyEst: map[string]int{}}
	c.cmd = exec.Command(path, o.Args...)
	setParentDeathSignal(c.cmd)
	c.pc = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  goplugin.HandshakeConfig{MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue},
		VersionedPlugins: map[int]goplugin.PluginSet{ProtocolVersion: {o.Kind: &StagePlugin{}}},
		Cmd:              c.cmd,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     o.StartTimeout,
		Logger:           o.Logger,
		Stderr:           c.stderr,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize))},
	})
	if err := c.start(ctx); err != nil {
		c.pc.Kill()
		if c.dir != "" {
			_ = os.RemoveAll(c.dir)
		}
		return nil, err
	}
	return c, nil
}

var reVersion = regexp.MustCompile(`Plugin version: (\d+)`)

func (c *Client) start(ctx context.Context) error {
	cp, err := c.pc.Client()
	if err != nil {
		msg := err.Error()
		switch {
		case strings.Contains(msg, "incompatible API version"):
			v := "another version"
			if m := reVersion.FindStringSubmatch(msg); m != nil {
				v = "version " + m[1]
			}
			return fmt.Errorf("%s speaks liquidlab plugin protocol %s, this liquidlab speaks version %d: rebuild the plugin against this liquidlab", c.who, v, ProtocolVersion)
		case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
			return fmt.Errorf("%s changed while it was being started and no longer matches its sha256 pin %s: rebuild the plugin or update the pin", c.who, c.o.SHA256)
		case strings.Contains(msg, "timeout while waiting for plugin to start"):
			return fmt.Errorf("%s did not start within %v, so it was killed: check that the binary is a liquidlab plugin, or raise the start timeout", c.who, c.o.StartTimeout)
		}
		if st, tail, ok := c.exitStatus(2 * time.Second); ok {
			return fmt.Errorf("%s exited before it finished starting (%s)%s", c.who, st, tail)
		}
		return fmt.Errorf("%s could not be started: %w", c.who, err)
	}
	raw, err := cp.Dispense(c.o.Kind)
	if err != nil {
		return fmt.Errorf("%s: %w", c.who, err)
	}
	c.rpc = raw.(StageClient)

	if c.o.Transport == TransportShm {
		dir, err := os.MkdirTemp(shmBase(), fmt.Sprintf("liquidlab-%d-", os.Getpid()))
		if err != nil {
			return fmt.Errorf("%s: cannot create its shared memory: %w: use the bytes transport", c.who, err)
		}
		c.dir = dir
	}
	ictx, cancel := context.WithTimeout(ctx, c.o.StartTimeout)
	defer cancel()
	info, err := c.rpc.Info(ictx, &InfoRequest{Kind: c.o.Kind, ShmDir: c.dir})
	if err != nil {
		return c.callError(ctx, ictx, "Info", err)
	}
	if info.GetKind() != c.o.Kind {
		return fmt.Errorf("%s serves stages of kind %q, not %q: check which plugin the experiment names", c.who, info.GetKind(), c.o.Kind)
	}
	if c.dir != "" && !info.GetShm() {
		c.o.Logger.Warn("plugin cannot map the host's shared memory; using the bytes transport", "plugin", c.who)
		_ = os.RemoveAll(c.dir)
		c.dir = ""
	}
	return nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

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

// Close stops the plugin process, waits for it to exit and removes its shared
// memory. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.dead == nil {
		c.dead = fmt.Errorf("%s was closed", c.who)
	}
	c.mu.Unlock()

	c.pc.Kill()

	c.mu.Lock()
	defer c.mu.Unlock()
	for name, r := range c.regions {
		if !r.inUse { // in-use regions are unmapped when their call ends
			r.unmap()
			delete(c.regions, name)
		}
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			return fmt.Errorf("%s: remove its shared memory: %w", c.who, err)
		}
	}
	return nil
}

// kill stops a plugin that misbehaved; why becomes the error of later calls.
func (c *Client) kill(why error) {
	c.mu.Lock()
	if c.dead == nil {
		c.dead = why
	}
	c.mu.Unlock()
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Kill()
	}
	c.pc.Kill()
}

func (c *Client) alive(method string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return fmt.Errorf("%s cannot run %s: %w", c.who, method, c.dead)
	}
	return nil
}

func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.o.CallTimeout > 0 {
		return context.WithTimeout(ctx, c.o.CallTimeout)
	}
	return context.WithCancel(ctx)
}

// exitStatus waits up to d for the process to be gone and returns how it
// ended and the tail of its stderr.
func (c *Client) exitStatus(d time.Duration) (string, string, bool) {
	deadline := time.Now().Add(d)
	for !c.pc.Exited() {
		if time.Now().After(deadline) {
			return "", "", false
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := "exit status unknown"
	if ps := c.cmd.ProcessState; ps != nil {
		st = ps.String()
	}
	tail := ""
	if lines := c.stderr.last(); len(lines) > 0 {
		tail = "; the last lines of its stderr:\n\t" + strings.Join(lines, "\n\t")
	}
	return st, tail, true
}

// callError turns a failed call into a sentence naming the plugin. ctx is the
// caller's context, cctx the call's (with the call timeout).
func (c *Client) callError(ctx, cctx context.Context, method string, err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("%s was closed during %s", c.who, method)
	}
	st, _ := status.FromError(err)
	if dl, ok := cctx.Deadline(); ok && ctx.Err() == nil && time.Until(dl) < 100*time.Millisecond &&
		(st.Code() == codes.Canceled || st.Code() == codes.DeadlineExceeded) {
		// The plugin's end of the stream may give up a moment before ours.
		<-cctx.Done()
	}
	if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) && !c.pc.Exited() {
		e := fmt.Errorf("%s did not finish %s within the call timeout of %v, so it was killed: raise the call timeout if the stage is just slow, or fix the stage if it hangs", c.who, method, c.o.CallTimeout)
		c.kill(e)
		return e
	}
	wait := time.Duration(0)
	if st.Code() == codes.Unavailable {
		wait = 3 * time.Second // the connection broke; let the process exit be noticed
	}
	if ctx.Err() == nil {
		if how, tail, ok := c.exitStatus(wait); ok {
			e := fmt.Errorf("%s exited during %s (%s)%s: the plugin crashed; its stderr is in the log above, and a built-in component can be debugged in process (run.mode = \"inprocess\")", c.who, method, how, tail)
			c.kill(e)
			return e
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %s was abandoned: %w", c.who, method, ctx.Err())
	}
	if st.Code() == codes.Unavailable {
		e := fmt.Errorf("%s stopped answering during %s (%s), so it was killed", c.who, method, st.Message())
		c.kill(e)
		return e
	}
	return &StageError{Plugin: c.who, Method: method, Code: st.Code(), Message: st.Message()}
}

// StageError is an error the stage implementation returned (or a malformed
// request it refused), carried across the process boundary.
type StageError struct {
	Plugin  string // "plugin flows/coupling at /path"
	Method  string // "Forward", ...
	Code    codes.Code
	Message string
}

func (e *StageError) Error() string {
	return fmt.Sprintf("%s: %s failed: %s", e.Plugin, e.Method, e.Message)
}

// ---- shared-memory arena (host side) ----

// take returns a free region with room for need request bytes plus the reply
// this method usually sends, creating one if none fits.
func (c *Client) take(method string, need int) (*region, *Arena, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return nil, nil, fmt.Errorf("%s cannot run %s: %w", c.who, method, c.dead)
	}
	want := need + c.replyEst[method]
	var best *region
	var free []*region
	for _, r := range c.regions {
		if r.inUse || r.handle != 0 {
			continue
		}
		free = append(free, r)
		if len(r.mem) >= want && (best == nil || len(r.mem) < len(best.mem)) {
			best = r
		}
	}
	if best == nil {
		size := max(minRegionSize, (want+want/4+minRegionSize-1)/minRegionSize*minRegionSize)
		c.next++
		r, err := createRegion(c.dir, fmt.Sprintf("h-%d", c.next), size)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", c.who, err)
		}
		c.regions[r.name] = r
		best = r
		// Keep a few free regions mapped for reuse; retire the smallest.
		sort.Slice(free, func(i, j int) bool { return len(free[i].mem) < len(free[j].mem) })
		for len(free) >= maxFreeRegion {
			c.retireLocked(free[0])
			free = free[1:]
		}
	}
	best.inUse = true
	a := &Arena{Regions: []*Region{{Name: best.name, Size: uint64(len(best.mem))}}, Retire: c.retire, ReplyRegion: best.name}
	c.retire = nil
	return best, a, nil
}

func (c *Client) retireLocked(r *region) {
	r.unmap()
	delete(c.regions, r.name)
	_ = os.Remove(filepath.Join(c.dir, r.name))
	c.retire = append(c.retire, r.name)
}

// lookup finds a region a reply refers to; replies may only use the call's own
// region or the regions the plugin created for it (adopt marks them in use).
func (c *Client) lookup(own *region, adopted []*region) func(string) *region {
	return func(name string) *region {
		if own != nil && own.name == name {
			return own
		}
		for _, r := range adopted {
			if r.name == name {
				return r
			}
		}
		return nil
	}
}

// adopt maps the regions the plugin created for a reply.
func (c *Client) adopt(rs []*Region) ([]*region, error) {
	var out []*region
	for _, rg := range rs {
		r, err := openRegion(c.dir, rg.GetName(), rg.GetSize())
		if err != nil {
			for _, r := range out {
				r.unmap()
			}
			return nil, err
		}
		r.inUse = true
		out = append(out, r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range out {
		if old, dup := c.regions[r.name]; dup {
			old.unmap()
		}
		c.regions[r.name] = r
	}
	return out, nil
}

// finish ends a call's use of its regions. done says the plugin finished the
// call (so it no longer touches the region); a non-zero handle pins the
// request region until Backward or Release of that handle.
func (c *Client) finish(method string, own *region, adopted []*region, done bool, handle uint64, replyBytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if replyBytes > c.replyEst[method] {
		c.replyEst[method] = replyBytes
	}
	for _, r := range append(adopted, own) {
		if r == nil {
			continue
		}
		r.inUse = false
		switch {
		case c.closed:
			r.unmap()
			delete(c.regions, r.name)
		case !done:
			// The plugin may still be writing into it: never reuse it.
			c.retireLocked(r)
		case r == own && handle != 0:
			r.handle = handle
			c.pins[handle] = r
		}
	}
}

// unpin frees the region a handle kept; done as in finish.
func (c *Client) unpin(handle uint64, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.pins[handle]
	if !ok {
		return
	}
	delete(c.pins, handle)
	r.handle = 0
	if c.closed {
		r.unmap()
		delete(c.regions, r.name)
	} else if !done {
		c.retireLocked(r)
	}
}

// pendingRetire hands the retire list to a call without tensors.
func (c *Client) pendingRetire() *Arena {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" || len(c.retire) == 0 {
		return nil
	}
	a := &Arena{Retire: c.retire}
	c.retire = nil
	return a
}

// finished reports whether the plugin ran a failed call to its end, so its
// regions can be reused: true for errors the stage or the server returned.
func finished(err error) bool {
	if err == nil {
		return true
	}
	switch status.Code(err) {
	case codes.Unknown, codes.Internal, codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted:
		_, ok := status.FromError(err)
		return ok
	}
	return false
}

// ---- stage.Stage ----

// Describe asks the plugin to describe the stage for cfg.
func (c *Client) Describe(ctx context.Context, cfg stage.Config) (*stage.Description, error) {
	if err := c.alive("Describe"); err != nil {
		return nil, err
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.rpc.Describe(cctx, &DescribeRequest{Config: configToProto(cfg)})
	if err != nil {
		return nil, c.callError(ctx, cctx, "Describe", err)
	}
	if resp.GetDescription() == nil {
		return nil, fmt.Errorf("%s: Describe returned no description: fix the plugin", c.who)
	}
	return descriptionFromProto(resp.GetDescription()), nil
}

// Forward runs one chunk through the plugin. The returned tensors are the
// caller's (copied out of shared memory).
func (c *Client) Forward(ctx context.Context, cfg stage.Config, req *stage.ForwardRequest) (*stage.ForwardResult, error) {
	if req == nil {
		return nil, fmt.Errorf("%s: Forward needs a request", c.who)
	}
	if err := c.alive("Forward"); err != nil {
		return nil, err
	}
	p := &ForwardRequest{Config: configToProto(cfg), NeedGrad: req.NeedGrad}
	var own *region
	var w *shmWriter
	if c.dir != "" {
		r, a, err := c.take("Forward", mapBytes(req.Params)+mapBytes(req.Inputs)+mapBytes(req.State))
		if err != nil {
			return nil, err
		}
		own, w, p.Arena = r, &shmWriter{r: r}, a
	}
	var err error
	if p.Params, err = encodeMap("parameter", req.Params, w); err == nil {
		if p.Inputs, err = encodeMap("input", req.Inputs, w); err == nil {
			p.State, err = encodeMap("state", req.State, w)
		}
	}
	if err != nil {
		c.finish("Forward", own, nil, true, 0, 0)
		return nil, fmt.Errorf("%s: Forward: %w", c.who, err)
	}
	if w != nil {
		p.Arena.ReplyOffset = uint64(w.off)
	}

	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.rpc.Forward(cctx, p)
	if err != nil {
		c.finish("Forward", own, nil, finished(err), 0, 0)
		return nil, c.callError(ctx, cctx, "Forward", err)
	}
	adopted, err := c.adopt(resp.GetRegions())
	if err != nil {
		c.finish("Forward", own, nil, true, resp.GetHandle(), 0)
		return nil, fmt.Errorf("%s: Forward sent a reply this host cannot read: %w", c.who, err)
	}
	res := &stage.ForwardResult{Handle: resp.GetHandle(), Stats: resp.GetStats()}
	look := c.lookup(own, adopted)
	if res.Outputs, err = decodeMap("output", resp.GetOutputs(), look, true); err == nil {
		res.State, err = decodeMap("state", resp.GetState(), look, true)
	}
	c.finish("Forward", own, adopted, true, res.Handle, mapBytes(res.Outputs)+mapBytes(res.State))
	if err != nil {
		return nil, fmt.Errorf("%s: Forward sent a bad reply: %w: fix the plugin", c.who, err)
	}
	return res, nil
}

// Backward runs the backward pass of a handle and releases it.
func (c *Client) Backward(ctx context.Context, handle uint64, outGrads tensor.Map) (*stage.BackwardResult, error) {
	if err := c.alive("Backward"); err != nil {
		return nil, err
	}
	p := &BackwardRequest{Handle: handle}
	var own *region
	var w *shmWriter
	if c.dir != "" {
		r, a, err := c.take("Backward", mapBytes(outGrads))
		if err != nil {
			return nil, err
		}
		own, w, p.Arena = r, &shmWriter{r: r}, a
	}
	var err error
	if p.OutGrads, err = encodeMap("output gradient", outGrads, w); err != nil {
		c.finish("Backward", own, nil, true, 0, 0)
		return nil, fmt.Errorf("%s: Backward: %w", c.who, err)
	}
	if w != nil {
		p.Arena.ReplyOffset = uint64(w.off)
	}
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	resp, err := c.rpc.Backward(cctx, p)
	if err != nil {
		done := finished(err)
		c.finish("Backward", own, nil, done, 0, 0)
		c.unpin(handle, done)
		return nil, c.callError(ctx, cctx, "Backward", err)
	}
	c.unpin(handle, true)
	adopted, err := c.adopt(resp.GetRegions())
	if err != nil {
		c.finish("Backward", own, nil, true, 0, 0)
		return nil, fmt.Errorf("%s: Backward sent a reply this host cannot read: %w", c.who, err)
	}
	res := &stage.BackwardResult{}
	look := c.lookup(own, adopted)
	if res.InputGrads, err = decodeMap("input gradient", resp.GetInputGrads(), look, true); err == nil {
		res.ParamGrads, err = decodeMap("parameter gradient", resp.GetParamGrads(), look, true)
	}
	c.finish("Backward", own, adopted, true, 0, mapBytes(res.InputGrads)+mapBytes(res.ParamGrads))
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
	_, err := c.rpc.Release(cctx, &ReleaseRequest{Handle: handle, Arena: a})
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

// tailWriter keeps the last lines written to it and passes everything on.
type tailWriter struct {
	mu    sync.Mutex
	next  io.Writer
	lines []string
	part  []byte
}

const tailLines = 64

func newTailWriter(next io.Writer) *tailWriter { return &tailWriter{next: next} }

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.lines) > tailLines {
		t.lines = append([]string(nil), t.lines[len(t.lines)-tailLines:]...)
	}
	if t.next != nil {
		_, _ = t.next.Write(p)
	}
	return len(p), nil
}

// last returns the lines worth showing: from the last panic or fatal error
// when there is one (a Go crash prints goroutine dumps after it), else the
// final lines.
func (t *tailWriter) last() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(append([]string(nil), lines...), string(t.part))
	}
	const show = 12
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "panic: ") || strings.HasPrefix(lines[i], "fatal error: ") {
			return lines[i:min(len(lines), i+show)]
		}
	}
	return lines[max(0, len(lines)-show):]
}
