package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// exitStatus waits up to d for the process to be gone and returns how it
// ended and the tail of its stderr.
func (c *Client) exitStatus(d time.Duration) (string, string, bool) {
	deadline := time.Now().Add(d)
	for !c.gone() {
		if time.Now().After(deadline) {
			return "", "", false
		}
		time.Sleep(10 * time.Millisecond)
	}
	// go-plugin records the exit status once the process's stdout and stderr
	// have closed too (a child that inherited them can hold them open); the
	// status is read only after it says so.
	for end := time.Now().Add(500 * time.Millisecond); !c.pc.Exited() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	st := "exit status unknown"
	if c.pc.Exited() {
		if ps := c.cmd.ProcessState; ps != nil {
			st = ps.String()
		}
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

// tailWriter keeps the last lines of a plugin's stderr for error messages and
// passes the lines on, except a crash report's goroutine dump: from a crash
// headline (a Go panic or fatal error, a signal report) on, only headlines and
// the "[signal ...]" line are passed, then one note that the rest is left out.
// The first lines of the report are kept apart, so the error quotes them
// however long the dump is.
type tailWriter struct {
	mu     sync.Mutex
	next   io.Writer
	lines  []string
	part   []byte
	crash  []string // the crash report's first lines
	hidden int      // lines of the report not passed on
}

const (
	tailLines  = 64
	crashLines = 12 // lines of a crash report quoted in errors
)

// crashHeadline matches the first line of a Go runtime crash report.
var crashHeadline = regexp.MustCompile(`^(panic: |fatal error: |unexpected fault address |SIG[A-Z]+: )`)

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
		line := string(t.part[:i])
		t.part = t.part[i+1:]
		t.lines = append(t.lines, line)
		t.pass(line)
	}
	if len(t.lines) > tailLines {
		t.lines = append([]string(nil), t.lines[len(t.lines)-tailLines:]...)
	}
	return len(p), nil
}

// pass records a line in the crash report and hands it on when it is shown.
func (t *tailWriter) pass(line string) {
	if t.crash == nil && crashHeadline.MatchString(line) {
		t.crash = []string{}
	}
	if t.crash != nil && len(t.crash) < crashLines {
		t.crash = append(t.crash, line)
	}
	if !t.showsLocked(line) {
		if t.hidden == 0 && t.next != nil {
			_, _ = io.WriteString(t.next, "(the rest of the plugin's crash report is left out; the error quotes its first lines)\n")
		}
		t.hidden++
		return
	}
	if t.next != nil {
		_, _ = io.WriteString(t.next, line+"\n")
	}
}

// shows reports whether a line of the plugin's stderr may be shown: any line
// before a crash, and a crash report's headlines.
func (t *tailWriter) shows(line string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.showsLocked(line)
}

func (t *tailWriter) showsLocked(line string) bool {
	return t.crash == nil || crashHeadline.MatchString(line) || strings.HasPrefix(line, "[signal ")
}

// last returns the lines worth showing: the first lines of the crash report
// when there is one, else the final lines.
func (t *tailWriter) last() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.crash) > 0 {
		return append([]string(nil), t.crash...)
	}
	lines := t.lines
	if len(t.part) > 0 {
		lines = append(append([]string(nil), lines...), string(t.part))
	}
	return lines[max(0, len(lines)-crashLines):]
}

// crashLogger is the logger go-plugin gets. go-plugin logs every line of the
// plugin's stderr through a logger it derives with Named, the lines of a crash
// report at error level; those derived loggers drop what t does not show, so
// a goroutine dump never reaches the host's log.
type crashLogger struct {
	hclog.Logger
	t      *tailWriter
	filter bool
}

func (l crashLogger) Named(name string) hclog.Logger {
	return crashLogger{l.Logger.Named(name), l.t, true}
}

func (l crashLogger) ResetNamed(name string) hclog.Logger {
	return crashLogger{l.Logger.ResetNamed(name), l.t, true}
}

func (l crashLogger) With(args ...interface{}) hclog.Logger {
	return crashLogger{l.Logger.With(args...), l.t, l.filter}
}

func (l crashLogger) keep(msg string) bool { return !l.filter || l.t.shows(msg) }

func (l crashLogger) Log(level hclog.Level, msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Log(level, msg, args...)
	}
}

func (l crashLogger) Trace(msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Trace(msg, args...)
	}
}

func (l crashLogger) Debug(msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Debug(msg, args...)
	}
}

func (l crashLogger) Info(msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Info(msg, args...)
	}
}

func (l crashLogger) Warn(msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Warn(msg, args...)
	}
}

func (l crashLogger) Error(msg string, args ...interface{}) {
	if l.keep(msg) {
		l.Logger.Error(msg, args...)
	}
}
