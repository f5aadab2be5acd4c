//go:build !linux

package plugin

import "os/exec"

// setProcAttr is a no-op where there is no parent-death signal; the plugin's
// parent watch still ends it when the host dies.
func setProcAttr(*exec.Cmd) {}

// killGroup is a no-op off Linux: only the plugin process itself is killed.
func killGroup(int) {}
