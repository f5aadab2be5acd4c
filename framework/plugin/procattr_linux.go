package plugin

import (
	"os/exec"
	"syscall"
)

// setProcAttr starts the plugin in a process group of its own, so that it and
// every process it starts can be killed together (killGroup), and so that the
// terminal's SIGINT and SIGHUP reach only the host, which then stops its
// plugins in order. The kernel sends the plugin SIGTERM when the host's thread
// that started it dies, which covers a SIGKILLed host; the plugin's Serve
// catches it, removes the session's shared memory and exits.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	cmd.SysProcAttr.Setpgid = true
}

// killGroup sends SIGKILL to the process group the plugin leads.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
