//go:build !linux

package commitlog

import (
	"fmt"
	"os"
)

// fdatasync flushes f to the disk; without fdatasync(2), with fsync.
func fdatasync(f *os.File) error { return f.Sync() }

// lockDir creates the lock file. Only Linux takes the lock: the SPU runs on
// Linux, and other systems are for development.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("commitlog: lock: %w", err)
	}
	return f, nil
}
