//go:build linux || darwin

package replica

import "syscall"

// statfsSpace returns the bytes free (for unprivileged users) and the size
// of the file system that holds path; ok is false when they cannot be read.
func statfsSpace(path string) (free, size int64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, false
	}
	bs := uint64(st.Bsize)
	return int64(uint64(st.Bavail) * bs), int64(uint64(st.Blocks) * bs), true
}
