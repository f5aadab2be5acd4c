package plugin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestStaleSessionsRemoved: shared memory left by hosts that died without
// cleaning up (kill -9 of the process group, a closed terminal) is removed by
// the next Launch; that of live processes is never touched.
func TestStaleSessionsRemoved(t *testing.T) {
	dead := exec.Command(os.Args[0], "plugintest", "exit")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid, me, start := dead.Process.Pid, os.Getpid(), selfStart()
	if start == 0 {
		t.Fatal("cannot read this process's start time from /proc")
	}
	base := shmBase()
	mk := func(name string) string {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "h-1"), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	stale := []string{
		mk(fmt.Sprintf("liquidlab-%d-%d-1001", deadPid, start+1)), // owner gone
		mk(fmt.Sprintf("liquidlab-%d-%d-1002", me, start+1)),      // pid reused by another process
		mk(fmt.Sprintf("liquidlab-%d-1003", deadPid)),             // older name, owner gone
	}
	live := []string{
		mk(fmt.Sprintf("liquidlab-%d-%d-1004", me, start)), // this process
		mk(fmt.Sprintf("liquidlab-%d-1005", me)),           // older name, a live pid
		mk("liquidlab-test-1006"),                          // not a session name
	}
	// A session whose name says dead but whose lock a live process holds
	// (a host in another pid namespace) stays.
	locked := mk(fmt.Sprintf("liquidlab-%d-%d-1007", deadPid, start))
	f, err := os.Create(filepath.Join(locked, ownerLockName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	live = append(live, locked)

	c := launch(t, testOptions(TransportShm))
	for _, dir := range stale {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("stale session %s was not removed (%v)", filepath.Base(dir), err)
		}
	}
	for _, dir := range live {
		if _, err := os.Stat(filepath.Join(dir, "h-1")); err != nil {
			t.Errorf("session %s of a live process was touched: %v", filepath.Base(dir), err)
		}
	}
	// The new session's name identifies this process and its start time.
	pid, st, ok := parseSessionName(filepath.Base(c.dir))
	if !ok || pid != me || st != start {
		t.Errorf("session %s: pid %d start %d ok %v, want pid %d start %d", c.dir, pid, st, ok, me, start)
	}
	if !lockHeld(c.dir) {
		t.Errorf("the live session %s is not locked", c.dir)
	}
}
