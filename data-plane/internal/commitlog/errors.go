package commitlog

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors returned by a Log. Callers test them with errors.Is. Append also
// returns the errors of package internal/batch (batch.ErrTruncated,
// batch.ErrCorrupt, batch.ErrBadMagic, batch.ErrBadCRC), wrapped, for input
// that is not well-formed batches.
var (
	// ErrOffsetOutOfRange means an offset below the log's start offset or
	// above its end offset. The consumer should restart from StartOffset
	// or EndOffset.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")
	// ErrBatchTooLarge means a batch larger than Config.MaxBatchBytes. The
	// producer should send smaller batches.
	ErrBatchTooLarge = errors.New("commitlog: batch too large")
	// ErrNoSpace means the disk is full. Nothing of the failed append was
	// kept; appends may succeed again once space is freed.
	ErrNoSpace = errors.New("commitlog: no space left on device")
	// ErrNotContiguous means AppendReplicated was given batches that do
	// not continue the log exactly at its end offset: a gap or an overlap.
	// The follower should fetch again from EndOffset.
	ErrNotContiguous = errors.New("commitlog: batches do not continue the log")
	// ErrClosed means the Log was closed.
	ErrClosed = errors.New("commitlog: log closed")
	// ErrCorrupt means the stored data does not agree with itself (a batch
	// header where the index says there is none, for instance): the disk
	// or another process damaged the files. Reopening the Log rebuilds the
	// indexes and truncates a damaged tail.
	ErrCorrupt = errors.New("commitlog: corrupt log")
	// ErrFailed means an earlier fsync or write-back failed, so the Log no
	// longer knows what is on disk (the page cache may have dropped the
	// data). Every later Append and Sync fails with it: close the Log and
	// reopen it, which recovers what was really written.
	ErrFailed = errors.New("commitlog: log failed")
)

// ioError wraps err, the failure of op, adding ErrNoSpace when the disk is
// full.
func ioError(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &noSpaceError{op: op, err: err}
	}
	return fmt.Errorf("commitlog: %s: %w", op, err)
}

// noSpaceError is a failure for lack of space: it wraps both ErrNoSpace and
// the system's error, without repeating "no space left on device".
type noSpaceError struct {
	op  string
	err error
}

func (e *noSpaceError) Error() string   { return "commitlog: " + e.op + ": " + e.err.Error() }
func (e *noSpaceError) Unwrap() []error { return []error{ErrNoSpace, e.err} }
