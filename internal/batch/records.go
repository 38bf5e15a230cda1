package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"
	"time"
)

// MaxRecordsBytes is the largest records section, after decompression, that
// Decode accepts and Build produces. It bounds the memory a hostile
// compressed batch (a decompression bomb) can make Decode allocate. Set it,
// if at all, before using the package; it is not safe to change while other
// goroutines decode.
var MaxRecordsBytes = 64 << 20

// minRecordSize is the size of the smallest encoded record: one byte each for
// length, attributes, timestamp delta, offset delta, key length, value length
// and header count.
const minRecordSize = 7

// Record is one record of a batch.
type Record struct {
	Offset    int64  // set from the batch's base offset by Decode; ignored by Builder.Append
	Timestamp int64  // Unix milliseconds; 0 in Builder.Append means the time of the call
	Key       []byte // nil is a null key, distinct from an empty one
	Value     []byte // nil is a null value (a tombstone), distinct from an empty one
	Headers   []RecordHeader
}

// RecordHeader is a key-value pair attached to a record.
type RecordHeader struct {
	Key   string
	Value []byte // nil is a null value, distinct from an empty one
}

// zeroHeader is the placeholder a Builder writes before the records and
// fills in at Build.
var zeroHeader [HeaderSize]byte

// Builder accumulates records and builds them into a batch. Its buffers are
// reused from one batch to the next, so that appending is free of
// allocations once they have grown to the size of a batch. The zero Builder
// builds uncompressed batches. A Builder is not safe for concurrent use.
type Builder struct {
	codec Compression
	// buf is a header placeholder followed by the encoded, uncompressed
	// records appended so far.
	buf []byte
	// zbuf is a header followed by the compressed records, reused by
	// AppendTo.
	zbuf           []byte
	count          int
	firstTimestamp int64
	maxTimestamp   int64

	// derived is set by AppendAt: the batch is a derived batch, whose
	// records' offset deltas are lastDelta and before, and which covers up
	// to coverDelta when coverSet.
	derived    bool
	lastDelta  int64
	coverDelta int64
	coverSet   bool
	// err is the first misuse of AppendAt, reported by Build.
	err error
}

// NewBuilder returns a Builder of batches compressed with c. An invalid c
// makes Build fail.
func NewBuilder(c Compression) *Builder {
	return &Builder{codec: c}
}

// Append adds r to the batch. A zero r.Timestamp means the current time,
// read from the clock for each such record: a producer appending at high
// rates saves that cost by reading the clock once and setting Timestamp
// itself. r.Offset is ignored, as the records of a batch take consecutive
// offsets in the order they are appended. Append keeps no reference to r's
// slices. A batch takes records from Append or from AppendAt, not both.
func (b *Builder) Append(r Record) {
	if b.count > 0 && b.derived {
		b.setErr(errors.New("batch: build: Append after AppendAt: a batch is ordinary or derived"))
	}
	ts := r.Timestamp
	if ts == 0 {
		ts = time.Now().UnixMilli()
	}
	b.append(r, ts, int64(b.count))
}

// AppendAt adds r to a derived batch (AttrDerived) at offsetDelta: r's
// offset minus the base offset the caller stamps with SetBaseOffset after
// Build. Offset deltas must not decrease from one record to the next; they
// may skip and repeat. r.Timestamp is taken as it is (0 is not "now"), and
// r.Offset is ignored. The batch's last offset delta is the last record's
// unless SetLastOffsetDelta raises it. Build fails when these rules are
// broken.
func (b *Builder) AppendAt(r Record, offsetDelta int64) {
	switch {
	case b.count == 0:
		b.derived = true
	case !b.derived:
		b.setErr(errors.New("batch: build: AppendAt after Append: a batch is ordinary or derived"))
	case offsetDelta < b.lastDelta:
		b.setErr(fmt.Errorf("batch: build: offset delta %d after %d: the offset deltas of a derived batch do not decrease", offsetDelta, b.lastDelta))
	}
	if offsetDelta < 0 || offsetDelta > math.MaxInt32 {
		b.setErr(fmt.Errorf("batch: build: offset delta %d out of range", offsetDelta))
	}
	b.lastDelta = offsetDelta
	b.append(r, r.Timestamp, offsetDelta)
}

// SetLastOffsetDelta sets the last offset delta of a derived batch: the
// offset of the last stored record it covers minus its base offset, which
// may lie past its last record's (when the records after it were dropped).
// It must not be below the last record's offset delta; Build fails if it is,
// or if the batch is not derived.
func (b *Builder) SetLastOffsetDelta(delta int64) { b.coverDelta, b.coverSet = delta, true }

func (b *Builder) setErr(err error) {
	if b.err == nil {
		b.err = err
	}
}

