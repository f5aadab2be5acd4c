package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
