//go:build unix

package model

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestCheckpointWriteOverFileSizeLimit writes a checkpoint image larger than
// the process's file-size limit (RLIMIT_FSIZE, as `ulimit -f` sets it) in a
// child process: the write must fail, and leave neither the checkpoint nor a
// temporary file. Go ignores SIGXFSZ, so the write returns EFBIG.
func TestCheckpointWriteOverFileSizeLimit(t *testing.T) {
	if dir := os.Getenv("LIQUIDLAB_FSIZE_CHILD"); dir != "" {
		lim := syscall.Rlimit{Cur: 64 << 10, Max: 64 << 10}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Skip("cannot lower RLIMIT_FSIZE:", err)
		}
		err := writeFileAtomic(filepath.Join(dir, "checkpoint.safetensors"), make([]byte, 1<<20))
		if err == nil {
			t.Fatal("a write over the file-size limit succeeded")
		}
		t.Log("write error:", err)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointWriteOverFileSizeLimit$", "-test.v")
	cmd.Env = append(os.Environ(), "LIQUIDLAB_FSIZE_CHILD="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "SKIP") {
		t.Skipf("child skipped:\n%s", out)
	}
	if !strings.Contains(string(out), "write error:") {
		t.Fatalf("child did not report the write error:\n%s", out)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}