// append adds r with timestamp ts at offsetDelta.
func (b *Builder) append(r Record, ts, offsetDelta int64) {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, zeroHeader[:]...)
	}
	if b.count == 0 {
		b.firstTimestamp, b.maxTimestamp = ts, ts
	} else if ts > b.maxTimestamp {
		b.maxTimestamp = ts
	}
	tsDelta := ts - b.firstTimestamp

	// The record's length comes first but is known last: leave it two
	// bytes, enough for records of 64 to 8191 bytes, and move the record
	// in the rare case that it needs another size.
	start := len(b.buf)
	buf := append(b.buf, 0, 0)
	buf = append(buf, 0) // attributes
	buf = binary.AppendVarint(buf, tsDelta)
	buf = binary.AppendVarint(buf, offsetDelta)
	buf = appendBytesField(buf, r.Key)
	buf = appendBytesField(buf, r.Value)
	buf = binary.AppendVarint(buf, int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		buf = binary.AppendVarint(buf, int64(len(h.Key)))
		buf = append(buf, h.Key...)
		buf = appendBytesField(buf, h.Value)
	}
	size := len(buf) - start - 2
	if n := varintLen(int64(size)); n != 2 {
		end := len(buf)
		buf = slices.Grow(buf, max(n-2, 0))[:start+n+size]
		copy(buf[start+n:], buf[start+2:end])
	}
	binary.PutVarint(buf[start:], int64(size))
	b.buf = buf
	b.count++
}

// Count returns the number of records appended since the last Reset.
func (b *Builder) Count() int { return b.count }

// Size returns the size in bytes of the batch the appended records would
// make uncompressed, header included. A producer compares it with its batch
// size limit to decide when to Build.
func (b *Builder) Size() int { return max(len(b.buf), HeaderSize) }

// Build returns a new batch holding the records appended since the last
// Reset, compressed with the Builder's codec: base offset 0, leader epoch 0,
// no producer id (producer id -1, producer epoch -1, base sequence -1). The
// returned slice is the caller's; the Builder keeps its records until Reset.
// Build fails when there are no records, when the codec is invalid, or when
// the records exceed MaxRecordsBytes.
func (b *Builder) Build() ([]byte, error) {
	return b.AppendTo(nil)
}

// AppendTo is Build appending the batch to dst rather than allocating it, so
// that a producer can build into a reused buffer (a request being encoded,
// say) without allocating. It returns dst unchanged on error.
func (b *Builder) AppendTo(dst []byte) ([]byte, error) {
	if b.count == 0 {
		return dst, errors.New("batch: build: no records")
	}
	if b.err != nil {
		return dst, b.err
	}
	last := int64(b.count - 1)
	if b.derived {
		last = b.lastDelta
		if b.coverSet {
			last = b.coverDelta
		}
		if last < b.lastDelta {
			return dst, fmt.Errorf("batch: build: last offset delta %d below the last record's %d", b.coverDelta, b.lastDelta)
		}
		if last > math.MaxInt32 {
			return dst, fmt.Errorf("batch: build: last offset delta %d out of range", last)
		}
	} else if b.coverSet {
		return dst, errors.New("batch: build: SetLastOffsetDelta on a batch that is not derived (use AppendAt)")
	}
	if !b.codec.Valid() {
		return dst, fmt.Errorf("batch: build: unknown compression codec %d", b.codec)
	}
	records := b.buf[HeaderSize:]
	if len(records) > MaxRecordsBytes {
		return dst, fmt.Errorf("batch: build: %d bytes of records exceed MaxRecordsBytes (%d): build smaller batches", len(records), MaxRecordsBytes)
	}
	out := b.buf
	if b.codec != None {
		var err error
		b.zbuf, err = compress(b.codec, append(b.zbuf[:0], zeroHeader[:]...), records)
		if err != nil {
			return dst, fmt.Errorf("batch: build: %w", err)
		}
		out = b.zbuf
	}
	if len(out)-lengthPrefix > math.MaxInt32 || b.count > math.MaxInt32 {
		return dst, fmt.Errorf("batch: build: batch of %d bytes is too large", len(out))
	}
	b.putHeader(out, last)
	// For a nil dst, append allocates without first zeroing, unlike make.
	return append(dst, out...), nil
}

// putHeader writes the batch header into out[:HeaderSize], CRC last.
func (b *Builder) putHeader(out []byte, lastOffsetDelta int64) {
	be := binary.BigEndian
	be.PutUint64(out[offBaseOffset:], 0)
	be.PutUint32(out[offLength:], uint32(len(out)-lengthPrefix))
	be.PutUint32(out[offLeaderEpoch:], 0)
	out[offMagic] = Magic
	attrs := uint16(b.codec)
	if b.derived {
		attrs |= AttrDerived
	}
	be.PutUint16(out[offAttributes:], attrs)
	be.PutUint32(out[offLastOffsetDelta:], uint32(lastOffsetDelta))
	be.PutUint64(out[offFirstTimestamp:], uint64(b.firstTimestamp))
	be.PutUint64(out[offMaxTimestamp:], uint64(b.maxTimestamp))
	be.PutUint64(out[offProducerID:], math.MaxUint64)    // -1
	be.PutUint16(out[offProducerEpoch:], math.MaxUint16) // -1
	be.PutUint32(out[offBaseSequence:], math.MaxUint32)  // -1
	be.PutUint32(out[offRecordCount:], uint32(b.count))
	be.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
}

