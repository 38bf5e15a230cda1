//go:build unix

package localcmd

import (
	"errors"
	"syscall"
)

// processExists reports whether a process with the pid exists (a zombie
// included; see install.alive).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// terminate asks the process to stop (SIGTERM).
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// kill stops the process at once (SIGKILL).
func kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// detached starts the control plane in a session of its own, so that it
// outlives the terminal that ran `spate local up`.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
