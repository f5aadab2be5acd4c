//go:build !linux

package plugin

import "os/exec"

// setParentDeathSignal is a no-op where there is no parent-death signal; the
// plugin's parent watch still ends it when the host dies.
func setParentDeathSignal(*exec.Cmd) {}
