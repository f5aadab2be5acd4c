package plugin

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	gproto "google.golang.org/protobuf/proto"

	"liquidlab/framework/plugin/proto"
)

// The doorbell: Forward and Backward without gRPC.
//
// A gRPC call to a plugin that has slept while the other stages computed took
// 1–2 ms on this project's VMs (a trivial call: 0.2–0.6 ms back to back, 1–2 ms
// after 200 ms idle), several goroutine hand-offs and thread wake-ups on each
// side; a futex round trip between two processes takes 50–80 µs. With the
// shared-memory transport the host therefore also creates a doorbell file in
// the session directory: one page of control words and a payload area. The
// host writes the request message (the same protobuf gRPC would carry: tensor
// descriptors, the data is in the regions) into the payload, bumps the request
// number and wakes the plugin's doorbell goroutine with a futex; that goroutine
// runs the very handler gRPC would (grpcServer.Forward or Backward), writes the
// reply message (or the error's code and text) over the payload, bumps the
// reply number and wakes the host. Everything else (Info, Describe, Release,
// shutdown) stays on gRPC, and so does a call when the doorbell is busy (a
// concurrent call), its message does not fit, or an earlier call on it was
// abandoned (the host's context ended first) and the plugin has not answered
// it yet (it may still write that reply over the payload). A plugin that does not answer
// the doorbell at start (an older build, or not Linux) gets gRPC for everything.
// LIQUIDLAB_PLUGIN_DOORBELL=0 in the host's environment turns it off.

const (
	doorbellName = "doorbell"
	doorbellSize = 4 << 20
	dbPayload    = 4096 // offset of the payload area
	dbMagic      = 0x6c6c6462

	dbReady   = 0   // plugin: dbMagic once its doorbell goroutine listens
	dbReq     = 64  // host: number of the last request (the plugin waits on it)
	dbResp    = 128 // plugin: number of the last request answered (the host waits on it)
	dbCancel  = 192 // host: number of a request whose caller gave up
	dbMethod  = 256 // host: dbForward or dbBackward
	dbReqLen  = 260 // host: request message bytes
	dbRespLen = 264 // plugin: reply message (or error text) bytes
	dbCode    = 268 // plugin: gRPC status code of the reply, 0 = OK

	dbForward  = 1
	dbBackward = 2

	// cancelPoll is how often a call on the doorbell checks whether the host
	// gave up on it; its stage's context is cancelled within that time.
	cancelPoll = 100 * time.Millisecond
	// hostPoll is how often the host, waiting for a reply, looks at its
	// context and whether the plugin process is still there.
	hostPoll = 50 * time.Millisecond
)

// doorbell is one mapped doorbell file.
type doorbell struct {
	mem []byte

	// host side
	mu        sync.Mutex // one call at a time; others use gRPC
	seq       uint32
	abandoned uint32      // a call whose caller gave up and the plugin has not answered yet
	retired   atomic.Bool // the plugin exited or the doorbell is unmapped: never used again
}

func (d *doorbell) word(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&d.mem[off]))
}

func (d *doorbell) payload() []byte { return d.mem[dbPayload:] }

// createDoorbell makes the session's doorbell file (host side).
func createDoorbell(dir string) (*doorbell, error) {
	if !futexSupported || os.Getenv("LIQUIDLAB_PLUGIN_DOORBELL") == "0" {
		return nil, errors.New("doorbell off")
	}
	r, err := createRegion(dir, doorbellName, doorbellSize)
	if err != nil {
		return nil, err
	}
	return &doorbell{mem: r.mem}, nil
}

// answered reports whether the plugin listens on the doorbell (after Info).
func (d *doorbell) answered() bool { return d.word(dbReady).Load() == dbMagic }

// unmap retires the doorbell and unmaps it; the host calls it holding d.mu.
func (d *doorbell) unmap() {
	if d == nil {
		return
	}
	d.retired.Store(true)
	if d.mem != nil {
		_ = syscall.Munmap(d.mem)
		d.mem = nil
	}
}

// ring sends one call over the doorbell and fills resp. used is false when the
// doorbell was not used (busy, retired, the request too large): the caller then
// uses gRPC. exited reports whether the plugin process is gone.
func (d *doorbell) ring(ctx context.Context, method uint32, req, resp gproto.Message, exited func() bool) (used bool, err error) {
	if d == nil || d.retired.Load() || !d.mu.TryLock() {
		return false, nil
	}
	defer d.mu.Unlock()
	if d.retired.Load() {
		return false, nil
	}
	if d.abandoned != 0 {
		// The plugin may still write that call's reply over the payload;
		// once it has (its reply number reached it), the doorbell is free.
		if d.word(dbResp).Load() != d.abandoned {
			return false, nil
		}
		d.abandoned = 0
	}
	p := d.payload()
	n, err := putMessage(p, req)
	if err != nil {
		return false, nil // use gRPC
	}
	d.seq++
	seq := d.seq
	d.word(dbMethod).Store(method)
	d.word(dbReqLen).Store(uint32(n))
	d.word(dbReq).Store(seq)
	futexWake(d.word(dbReq))
	for {
		got := d.word(dbResp).Load()
		if got == seq {
			break
		}
		futexWait(d.word(dbResp), got, hostPoll)
		if d.word(dbResp).Load() == seq {
			break
		}
		if err := ctx.Err(); err != nil {
			d.abandoned = seq
			d.word(dbCancel).Store(seq)
			return true, status.FromContextError(err).Err()
		}
		if exited() {
			d.retired.Store(true)
			return true, status.Error(codes.Unavailable, "the plugin process exited")
		}
	}
	rn := int(d.word(dbRespLen).Load())
	if rn > len(p) {
		d.retired.Store(true)
		return true, status.Errorf(codes.Internal, "doorbell reply of %d bytes in a %d-byte area", rn, len(p))
	}
	if code := codes.Code(d.word(dbCode).Load()); code != codes.OK {
		return true, status.Error(code, string(p[:rn]))
	}
	if err := gproto.Unmarshal(p[:rn], resp); err != nil {
		return true, status.Errorf(codes.Internal, "the plugin's doorbell reply does not parse: %v", err)
	}
	return true, nil
}

