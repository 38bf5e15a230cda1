package client

import (
	"time"
	"unsafe"

	"github.com/spatehq/spate/internal/batch"
)

// Record is one record of a topic partition.
//
// To produce, set Key, Value and optionally Timestamp and Headers; Partition
// is read only by the manual partitioner (see ManualPartitioner) and Offset
// is ignored. The producer fills Partition, Offset and, when it was zero,
// Timestamp in the Record it passes to the done callback.
//
// A consumed Record has every field set.
type Record struct {
	// Partition is the partition number within the topic.
	Partition int32
	// Offset is the record's position in its partition, assigned by the SPU.
	Offset int64
	// Timestamp is the record's time, stored with millisecond precision.
	// The zero time means the time of the Produce call, to within about a
	// millisecond.
	Timestamp time.Time
	// Key chooses the partition under the default partitioner. Nil is a
	// null key, distinct from an empty one.
	Key []byte
	// Value is the payload. Nil is a null value (a tombstone), distinct from
	// an empty one.
	Value []byte
	// Headers are key-value pairs carried with the record.
	Headers []Header
}

// Header is a key-value pair attached to a record.
type Header struct {
	// Key names the header.
	Key string
	// Value is the header's content; nil is a null value.
	Value []byte
}

// Header and batch.RecordHeader must stay convertible (identical underlying
// types), which makes the unsafe slice conversions below sound. This line
// stops compiling if they drift apart.
var _ = batch.RecordHeader(Header{})

// toBatchHeaders returns h as batch headers without copying.
func toBatchHeaders(h []Header) []batch.RecordHeader {
	if h == nil {
		return nil
	}
	return unsafe.Slice((*batch.RecordHeader)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}

// fromBatchHeaders returns h as client headers without copying.
func fromBatchHeaders(h []batch.RecordHeader) []Header {
	if h == nil {
		return nil
	}
	return unsafe.Slice((*Header)(unsafe.Pointer(unsafe.SliceData(h))), len(h))
}

// Bounds of the encoded size of a record, used to decide, before encoding
// it, whether a record fits in a batch. They are upper bounds of what the
// varints of the batch format take (see internal/batch).
const (
	// recordOverhead covers the record length, attributes, timestamp delta,
	// offset delta, key length, value length and header count.
	recordOverhead = 5 + 1 + 10 + 5 + 5 + 5 + 5
	// headerOverhead covers a header's key and value lengths.
	headerOverhead = 5 + 5
)

// encodedSize returns an upper bound of the bytes r takes in a batch.
func encodedSize(r *Record) int {
	n := recordOverhead + len(r.Key) + len(r.Value)
	for i := range r.Headers {
		n += headerOverhead + len(r.Headers[i].Key) + len(r.Headers[i].Value)
	}
	return n
}
