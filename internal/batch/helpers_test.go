package batch_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/spatehq/spate/internal/batch"
)

// codecs lists every codec, for tests run over each.
var codecs = []batch.Compression{batch.None, batch.Gzip, batch.Snappy, batch.LZ4, batch.Zstd}

// build appends recs to a new Builder with codec c and builds the batch.
func build(tb testing.TB, c batch.Compression, recs []batch.Record) []byte {
	tb.Helper()
	bld := batch.NewBuilder(c)
	for _, r := range recs {
		bld.Append(r)
	}
	b, err := bld.Build()
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	return b
}

// rawRecord encodes one record as the package documentation lays it out,
// from fields that may be wrong on purpose. Lengths are written as given;
// a nil slice is written with length -1.
type rawRecord struct {
	lengthDelta int // added to the correct record length
	attributes  byte
	tsDelta     int64
	offsetDelta int64
	keyLen      *int64 // overrides len(key) when set
	key         []byte
	value       []byte
	headerCount *int64 // overrides len(headers) when set
	headers     []rawHeader
}

type rawHeader struct {
	keyLen   int64
	key      []byte
	valueLen *int64 // overrides len(value) when set
	value    []byte
}

func appendLen(b, field []byte) []byte {
	if field == nil {
		return binary.AppendVarint(b, -1)
	}
	return append(binary.AppendVarint(b, int64(len(field))), field...)
}

func (r rawRecord) appendTo(dst []byte) []byte {
	var body []byte
	body = append(body, r.attributes)
	body = binary.AppendVarint(body, r.tsDelta)
	body = binary.AppendVarint(body, r.offsetDelta)
	if r.keyLen != nil {
		body = append(binary.AppendVarint(body, *r.keyLen), r.key...)
	} else {
		body = appendLen(body, r.key)
	}
	body = appendLen(body, r.value)
	if r.headerCount != nil {
		body = binary.AppendVarint(body, *r.headerCount)
	} else {
		body = binary.AppendVarint(body, int64(len(r.headers)))
	}
	for _, h := range r.headers {
		body = append(binary.AppendVarint(body, h.keyLen), h.key...)
		if h.valueLen != nil {
			body = append(binary.AppendVarint(body, *h.valueLen), h.value...)
		} else {
			body = appendLen(body, h.value)
		}
	}
	dst = binary.AppendVarint(dst, int64(len(body)+r.lengthDelta))
	return append(dst, body...)
}

// rawRecords encodes n well-formed records with 1-byte values.
func rawRecords(n int) []byte {
	var b []byte
	for i := range n {
		b = rawRecord{offsetDelta: int64(i), value: []byte{byte(i)}}.appendTo(b)
	}
	return b
}

// compressRaw compresses a records section with the reference encoders of
// each codec, independently of the package's own.
func compressRaw(tb testing.TB, c batch.Compression, section []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	switch c {
	case batch.None:
		return section
	case batch.Gzip:
		zw := gzip.NewWriter(&buf)
		zw.Write(section)
		zw.Close()
	case batch.Snappy:
		return snappy.Encode(nil, section)
	case batch.LZ4:
		zw := lz4.NewWriter(&buf)
		zw.Write(section)
		zw.Close()
	case batch.Zstd:
		enc, err := zstd.NewWriter(nil)
		if err != nil {
			tb.Fatal(err)
		}
		return enc.EncodeAll(section, nil)
	default:
		tb.Fatalf("codec %v", c)
	}
	return buf.Bytes()
}

// header holds the fields rawBatch writes; the length and CRC it computes.
type header struct {
	baseOffset      int64
	leaderEpoch     int32
	magic           int8
	attributes      int16
	lastOffsetDelta int32
	firstTimestamp  int64
	maxTimestamp    int64
	recordCount     int32
}

// rawBatch lays out a batch around an already compressed records section,
// with a correct length and CRC, following the package documentation.
func rawBatch(h header, section []byte) []byte {
	b := make([]byte, batch.HeaderSize, batch.HeaderSize+len(section))
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(h.baseOffset))
	be.PutUint32(b[12:], uint32(h.leaderEpoch))
	b[16] = byte(h.magic)
	be.PutUint16(b[21:], uint16(h.attributes))
	be.PutUint32(b[23:], uint32(h.lastOffsetDelta))
	be.PutUint64(b[27:], uint64(h.firstTimestamp))
	be.PutUint64(b[35:], uint64(h.maxTimestamp))
	be.PutUint64(b[43:], ^uint64(0))
	be.PutUint16(b[51:], ^uint16(0))
	be.PutUint32(b[53:], ^uint32(0))
	be.PutUint32(b[57:], uint32(h.recordCount))
	b = append(b, section...)
	fixLengthAndCRC(b)
	return b
}

// fixLengthAndCRC rewrites the batch length and CRC of b to match its bytes.
func fixLengthAndCRC(b []byte) {
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// sectionBatch returns a valid-looking batch of count records around the
// uncompressed records section, compressed with c.
func sectionBatch(tb testing.TB, c batch.Compression, count int32, section []byte) []byte {
	tb.Helper()
	return rawBatch(header{
		magic:           batch.Magic,
		attributes:      int16(c),
		lastOffsetDelta: count - 1,
		recordCount:     count,
	}, compressRaw(tb, c, section))
}

// diffRecord describes how got differs from want, or returns "".
// Nil and empty slices differ, as they do in the format.
func diffRecord(got, want batch.Record) string {
	if got.Offset != want.Offset {
		return fmt.Sprintf("offset %d, want %d", got.Offset, want.Offset)
	}
	if got.Timestamp != want.Timestamp {
		return fmt.Sprintf("timestamp %d, want %d", got.Timestamp, want.Timestamp)
	}
	if d := diffBytes(got.Key, want.Key); d != "" {
		return "key " + d
	}
	if d := diffBytes(got.Value, want.Value); d != "" {
		return "value " + d
	}
	if len(got.Headers) != len(want.Headers) {
		return fmt.Sprintf("%d headers, want %d", len(got.Headers), len(want.Headers))
	}
	for i := range got.Headers {
		if got.Headers[i].Key != want.Headers[i].Key {
			return fmt.Sprintf("header %d key %q, want %q", i, got.Headers[i].Key, want.Headers[i].Key)
		}
		if d := diffBytes(got.Headers[i].Value, want.Headers[i].Value); d != "" {
			return fmt.Sprintf("header %d value %s", i, d)
		}
	}
	return ""
}

func diffBytes(got, want []byte) string {
	switch {
	case (got == nil) != (want == nil):
		return fmt.Sprintf("nil %v, want nil %v", got == nil, want == nil)
	case !bytes.Equal(got, want):
		return fmt.Sprintf("%.40q (%d bytes), want %.40q (%d bytes)", got, len(got), want, len(want))
	}
	return ""
}
