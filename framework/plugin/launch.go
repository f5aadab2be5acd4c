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
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"liquidlab/framework/plugin/proto"
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

	// LendOutputs hands Forward's outputs (not its state, which is small and
	// may be kept longer) and Backward's gradients to the caller as views of
	// shared memory instead of copies. Outputs stay valid until this Client's
	// next Forward returns, gradients until its next Backward returns (or
	// Close), so a pipeline that consumes each step's results before it calls
	// the stage again, as the model does, may use them; passed as inputs to
	// any Client of this process they travel without a copy (see "Zero-copy
	// hand-off" in doc.go). Without shared memory it does nothing.
	LendOutputs bool

	// Env adds KEY=VALUE pairs to the plugin's environment. The host's own
	// environment comes after them, so a variable the host has set wins.
	Env []string
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

	c := &Client{o: o, who: who, stderr: newTailWriter(o.Stderr), mu: &hostMu, regions: map[string]*region{},
		pins: map[uint64]*region{}, borrowPins: map[uint64][]*region{}, links: map[*region]string{}, replyEst: map[string]int{}, needEst: map[string]int{}}
	// The command's context only serves to kill it while it starts (see
	// start); once started, the plugin lives until Close.
	startCtx, cancelStart := context.WithCancel(context.Background())
	c.cancelStart = cancelStart
	c.cmd = exec.CommandContext(startCtx, path, o.Args...)
	c.cmd.Env = append(c.cmd.Env, o.Env...) // go-plugin appends the host's after these
	c.cmd.Cancel = func() error {
		killGroup(c.cmd.Process.Pid)
		return c.cmd.Process.Kill()
	}
	setProcAttr(c.cmd)
	c.pc = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(ProtocolVersion, o.Kind, &StagePlugin{}),
		Cmd:              c.cmd,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		StartTimeout:     o.StartTimeout,
		Logger:           crashLogger{Logger: o.Logger, t: c.stderr},
		Stderr:           c.stderr,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize))},
	})
	if err := c.start(ctx); err != nil {
		c.stopProcess(false)
		c.cancelStart()
		c.bell.unmap()
		_ = c.sess.remove()
		return nil, err
	}
	return c, nil
}

var reVersion = regexp.MustCompile(`Plugin version: (\d+)`)

// unrecognized starts go-plugin's error for a first stdout line that is not a
// handshake.
const unrecognized = "Unrecognized remote plugin message: "

func (c *Client) start(ctx context.Context) error {
	// go-plugin's start does not watch ctx: cancelling ctx while it runs
	// kills the plugin's process group (through the command's own context),
	// which ends the start at once.
	stopWatch := context.AfterFunc(ctx, c.cancelStart)
	cp, err := c.pc.Client()
	if !stopWatch() {
		return fmt.Errorf("%s: start abandoned: %w", c.who, ctx.Err())
	}
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
		case strings.HasPrefix(msg, unrecognized) && strings.TrimSpace(strings.SplitN(msg[len(unrecognized):], "\n", 2)[0]) != "":
			line := strings.TrimSpace(strings.SplitN(msg[len(unrecognized):], "\n", 2)[0])
			return fmt.Errorf("%s printed %q instead of the plugin handshake, so it was stopped: check that the binary is a liquidlab plugin (its main calls plugin.Serve) and that nothing else writes to its stdout", c.who, line)
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
	c.rpc = raw.(proto.StageClient)

	if c.o.Transport == TransportShm {
		base := shmBase()
		removeStaleSessions(base, c.o.Logger)
		sess, err := newSession(base)
		if err != nil {
			return fmt.Errorf("%s: cannot create its shared memory: %w: use the bytes transport", c.who, err)
		}
		c.sess, c.dir = sess, sess.dir
		c.bell, _ = createDoorbell(sess.dir) // nil: every call goes over gRPC
	}
	ictx, cancel := context.WithTimeout(ctx, c.o.StartTimeout)
	defer cancel()
	info, err := c.rpc.Info(ictx, &proto.InfoRequest{Kind: c.o.Kind, ShmDir: c.dir})
	if err != nil {
		return c.callError(ctx, ictx, "Info", err)
	}
	if info.GetKind() != c.o.Kind {
		return fmt.Errorf("%s serves stages of kind %q, not %q: check which plugin the experiment names", c.who, info.GetKind(), c.o.Kind)
	}
	if c.dir != "" && !info.GetShm() {
		c.o.Logger.Warn("plugin cannot map the host's shared memory; using the bytes transport", "plugin", c.who)
		_ = c.sess.remove()
		c.sess, c.dir = nil, ""
	}
	if c.bell != nil && (c.dir == "" || !c.bell.answered()) {
		c.bell.unmap()
		c.bell = nil
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

	// In order: the plugin is asked to stop and waits for its running calls
	// (see Serve), then it and whatever it started are killed, then the host's
	// mappings and the session go. Host-side regions a call still uses are
	// unmapped when that call ends.
	c.stopProcess(true)
	c.cancelStart()
	if c.bell != nil {
		// A call still on the doorbell returns once it sees the process gone.
		c.bell.mu.Lock()
		c.bell.unmap()
		c.bell.mu.Unlock()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for name, r := range c.regions {
		r.gone = true // links to it in other sessions go at their next call
		if r.lent {
			r.lent = false
			delete(lentRegions, r)
		}
		if !r.inUse { // in-use regions are unmapped when their call ends
			r.unmap()
			delete(c.regions, name)
		}
	}
	c.lent = nil
	// The plugin is gone: the other Clients' regions its handles kept are free.
	for h, rs := range c.borrowPins {
		releaseBorrowsLocked(rs, true)
		delete(c.borrowPins, h)
	}
	if err := c.sess.remove(); err != nil {
		return fmt.Errorf("%s: remove its shared memory: %w", c.who, err)
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
	c.stopProcess(false)
}

// Bounds of stopProcess. go-plugin gives a plugin 2 s to exit after it was
// asked to, then kills it; stopGrace leaves room for that.
var (
	stopGrace = 3 * time.Second
	stopWait  = 2 * time.Second
)

// stopProcess ends the plugin process and every process it started, and
// returns within stopGrace+stopWait whatever they do. graceful asks the plugin
// to exit by itself first (go-plugin's Kill); otherwise the process group is
// killed at once. go-plugin's Kill waits until the plugin's stdout and stderr
// are closed, which a child that inherited them can put off forever: the
// group kill ends such children, and the wait is bounded in any case.
func (c *Client) stopProcess(graceful bool) {
	pid := c.PID()
	if !graceful {
		killGroup(pid)
	}
	done := make(chan struct{})
	go func() {
		c.pc.Kill()
		close(done)
	}()
	select {
	case <-done:
		killGroup(pid) // children that closed their stdio and live on
		return
	case <-time.After(stopGrace):
	}
	killGroup(pid)
	select {
	case <-done:
	case <-time.After(stopWait):
		c.o.Logger.Warn("plugin output still open after its process group was killed; not waiting any longer", "plugin", c.who, "pid", pid)
	}
}
