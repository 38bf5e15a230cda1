package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Sizes and positions of the fixed header, as documented in the package doc.
const (
	// HeaderSize is the size of the fixed batch header in bytes.
	HeaderSize = 61
	// Magic is the format version this package writes and reads.
	Magic = 1

	// lengthPrefix is how many bytes precede the part counted by batch length.
	lengthPrefix = 12

	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// AttrDerived is the attributes bit (bit 3) of a derived batch: one the SPU
// builds on the consume path from the output of SmartModules. A derived
// batch is never stored, and the SPU refuses one on produce. Its offset
// deltas do not decrease but may skip and repeat, and its last offset delta
// is that of the last stored record it covers, so its record count need not
// be last offset delta + 1. See the package documentation.
const AttrDerived = 1 << 3

// ErrDerived is returned where a derived batch is not allowed: on produce
// and in a log.
var ErrDerived = errors.New("batch: derived batch (SmartModule output) where a stored batch belongs")

// Errors returned when bytes are not a well-formed batch. Callers test them
// with errors.Is; the wrapped message says which field is wrong.
var (
	// ErrTruncated means the bytes end before the batch does.
	ErrTruncated = errors.New("batch: truncated")
	// ErrCorrupt means a field has an impossible value.
	ErrCorrupt = errors.New("batch: corrupt")
	// ErrBadMagic means the batch has a format version this reader does not know.
	ErrBadMagic = errors.New("batch: unknown magic")
	// ErrBadCRC means the CRC32C does not match the content.
	ErrBadCRC = errors.New("batch: CRC mismatch")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed header of a batch.
type Header struct {
	BaseOffset      int64
	Length          int32 // bytes after the length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64 // Unix milliseconds
	MaxTimestamp    int64 // Unix milliseconds
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size returns the total size of the batch in bytes, header included.
func (h Header) Size() int { return lengthPrefix + int(h.Length) }

// LastOffset returns the offset of the last record of the batch.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset returns the offset that follows the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression returns the codec of the records section.
func (h Header) Compression() Compression { return Compression(h.Attributes & 0x7) }

// Derived reports whether the batch is a derived batch (AttrDerived).
func (h Header) Derived() bool { return h.Attributes&AttrDerived != 0 }

// ParseHeader decodes the fixed header at the start of b and checks that the
// header itself is sane (magic, length, record count, last offset delta); it
// does not check the CRC or that b holds the whole batch. It accepts derived
// batches (AttrDerived): a writer of logs refuses them with ErrDerived. It returns ErrTruncated when b is
// shorter than HeaderSize.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := Header{
		BaseOffset:      int64(be.Uint64(b[offBaseOffset:])),
		Length:          int32(be.Uint32(b[offLength:])),
		LeaderEpoch:     int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:           int8(b[offMagic]),
		CRC:             be.Uint32(b[offCRC:]),
		Attributes:      int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[offLastOffsetDelta:])),
		FirstTimestamp:  int64(be.Uint64(b[offFirstTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:     int32(be.Uint32(b[offRecordCount:])),
	}
	if h.Magic != Magic {
		return h, fmt.Errorf("%w: %d", ErrBadMagic, h.Magic)
	}
	if h.Length < HeaderSize-lengthPrefix {
		return h, fmt.Errorf("%w: batch length %d is shorter than the header", ErrCorrupt, h.Length)
	}
	if h.RecordCount <= 0 {
		return h, fmt.Errorf("%w: record count %d", ErrCorrupt, h.RecordCount)
	}
	if h.Derived() {
		if h.LastOffsetDelta < 0 {
			return h, fmt.Errorf("%w: derived batch with last offset delta %d", ErrCorrupt, h.LastOffsetDelta)
		}
	} else if h.LastOffsetDelta != h.RecordCount-1 {
		return h, fmt.Errorf("%w: last offset delta %d with %d records", ErrCorrupt, h.LastOffsetDelta, h.RecordCount)
	}
	if h.BaseOffset < 0 {
		return h, fmt.Errorf("%w: negative base offset %d", ErrCorrupt, h.BaseOffset)
	}
	if h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta) {
		return h, fmt.Errorf("%w: base offset %d leaves no room for %d records", ErrCorrupt, h.BaseOffset, h.RecordCount)
	}
	if !h.Compression().Valid() {
		return h, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, h.Compression())
	}
	return h, nil
}

// Validate checks that b holds exactly one whole, well-formed batch: a sane
// header, a length that matches len(b), and a matching CRC. It does not
// decompress or decode the records. It is the check the SPU runs on every
// produced batch and on the tail of a segment at recovery.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() > len(b) {
		return h, fmt.Errorf("%w: batch of %d bytes, have %d", ErrTruncated, h.Size(), len(b))
	}
	if h.Size() < len(b) {
		return h, fmt.Errorf("%w: batch of %d bytes followed by %d extra bytes", ErrCorrupt, h.Size(), len(b)-h.Size())
	}
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: stored %08x, computed %08x", ErrBadCRC, h.CRC, got)
	}
	return h, nil
}

// Next splits b into the first whole batch and the rest, validating the first
// batch as Validate does. It is how a reader walks a buffer of concatenated
// batches. It returns ErrTruncated when b ends inside the first batch.
func Next(b []byte) (first []byte, h Header, rest []byte, err error) {
	h, err = ParseHeader(b)
	if err != nil {
		return nil, h, b, err
	}
	if h.Size() > len(b) {
		return nil, h, b, fmt.Errorf("%w: batch of %d bytes, have %d", ErrTruncated, h.Size(), len(b))
	}
	first, rest = b[:h.Size()], b[h.Size():]
	if got := crc32.Checksum(first[offAttributes:], castagnoli); got != h.CRC {
		return nil, h, b, fmt.Errorf("%w: stored %08x, computed %08x", ErrBadCRC, h.CRC, got)
	}
	return first, h, rest, nil
}

// SetBaseOffset stamps the base offset into the batch at the start of b.
// The CRC does not cover it, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetLeaderEpoch stamps the leader epoch into the batch at the start of b.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}
