//go:build !unix

package localcmd

import (
	"os"
	"syscall"
)

// processExists reports whether a process with the pid exists.
func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

// terminate stops the process. Without signals the control plane cannot
// stop its SPUs first; they notice and are stopped by `spate local down`'s
// caller or the next `spate local up`.
func terminate(pid int) error { return kill(pid) }

// kill stops the process at once.
func kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// detached returns the defaults: the control plane runs on in the
// background when `spate local up` exits.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
