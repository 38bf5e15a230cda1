//go:build !linux

package provision

import "syscall"

// sysProcAttr returns the defaults: only Linux can tie an SPU's life to the
// control plane's, elsewhere Close must stop the SPUs.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