// Reset empties the Builder for the next batch, keeping its codec and its
// buffers.
func (b *Builder) Reset() {
	if len(b.buf) > 0 {
		b.buf = b.buf[:HeaderSize]
	}
	b.count = 0
	b.firstTimestamp, b.maxTimestamp = 0, 0
	b.derived, b.lastDelta, b.coverDelta, b.coverSet, b.err = false, 0, 0, false, nil
}

// varintLen returns the size of v encoded as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// appendBytesField appends b as a length and bytes, with length -1 for nil.
func appendBytesField(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

// Decode decodes the one batch b holds and appends its records to dst, with
// absolute offsets and timestamps, in offset order. It validates b as
// Validate does and refuses, with ErrCorrupt, records that disagree with the
// header or with the layout in the package documentation, and a records
// section that decompresses to more than MaxRecordsBytes.
//
// The records share memory instead of copying: the Key, Value and header
// values of an uncompressed batch are sub-slices of b, so they are valid only
// while b is and change if b does; those of a compressed batch are
// sub-slices of one buffer allocated for the batch, which stays alive as long
// as any of them does. Each is capped at its own length, so appending to one
// never overwrites another.
//
// Header keys are strings: a record whose header keys repeat those of the
// record before shares their strings, so that a batch whose records all
// carry the same headers allocates each key once. Records without headers
// have nil Headers.
//
// On error Decode returns dst at its original length (the memory after it
// may have been written). Decode is safe for concurrent use.
func Decode(b []byte, dst []Record) ([]Record, error) {
	h, err := Validate(b)
	if err != nil {
		return dst, fmt.Errorf("decode batch: %w", err)
	}
	return decode(h, b, dst)
}

// DecodeAll decodes every batch in b, which holds zero or more whole batches
// one after the other, and appends their records to dst, as Decode does.
// On error, it returns the records of the batches before the bad one.
// DecodeAll is safe for concurrent use.
func DecodeAll(b []byte, dst []Record) ([]Record, error) {
	for len(b) > 0 {
		first, h, rest, err := Next(b)
		if err != nil {
			return dst, fmt.Errorf("decode batch: %w", err)
		}
		if dst, err = decode(h, first, dst); err != nil {
			return dst, err
		}
		b = rest
	}
	return dst, nil
}

// decode decodes the records of the batch b with validated header h.
func decode(h Header, b []byte, dst []Record) ([]Record, error) {
	records := b[HeaderSize:]
	if c := h.Compression(); c != None {
		var err error
		if records, err = decompress(c, records, MaxRecordsBytes); err != nil {
			return dst, fmt.Errorf("decode batch at offset %d: %w", h.BaseOffset, err)
		}
	} else if len(records) > MaxRecordsBytes {
		return dst, fmt.Errorf("decode batch at offset %d: %w: %d bytes of records exceed MaxRecordsBytes (%d)", h.BaseOffset, ErrCorrupt, len(records), MaxRecordsBytes)
	}
	out, err := decodeRecords(h, records, dst)
	if err != nil {
		return dst, fmt.Errorf("decode batch at offset %d: %w: %w", h.BaseOffset, ErrCorrupt, err)
	}
	return out, nil
}

// decodeRecords appends the count records in data to dst. Its errors say
// what is wrong; the caller wraps them in ErrCorrupt.
func decodeRecords(h Header, data []byte, dst []Record) ([]Record, error) {
	count := int(h.RecordCount)
	if count > len(data)/minRecordSize {
		return dst, fmt.Errorf("%d records cannot fit in %d bytes of records", count, len(data))
	}
	start := len(dst)
	dst = slices.Grow(dst, count)

	var (
		pos   int
		slab  []RecordHeader // headers of later records are cut from it
		prevH []RecordHeader // the previous record's headers, to share their keys

		derived   = h.Derived()
		prevDelta int64 // a derived batch's offset deltas do not decrease
	)
	for i := range count {
		length, p := readVarint(data, pos)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: bad length varint at byte %d", i, pos)
		}
		if length < minRecordSize-1 || length > int64(len(data)-p) {
			return dst[:start], fmt.Errorf("record %d: length %d at byte %d of %d", i, length, pos, len(data))
		}
		end := p + int(length)
		rec := data[:end] // a record's fields may not run past its end
		p++               // attributes: unused
		tsDelta, p := readVarint(rec, p)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: bad timestamp delta varint", i)
		}
		offsetDelta, p := readVarint(rec, p)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: bad offset delta varint", i)
		}
		if derived {
			if offsetDelta < prevDelta || offsetDelta > int64(h.LastOffsetDelta) {
				return dst[:start], fmt.Errorf("record %d: offset delta %d of a derived batch, want %d to %d", i, offsetDelta, prevDelta, h.LastOffsetDelta)
			}
			prevDelta = offsetDelta
		} else if offsetDelta != int64(i) {
			return dst[:start], fmt.Errorf("record %d: offset delta %d, want %d", i, offsetDelta, i)
		}
		keyLen, p := readVarint(rec, p)
		key, p := bytesAt(rec, keyLen, p)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: %s key", i, errBytesField)
		}
		valueLen, p := readVarint(rec, p)
		value, p := bytesAt(rec, valueLen, p)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: %s value", i, errBytesField)
		}
		nh, p := readVarint(rec, p)
		if p < 0 {
			return dst[:start], fmt.Errorf("record %d: bad header count varint", i)
		}
		if nh < 0 || nh > int64(end-p)/2 {
			return dst[:start], fmt.Errorf("record %d: header count %d with %d bytes left in the record", i, nh, end-p)
		}
		var headers []RecordHeader
		if nh > 0 {
			n := int(nh)
			if len(slab) < n {
				// Guess that the records left have as many headers
				// as this one, as they usually do; the bytes left
				// bound the guess.
				slab = make([]RecordHeader, max(n, min(n*(count-i), (len(data)-p)/2)))
			}
			headers, slab = slab[:n:n], slab[n:]
			for j := range headers {
				hkLen, q := readVarint(rec, p)
				hk, q := bytesAt(rec, hkLen, q)
				if q < 0 || hk == nil {
					return dst[:start], fmt.Errorf("record %d: %s header %d key, which cannot be null", i, errBytesField, j)
				}
				hvLen, q := readVarint(rec, q)
				hv, q := bytesAt(rec, hvLen, q)
				if q < 0 {
					return dst[:start], fmt.Errorf("record %d: %s header %d value", i, errBytesField, j)
				}
				p = q
				// Records mostly repeat the headers of the one before:
				// share its key strings rather than allocate new ones.
				if j < len(prevH) && prevH[j].Key == string(hk) {
					headers[j].Key = prevH[j].Key
				} else {
					headers[j].Key = string(hk)
				}
				headers[j].Value = hv
			}
			prevH = headers
		}
		if p != end {
			return dst[:start], fmt.Errorf("record %d: %d bytes past its last field", i, end-p)
		}
		// Set each field in place: building a Record and copying it
		// costs a store-forwarding stall per record.
		dst = dst[:len(dst)+1]
		r := &dst[len(dst)-1]
		r.Offset = h.BaseOffset + offsetDelta
		r.Timestamp = h.FirstTimestamp + tsDelta
		r.Key = key
		r.Value = value
		r.Headers = headers
		pos = end
	}
	if pos != len(data) {
		return dst[:start], fmt.Errorf("%d bytes after the last record", len(data)-pos)
	}
	return dst, nil
}

