//go:build !linux && !darwin

package replica

// statfsSpace cannot read the free space on this platform.
func statfsSpace(string) (free, size int64, ok bool) { return 0, 0, false }
