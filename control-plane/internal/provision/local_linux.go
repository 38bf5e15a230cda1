package provision

import "syscall"

// sysProcAttr puts an SPU in its own process group and has the kernel send
// it SIGTERM when the thread that started it dies. Go does not end threads
// of goroutines that are not locked to them, so in practice this fires when
// the control plane exits, however it exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