// openDoorbell maps the host's doorbell file and starts answering it (plugin
// side); without one (an older host, or the doorbell turned off) it does
// nothing.
func (s *grpcServer) openDoorbell(dir string) {
	if !futexSupported {
		return
	}
	s.bellOnce.Do(func() {
		f, err := os.OpenFile(filepath.Join(dir, doorbellName), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			s.log.Warn("cannot open the host's doorbell; using gRPC", "error", err)
			return
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || fi.Size() != doorbellSize {
			s.log.Warn("the host's doorbell has the wrong size; using gRPC")
			return
		}
		mem, err := syscall.Mmap(int(f.Fd()), 0, doorbellSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
		if err != nil {
			s.log.Warn("cannot map the host's doorbell; using gRPC", "error", err)
			return
		}
		d := &doorbell{mem: mem}
		seen := d.word(dbReq).Load()
		d.word(dbReady).Store(dbMagic)
		// The mapping stays until the process exits: the goroutine may be
		// waiting on it when the session closes.
		go s.answer(d, seen)
	})
}

// putMessage writes m's encoding at the start of p and returns its length.
func putMessage(p []byte, m gproto.Message) (int, error) {
	n := gproto.Size(m)
	if n > len(p) {
		return 0, status.Errorf(codes.ResourceExhausted, "a message of %d bytes does not fit the doorbell's %d", n, len(p))
	}
	// Capacity n: the encoding cannot be moved elsewhere.
	if b, err := (gproto.MarshalOptions{}).MarshalAppend(p[:0:n], m); err != nil || len(b) != n {
		return 0, status.Errorf(codes.Internal, "encode a message of %d bytes: %v", n, err)
	}
	return n, nil
}

// answer serves the doorbell's requests one after the other.
func (s *grpcServer) answer(d *doorbell, seen uint32) {
	for {
		for d.word(dbReq).Load() == seen {
			futexWait(d.word(dbReq), seen, 0)
		}
		seen = d.word(dbReq).Load()
		resp, err := s.doorbellCall(d, seen)
		p := d.payload()
		code := codes.OK
		n := 0
		if err == nil {
			n, err = putMessage(p, resp)
		}
		if err != nil {
			st := status.Convert(err)
			code = st.Code()
			if code == codes.OK {
				code = codes.Unknown
			}
			n = copy(p, st.Message())
		}
		d.word(dbCode).Store(uint32(code))
		d.word(dbRespLen).Store(uint32(n))
		d.word(dbResp).Store(seen)
		futexWake(d.word(dbResp))
	}
}

// doorbellCall runs request seq through the gRPC handler of its method, with a
// context cancelled when the host gives up on it.
func (s *grpcServer) doorbellCall(d *doorbell, seq uint32) (gproto.Message, error) {
	n := int(d.word(dbReqLen).Load())
	p := d.payload()
	if n > len(p) {
		return nil, status.Errorf(codes.InvalidArgument, "request of %d bytes in a %d-byte doorbell", n, len(p))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Every cancelPoll the call looks whether the host gave up on it (a
	// timer, no goroutine, so that short calls cost nothing).
	var watch *time.Timer
	var mu sync.Mutex
	poll := func() {
		if d.word(dbCancel).Load() == seq {
			cancel()
			return
		}
		mu.Lock()
		if watch != nil {
			watch.Reset(cancelPoll)
		}
		mu.Unlock()
	}
	mu.Lock()
	watch = time.AfterFunc(cancelPoll, poll)
	mu.Unlock()
	defer func() {
		mu.Lock()
		watch.Stop()
		watch = nil
		mu.Unlock()
	}()
	switch d.word(dbMethod).Load() {
	case dbForward:
		req := &proto.ForwardRequest{}
		if err := gproto.Unmarshal(p[:n], req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "request does not parse: %v", err)
		}
		return s.Forward(ctx, req)
	case dbBackward:
		req := &proto.BackwardRequest{}
		if err := gproto.Unmarshal(p[:n], req); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "request does not parse: %v", err)
		}
		return s.Backward(ctx, req)
	}
	return nil, status.Errorf(codes.Unimplemented, "unknown doorbell method %d", d.word(dbMethod).Load())
}