// readVarint decodes the zigzag varint at b[i:] and returns it with the
// index after it, or with a negative index when b ends inside the varint or
// the varint overflows 64 bits. Varints of one and two bytes, which are
// most of a batch's, take the short paths.
func readVarint(b []byte, i int) (int64, int) {
	if uint(i) >= uint(len(b)) {
		return 0, -1
	}
	c := uint64(b[i])
	if c < 0x80 {
		return int64(c>>1) ^ -int64(c&1), i + 1
	}
	if uint(i+1) < uint(len(b)) {
		if d := uint64(b[i+1]); d < 0x80 {
			u := c&0x7f | d<<7
			return int64(u>>1) ^ -int64(u&1), i + 2
		}
	}
	v, n := binary.Varint(b[i:])
	if n <= 0 {
		return 0, -1
	}
	return v, i + n
}

// errBytesField describes a length that bytesAt refuses.
const errBytesField = "bad varint, length below -1, or length past the end of the record for"

// bytesAt returns the n bytes at b[i:], capped at their length, with the
// index after them, where n is a length just read and i the index after it:
// nil for length -1, and a negative index for a negative i, any other
// negative length, or one past the end of b. It is small enough to inline,
// which readVarint is not.
func bytesAt(b []byte, n int64, i int) ([]byte, int) {
	switch {
	case i < 0 || n < -1 || n > int64(len(b)-i):
		return nil, -1
	case n == -1:
		return nil, i
	}
	j := i + int(n)
	return b[i:j:j], j
}
