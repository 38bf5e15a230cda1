package client

import (
	"fmt"
	"time"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
)

// Offset says where in a partition a consumer starts. Make one with
// Beginning, End, At, FromBeginning, FromEnd or AtTime. The zero Offset is
// Beginning.
type Offset struct {
	kind offsetKind
	n    int64 // the offset, the count or the Unix milliseconds, by kind
}

type offsetKind uint8

const (
	offsetBeginning offsetKind = iota
	offsetEnd
	offsetAbsolute
	offsetFromBeginning
	offsetFromEnd
	offsetTime
)

// Beginning is the first offset the partition still retains.
func Beginning() Offset { return Offset{kind: offsetBeginning} }

// End is the partition's end offset when the consumer starts: the consumer
// sees only records produced after that.
func End() Offset { return Offset{kind: offsetEnd} }

// At is the absolute offset n. Consuming from an offset the partition no
// longer retains fails with an error for which IsOutOfRange is true.
func At(n int64) Offset { return Offset{kind: offsetAbsolute, n: n} }

// FromBeginning is n records after the partition's start offset, clamped
// to its end offset.
func FromBeginning(n int64) Offset { return Offset{kind: offsetFromBeginning, n: n} }

// FromEnd is n records before the partition's end offset, clamped to its
// start offset: FromEnd(10) reads the last 10 records, then new ones.
func FromEnd(n int64) Offset { return Offset{kind: offsetFromEnd, n: n} }

// AtTime is the first record of the first batch whose newest record has a
// timestamp at or after t. Records are batched, so the first few records
// delivered may be older than t.
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, n: t.UnixMilli()} }

// String describes o, as in "beginning", "end", "offset 42",
// "beginning+5", "end-5" or "time 2024-01-02T03:04:05Z".
func (o Offset) String() string {
	switch o.kind {
	case offsetEnd:
		return "end"
	case offsetAbsolute:
		return fmt.Sprintf("offset %d", o.n)
	case offsetFromBeginning:
		return fmt.Sprintf("beginning+%d", o.n)
	case offsetFromEnd:
		return fmt.Sprintf("end-%d", o.n)
	case offsetTime:
		return "time " + time.UnixMilli(o.n).UTC().Format(time.RFC3339Nano)
	default:
		return "beginning"
	}
}

// validate reports an Offset that the SPU would refuse.
func (o Offset) validate() error {
	switch o.kind {
	case offsetAbsolute, offsetFromBeginning, offsetFromEnd:
		if o.n < 0 {
			return fmt.Errorf("client: negative %s: offsets and counts start at 0", o)
		}
	}
	return nil
}

// proto returns o as the wire message.
func (o Offset) proto() *dataplanev1.Offset {
	switch o.kind {
	case offsetEnd:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_End{End: true}}
	case offsetAbsolute:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: o.n}}
	case offsetFromBeginning:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_FromBeginning{FromBeginning: o.n}}
	case offsetFromEnd:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_FromEnd{FromEnd: o.n}}
	case offsetTime:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_TimestampMs{TimestampMs: o.n}}
	default:
		return &dataplanev1.Offset{Position: &dataplanev1.Offset_Beginning{Beginning: true}}
	}
}
