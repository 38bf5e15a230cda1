package replica

// SetDiskSpace makes TierReport and the metrics see f's free space and
// size until the returned function restores the file system's.
func SetDiskSpace(f func(path string) (free, size int64, ok bool)) (restore func()) {
	old := diskSpace
	diskSpace = f
	return func() { diskSpace = old }
}
