//go:build unix

package results

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLockInProcess(t *testing.T) {
	c := Store{Root: t.TempDir()}.Cell("exp", "c1")
	if o, err := c.Locker(); err != nil || o != nil {
		t.Fatalf("fresh cell: Locker = %v, %v", o, err)
	}
	l, err := c.Lock()
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Locker()
	if err != nil || o == nil || o.PID != os.Getpid() || !o.Self() {
		t.Fatalf("held: Locker = %+v, %v", o, err)
	}
	_, err = c.Lock()
	var held *HeldError
	if !errors.As(err, &held) || held.Owner.PID != os.Getpid() {
		t.Fatalf("second Lock: %v, want a HeldError naming this process", err)
	}
	if !strings.Contains(err.Error(), "exp/c1 is being run by ") || !strings.Contains(err.Error(), "/pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("message: %v", err)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := l.Unlock(); err != nil {
		t.Errorf("second Unlock: %v", err)
	}
	if o, err := c.Locker(); err != nil || o != nil {
		t.Errorf("released: Locker = %v, %v", o, err)
	}
	l, err = c.Lock()
	if err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	l.Unlock()
}

// TestLockOwnerKilled: a child process locks a cell and begins it; while it
// lives the cell is running elsewhere and cannot be locked; once it is killed
// (SIGKILL, no clean-up) the kernel has released the lock, the cell shows as
// interrupted, and Lock takes it over.
func TestLockOwnerKilled(t *testing.T) {
	if root := os.Getenv("LIQUIDLAB_LOCK_CHILD"); root != "" {
		c := Store{Root: root}.Cell("exp", "c1")
		if _, err := c.Lock(); err != nil {
			t.Fatal(err)
		}
		if err := c.Begin(testInfo(0, nil), nil, nil); err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	root := t.TempDir()
	s := Store{Root: root}
	c := s.Cell("exp", "c1")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockOwnerKilled$")
	cmd.Env = append(os.Environ(), "LIQUIDLAB_LOCK_CHILD="+root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child: %q, %v", line, err)
	}
	_, err = c.Lock()
	var held *HeldError
	if !errors.As(err, &held) || held.Owner.PID != cmd.Process.Pid {
		t.Fatalf("Lock while the child holds it: %v", err)
	}
	recs, err := s.Records("exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Status != StatusRunningElsewhere || !strings.Contains(recs[0].Error, "pid "+strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("records while the child runs: %+v", recs)
	}
	cmd.Process.Kill()
	cmd.Wait()
	recs, err = s.Records("exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Status != StatusInterrupted {
		t.Fatalf("records after the kill: %+v", recs)
	}
	l, err := c.Lock()
	if err != nil {
		t.Fatalf("Lock after the owner died: %v", err)
	}
	defer l.Unlock()
	if o, _ := c.Locker(); o == nil || !o.Self() {
		t.Errorf("owner after takeover: %+v", o)
	}
	// The dead child as a record-only owner (file systems without flock):
	// same host and no such process, so taken over; another host's is not.
	h, _ := os.Hostname()
	if !(Owner{Host: h, PID: cmd.Process.Pid}).dead() {
		t.Error("the killed child is not dead")
	}
	if (Owner{Host: h + "-elsewhere", PID: cmd.Process.Pid}).dead() || (Owner{Host: h, PID: os.Getpid()}).dead() {
		t.Error("a live or remote owner counted as dead")
	}
}
