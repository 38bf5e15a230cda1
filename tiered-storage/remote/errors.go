package remote

import (
	"errors"
	"fmt"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

// Errors of a Reader; test for them with errors.Is.
var (
	// ErrOffsetOutOfRange means the offset is not held remotely: below the
	// remote start (remote retention deleted it) or at or past the remote
	// end (not uploaded yet). The error says which, and the remote range.
	ErrOffsetOutOfRange = errors.New("remote: offset out of range")
	// ErrMissing means an object the remote index names is not in the
	// store, or offsets between two remote segments have no segment: data
	// was deleted behind the SPU's back. Retrying does not help.
	ErrMissing = errors.New("remote: segment missing")
	// ErrCorrupt means a remote segment does not agree with itself or with
	// its key: a batch fails its CRC, a header is damaged, offsets do not
	// follow on. Retrying does not help.
	ErrCorrupt = errors.New("remote: corrupt segment")
	// ErrClosed means the Reader was closed.
	ErrClosed = errors.New("remote: reader closed")
)

// SegmentError is a failure to read one remote segment. It names the topic,
// the partition and the segment's offsets, so the consumer (and the
// operator) knows which records are affected.
type SegmentError struct {
	Topic      string
	Partition  int32
	Base, Last int64 // the segment's offsets, inclusive
	Err        error // wraps ErrMissing, ErrCorrupt, objstore.ErrUnavailable, ...
}

func (e *SegmentError) Error() string {
	return fmt.Sprintf("remote segment of topic %q partition %d, offsets %d to %d: %v", e.Topic, e.Partition, e.Base, e.Last, e.Err)
}

func (e *SegmentError) Unwrap() error { return e.Err }

// IsRetriable reports whether err may go away by itself: the object store
// was unavailable (or answered too slowly). Missing and corrupt segments and
// offsets out of range are not retriable.
func IsRetriable(err error) bool {
	return errors.Is(err, objstore.ErrUnavailable)
}
