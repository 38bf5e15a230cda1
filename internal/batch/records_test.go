package batch_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/internal/batch"
)

const ts0 = 1_700_000_000_000 // a timestamp in Unix milliseconds

// numbered returns n records with distinct keys and values of size bytes.
func numbered(n, size int) []batch.Record {
	recs := make([]batch.Record, n)
	for i := range recs {
		v := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(v, fmt.Sprint(i))
		recs[i] = batch.Record{Timestamp: ts0 + int64(i), Key: fmt.Appendf(nil, "key-%d", i), Value: v}
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		recs []batch.Record
	}{
		{name: "one record", recs: []batch.Record{{Timestamp: ts0, Key: []byte("k"), Value: []byte("v")}}},
		{name: "null key", recs: []batch.Record{{Timestamp: ts0, Value: []byte("v")}}},
		{name: "empty key", recs: []batch.Record{{Timestamp: ts0, Key: []byte{}, Value: []byte("v")}}},
		{name: "null value", recs: []batch.Record{{Timestamp: ts0, Key: []byte("k")}}},
		{name: "empty value", recs: []batch.Record{{Timestamp: ts0, Key: []byte("k"), Value: []byte{}}}},
		{name: "headers", recs: []batch.Record{
			{Timestamp: ts0, Value: []byte("v0"), Headers: []batch.RecordHeader{
				{Key: "content-type", Value: []byte("text/plain")},
				{Key: "", Value: []byte{}},
				{Key: "null", Value: nil},
			}},
			{Timestamp: ts0, Value: []byte("v1"), Headers: []batch.RecordHeader{
				{Key: "content-type", Value: []byte("application/json")},
			}},
			{Timestamp: ts0, Value: []byte("v2")},
			{Timestamp: ts0, Value: []byte("v3"), Headers: []batch.RecordHeader{
				{Key: "content-type", Value: []byte("text/plain")},
				{Key: "trace-id", Value: []byte("0af7651916cd43dd8448eb211c80319c")},
			}},
		}},
		{name: "large values", recs: numbered(3, 1<<20)},
		{name: "1000 records", recs: numbered(1000, 100)},
		{name: "timestamps out of order", recs: []batch.Record{
			{Timestamp: ts0, Value: []byte("a")},
			{Timestamp: ts0 - 5000, Value: []byte("b")},
			{Timestamp: ts0 + 7000, Value: []byte("c")},
			{Timestamp: ts0 + 3000, Value: []byte("d")},
		}},
		{name: "extreme timestamps", recs: []batch.Record{
			{Timestamp: math.MaxInt64, Value: []byte("a")},
			{Timestamp: math.MinInt64, Value: []byte("b")},
			{Timestamp: -1, Value: []byte("c")},
		}},
	}
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				b := build(t, c, tt.recs)

				h, err := batch.Validate(b)
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				maxTS := tt.recs[0].Timestamp
				for _, r := range tt.recs {
					maxTS = max(maxTS, r.Timestamp)
				}
				want := batch.Header{
					BaseOffset: 0, Length: int32(len(b) - 12), LeaderEpoch: 0, Magic: batch.Magic,
					CRC: h.CRC, Attributes: int16(c), LastOffsetDelta: int32(len(tt.recs) - 1),
					FirstTimestamp: tt.recs[0].Timestamp, MaxTimestamp: maxTS,
					ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: int32(len(tt.recs)),
				}
				if h != want {
					t.Errorf("header\n got %+v\nwant %+v", h, want)
				}

				prefix := []batch.Record{{Offset: 99}}
				got, err := batch.Decode(b, prefix)
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if len(got) != 1+len(tt.recs) || got[0].Offset != 99 {
					t.Fatalf("Decode returned %d records, want 1 kept and %d decoded", len(got), len(tt.recs))
				}
				for i, r := range got[1:] {
					w := tt.recs[i]
					w.Offset = int64(i)
					if d := diffRecord(r, w); d != "" {
						t.Errorf("record %d: %s", i, d)
					}
				}
			})
		}
	}
}

func TestDecodeAliasing(t *testing.T) {
	recs := []batch.Record{
		{Timestamp: ts0, Key: []byte("key0"), Value: []byte("value0"), Headers: []batch.RecordHeader{{Key: "h", Value: []byte("hv0")}}},
		{Timestamp: ts0, Key: []byte("key1"), Value: []byte("value1"), Headers: []batch.RecordHeader{{Key: "h", Value: []byte("hv1")}}},
	}
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := build(t, c, recs)
			got, err := batch.Decode(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range got {
				if cap(r.Key) != len(r.Key) || cap(r.Value) != len(r.Value) || cap(r.Headers) != len(r.Headers) ||
					cap(r.Headers[0].Value) != len(r.Headers[0].Value) {
					t.Errorf("record %d: a slice has room past its length, so appending to it would overwrite the next field", i)
				}
			}
			// Wipe the batch: an uncompressed batch's records see it,
			// a compressed batch's do not.
			for i := range b {
				b[i] = 'X'
			}
			aliased := string(got[0].Value) == "XXXXXX"
			if want := c == batch.None; aliased != want {
				t.Errorf("records alias the batch: %v, want %v", aliased, want)
			}
		})
	}
}

func TestBuilder(t *testing.T) {
	t.Run("Size is the uncompressed batch size", func(t *testing.T) {
		bld := batch.NewBuilder(batch.None)
		if bld.Size() != batch.HeaderSize || bld.Count() != 0 {
			t.Fatalf("empty Builder: Size %d, Count %d", bld.Size(), bld.Count())
		}
		for i, r := range numbered(10, 50) {
			bld.Append(r)
			b, err := bld.Build()
			if err != nil {
				t.Fatal(err)
			}
			if bld.Size() != len(b) || bld.Count() != i+1 {
				t.Errorf("after %d records: Size %d, Count %d; built %d bytes", i+1, bld.Size(), bld.Count(), len(b))
			}
		}
	})
	t.Run("zero Builder builds uncompressed batches", func(t *testing.T) {
		var bld batch.Builder
		bld.Append(batch.Record{Value: []byte("v")})
		b, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		h, err := batch.Validate(b)
		if err != nil || h.Compression() != batch.None {
			t.Fatalf("Validate: %v, %v", h.Compression(), err)
		}
	})
	t.Run("Reset reuses the Builder and keeps its codec", func(t *testing.T) {
		bld := batch.NewBuilder(batch.Zstd)
		bld.Append(batch.Record{Timestamp: ts0, Value: []byte("first")})
		first, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		saved := bytes.Clone(first)
		bld.Reset()
		if bld.Count() != 0 || bld.Size() != batch.HeaderSize {
			t.Fatalf("after Reset: Count %d, Size %d", bld.Count(), bld.Size())
		}
		bld.Append(batch.Record{Timestamp: ts0 + 10, Value: []byte("second")})
		bld.Append(batch.Record{Timestamp: ts0 + 5, Value: []byte("third")})
		second, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, saved) {
			t.Error("a later Build changed an earlier batch")
		}
		got, err := batch.Decode(second, nil)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := batch.Validate(second)
		if len(got) != 2 || string(got[0].Value) != "second" || got[1].Offset != 1 ||
			h.Compression() != batch.Zstd || h.FirstTimestamp != ts0+10 || h.MaxTimestamp != ts0+10 {
			t.Errorf("second batch: header %+v, records %+v", h, got)
		}
	})
	t.Run("zero timestamp means now", func(t *testing.T) {
		bld := batch.NewBuilder(batch.None)
		before := time.Now().UnixMilli()
		bld.Append(batch.Record{Value: []byte("v")})
		after := time.Now().UnixMilli()
		b, err := bld.Build()
		if err != nil {
			t.Fatal(err)
		}
		got, err := batch.Decode(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ts := got[0].Timestamp; ts < before || ts > after {
			t.Errorf("timestamp %d, want within [%d, %d]", ts, before, after)
		}
	})
	t.Run("Append ignores Offset", func(t *testing.T) {
		got, err := batch.Decode(build(t, batch.None, []batch.Record{{Offset: 42, Timestamp: ts0}, {Offset: 7, Timestamp: ts0}}), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Offset != 0 || got[1].Offset != 1 {
			t.Errorf("offsets %d, %d, want 0, 1", got[0].Offset, got[1].Offset)
		}
	})

	errTests := []struct {
		name string
		bld  *batch.Builder
		recs []batch.Record
	}{
		{name: "no records", bld: batch.NewBuilder(batch.None)},
		{name: "unknown codec", bld: batch.NewBuilder(batch.Compression(5)), recs: numbered(1, 1)},
	}
	for _, tt := range errTests {
		t.Run("Build fails with "+tt.name, func(t *testing.T) {
			for _, r := range tt.recs {
				tt.bld.Append(r)
			}
			if b, err := tt.bld.Build(); err == nil {
				t.Errorf("Build returned %d bytes and no error", len(b))
			}
		})
	}
	t.Run("Build fails past MaxRecordsBytes", func(t *testing.T) {
		setMaxRecordsBytes(t, 1000)
		bld := batch.NewBuilder(batch.Zstd)
		bld.Append(batch.Record{Value: make([]byte, 1000)})
		if _, err := bld.Build(); err == nil {
			t.Error("Build succeeded")
		}
	})
}

// setMaxRecordsBytes sets batch.MaxRecordsBytes for the duration of the test.
func setMaxRecordsBytes(tb testing.TB, n int) {
	old := batch.MaxRecordsBytes
	batch.MaxRecordsBytes = n
	tb.Cleanup(func() { batch.MaxRecordsBytes = old })
}

func TestSetBaseOffset(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := build(t, c, numbered(5, 10))
			batch.SetBaseOffset(b, 1000)
			batch.SetLeaderEpoch(b, 7)
			h, err := batch.Validate(b)
			if err != nil {
				t.Fatalf("Validate after SetBaseOffset: %v", err)
			}
			if h.BaseOffset != 1000 || h.LeaderEpoch != 7 || h.LastOffset() != 1004 || h.NextOffset() != 1005 {
				t.Errorf("header %+v", h)
			}
			got, err := batch.Decode(b, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range got {
				if r.Offset != 1000+int64(i) {
					t.Errorf("record %d: offset %d, want %d", i, r.Offset, 1000+i)
				}
			}

			batch.SetBaseOffset(b, math.MaxInt64-3)
			if _, err := batch.Validate(b); !errors.Is(err, batch.ErrCorrupt) {
				t.Errorf("base offset whose last offset overflows: %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestDecodeAll(t *testing.T) {
	var all []byte
	var want []batch.Record
	next := int64(0)
	for i, c := range codecs {
		recs := numbered(i+1, 20)
		b := build(t, c, recs)
		batch.SetBaseOffset(b, next)
		for j, r := range recs {
			r.Offset = next + int64(j)
			want = append(want, r)
		}
		next += int64(len(recs))
		all = append(all, b...)
	}

	got, err := batch.DecodeAll(all, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range got {
		if d := diffRecord(got[i], want[i]); d != "" {
			t.Errorf("record %d: %s", i, d)
		}
	}

	t.Run("empty", func(t *testing.T) {
		got, err := batch.DecodeAll(nil, want[:1])
		if err != nil || len(got) != 1 {
			t.Errorf("DecodeAll(nil) = %d records, %v", len(got), err)
		}
	})
	t.Run("corrupt records in the last batch", func(t *testing.T) {
		bad := sectionBatch(t, batch.Zstd, 2, rawRecords(1))
		got, err := batch.DecodeAll(append(bytes.Clone(all), bad...), nil)
		if !errors.Is(err, batch.ErrCorrupt) {
			t.Errorf("error %v, want ErrCorrupt", err)
		}
		if len(got) != len(want) {
			t.Errorf("%d records before the bad batch, want %d", len(got), len(want))
		}
	})
	t.Run("truncated last batch", func(t *testing.T) {
		got, err := batch.DecodeAll(all[:len(all)-1], nil)
		if !errors.Is(err, batch.ErrTruncated) {
			t.Errorf("error %v, want ErrTruncated", err)
		}
		if len(got) != len(want)-len(codecs) {
			t.Errorf("%d records before the bad batch, want %d", len(got), len(want)-len(codecs))
		}
	})
}

func TestValidateAndDecodeReject(t *testing.T) {
	good := build(t, batch.None, numbered(3, 10))
	modified := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{name: "empty", b: nil, want: batch.ErrTruncated},
		{name: "bad CRC in records", b: modified(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), want: batch.ErrBadCRC},
		{name: "bad CRC in header", b: modified(func(b []byte) []byte { b[30] ^= 1; return b }), want: batch.ErrBadCRC},
		{name: "bad CRC field", b: modified(func(b []byte) []byte { b[17] ^= 1; return b }), want: batch.ErrBadCRC},
		{name: "bad magic", b: modified(func(b []byte) []byte { b[16] = 2; return b }), want: batch.ErrBadMagic},
		{name: "magic 0", b: modified(func(b []byte) []byte { b[16] = 0; return b }), want: batch.ErrBadMagic},
		{name: "trailing byte", b: append(bytes.Clone(good), 0), want: batch.ErrCorrupt},
		{name: "length too long", b: modified(func(b []byte) []byte { b[11]++; return b }), want: batch.ErrTruncated},
		{name: "length too short", b: modified(func(b []byte) []byte { b[11]--; return b }), want: batch.ErrCorrupt},
		{name: "negative length", b: modified(func(b []byte) []byte { b[8] = 0x80; return b }), want: batch.ErrCorrupt},
		{name: "negative base offset", b: modified(func(b []byte) []byte { b[0] = 0x80; return b }), want: batch.ErrCorrupt},
		{name: "unknown codec", b: rawBatch(header{magic: 1, attributes: 5, lastOffsetDelta: 2, recordCount: 3}, rawRecords(3)), want: batch.ErrCorrupt},
		{name: "zero records", b: rawBatch(header{magic: 1, lastOffsetDelta: -1, recordCount: 0}, nil), want: batch.ErrCorrupt},
		{name: "last offset delta disagrees with count", b: rawBatch(header{magic: 1, lastOffsetDelta: 3, recordCount: 3}, rawRecords(3)), want: batch.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := batch.Validate(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("Validate: %v, want %v", err, tt.want)
			}
			if _, err := batch.Decode(tt.b, nil); !errors.Is(err, tt.want) {
				t.Errorf("Decode: %v, want %v", err, tt.want)
			}
			if _, err := batch.DecodeAll(tt.b, nil); err == nil && len(tt.b) > 0 {
				t.Error("DecodeAll succeeded")
			}
		})
	}
}

func TestTruncatedAtEveryLength(t *testing.T) {
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := build(t, c, numbered(4, 30))
			for n := range len(b) {
				if _, err := batch.Validate(b[:n]); !errors.Is(err, batch.ErrTruncated) {
					t.Fatalf("Validate of %d of %d bytes: %v, want ErrTruncated", n, len(b), err)
				}
				if recs, err := batch.Decode(b[:n], nil); !errors.Is(err, batch.ErrTruncated) || len(recs) != 0 {
					t.Fatalf("Decode of %d of %d bytes: %d records, %v, want ErrTruncated", n, len(b), len(recs), err)
				}
				if _, _, _, err := batch.Next(b[:n]); !errors.Is(err, batch.ErrTruncated) {
					t.Fatalf("Next of %d of %d bytes: %v, want ErrTruncated", n, len(b), err)
				}
			}
		})
	}
}

// TestDecodeRejectsCorruptRecords checks records sections that are wrong in
// one way each, behind a correct header and CRC, under every codec.
func TestDecodeRejectsCorruptRecords(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	rec := func(r rawRecord) []byte { return r.appendTo(nil) }
	tests := []struct {
		name    string
		count   int32
		section []byte
	}{
		{name: "fewer records than the count", count: 3, section: rawRecords(2)},
		{name: "more records than the count", count: 2, section: rawRecords(3)},
		{name: "trailing bytes", count: 2, section: append(rawRecords(2), 0, 0, 0, 0, 0, 0, 0, 0)},
		{name: "offset delta not its index", count: 2, section: append(rawRecords(1), rec(rawRecord{offsetDelta: 2})...)},
		{name: "repeated offset delta", count: 2, section: append(rawRecords(1), rec(rawRecord{offsetDelta: 0})...)},
		{name: "negative offset delta", count: 1, section: rec(rawRecord{offsetDelta: -1})},
		{name: "record length past the end", count: 1, section: rec(rawRecord{lengthDelta: 1})},
		{name: "record length short of its fields", count: 1, section: append(rec(rawRecord{lengthDelta: -1, value: []byte("abc")}), rawRecords(1)...)},
		{name: "record length past its fields", count: 1, section: append(rec(rawRecord{lengthDelta: 1, value: []byte("abc")}), 0)},
		{name: "negative record length", count: 1, section: append(rec(rawRecord{lengthDelta: -100}), make([]byte, 100)...)},
		{name: "key length past the record", count: 1, section: rec(rawRecord{keyLen: i64(4), key: []byte("abc")})},
		{name: "key length past the batch", count: 1, section: rec(rawRecord{keyLen: i64(1 << 40)})},
		{name: "key length -2", count: 1, section: rec(rawRecord{keyLen: i64(-2), key: []byte("abc")})},
		{name: "key length min int64", count: 1, section: rec(rawRecord{keyLen: i64(math.MinInt64)})},
		{name: "header count negative", count: 1, section: rec(rawRecord{headerCount: i64(-1)})},
		{name: "header count past the record", count: 1, section: rec(rawRecord{headerCount: i64(1 << 30)})},
		{name: "header count short", count: 1, section: rec(rawRecord{headerCount: i64(0), headers: []rawHeader{{keyLen: 1, key: []byte("k"), value: []byte("v")}}})},
		{name: "null header key", count: 1, section: rec(rawRecord{headers: []rawHeader{{keyLen: -1, value: []byte("v")}}})},
		{name: "header key length past the record", count: 1, section: rec(rawRecord{headers: []rawHeader{{keyLen: 9, key: []byte("k"), value: []byte("v")}}})},
		{name: "header value length -3", count: 1, section: rec(rawRecord{headers: []rawHeader{{keyLen: 1, key: []byte("k"), valueLen: i64(-3), value: []byte("abc")}}})},
		{name: "header value length past the record", count: 1, section: rec(rawRecord{headers: []rawHeader{{keyLen: 1, key: []byte("k"), valueLen: i64(4), value: []byte("abc")}}})},
		{name: "truncated varint", count: 1, section: []byte{0x80}},
		{name: "overlong varint", count: 1, section: append(bytes.Repeat([]byte{0xff}, 11), make([]byte, 10)...)},
	}
	for _, c := range codecs {
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				b := sectionBatch(t, c, tt.count, tt.section)
				if _, err := batch.Validate(b); err != nil {
					t.Fatalf("Validate: %v (the test batch should pass it)", err)
				}
				recs, err := batch.Decode(b, nil)
				t.Log(err)
				if !errors.Is(err, batch.ErrCorrupt) {
					t.Errorf("Decode: %d records, error %v, want ErrCorrupt", len(recs), err)
				}
				if len(recs) != 0 {
					t.Errorf("Decode returned %d records with its error", len(recs))
				}
			})
		}
	}
}

func TestDecodeRejectsCorruptCompression(t *testing.T) {
	valid := rawRecords(3)
	for _, c := range codecs[1:] {
		compressed := compressRaw(t, c, valid)
		tests := []struct {
			name    string
			section []byte
		}{
			{name: "garbage", section: []byte("this is not compressed at all")},
			{name: "empty", section: []byte{}},
			{name: "truncated stream", section: compressed[:len(compressed)-1]},
			{name: "trailing garbage", section: append(bytes.Clone(compressed), 0xde, 0xad, 0xbe, 0xef)},
		}
		if c == batch.Snappy {
			// A block's header declares its decoded size: 512 KiB
			// cannot come from 4 bytes.
			tests = append(tests, struct {
				name    string
				section []byte
			}{name: "declared size beyond the densest encoding", section: []byte{0x80, 0x80, 0x20, 0}})
		}
		for _, tt := range tests {
			t.Run(c.String()+"/"+tt.name, func(t *testing.T) {
				b := rawBatch(header{magic: 1, attributes: int16(c), lastOffsetDelta: 2, recordCount: 3}, tt.section)
				recs, err := batch.Decode(b, nil)
				t.Log(err)
				if !errors.Is(err, batch.ErrCorrupt) {
					t.Errorf("Decode: %d records, error %v, want ErrCorrupt", len(recs), err)
				}
			})
		}
	}
}

// TestDecompressionBomb checks that a records section that decompresses past
// MaxRecordsBytes is refused, under every codec, whether or not the stream
// declares its size.
func TestDecompressionBomb(t *testing.T) {
	setMaxRecordsBytes(t, 1<<20)
	// Valid records, so that only the size is wrong: 3 MiB of them.
	section := rawRecord{value: make([]byte, 3<<20)}.appendTo(nil)
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := sectionBatch(t, c, 1, section)
			recs, err := batch.Decode(b, nil)
			t.Log(err)
			if !errors.Is(err, batch.ErrCorrupt) {
				t.Errorf("Decode: %d records, error %v, want ErrCorrupt", len(recs), err)
			}
		})
	}
	t.Run("at the limit", func(t *testing.T) {
		// One record of exactly MaxRecordsBytes passes; one byte more fails.
		v := 1<<20 - 11
		section := rawRecord{value: make([]byte, v)}.appendTo(nil)
		if len(section) != 1<<20 {
			t.Fatalf("test record of %d bytes, want %d", len(section), 1<<20)
		}
		over := rawRecord{value: make([]byte, v+1)}.appendTo(nil)
		for _, c := range codecs {
			if _, err := batch.Decode(sectionBatch(t, c, 1, section), nil); err != nil {
				t.Errorf("%v: Decode of %d bytes of records: %v", c, len(section), err)
			}
			if _, err := batch.Decode(sectionBatch(t, c, 1, over), nil); !errors.Is(err, batch.ErrCorrupt) {
				t.Errorf("%v: Decode of %d bytes of records: %v, want ErrCorrupt", c, len(over), err)
			}
		}
	})
}

// TestAllocations checks the hot paths' promises: appending to a Builder
// whose buffers have grown allocates nothing, nor does building an
// uncompressed batch into a reused buffer; decoding one into a slice with
// room allocates once, for the records' headers. (Compressed builds are left out: their pooled codecs are
// remade, allocating, whenever a GC empties the pools.)
func TestAllocations(t *testing.T) {
	recs := numbered(100, 100)
	recs[0].Headers = []batch.RecordHeader{{Key: "k", Value: []byte("v")}}
	bld := batch.NewBuilder(batch.None)
	var out []byte
	appendAll := func() {
		bld.Reset()
		for _, r := range recs {
			bld.Append(r)
		}
	}
	build := func() {
		appendAll()
		var err error
		if out, err = bld.AppendTo(out[:0]); err != nil {
			t.Fatal(err)
		}
	}
	build() // grow the buffers
	if n := testing.AllocsPerRun(20, appendAll); n > 0 {
		t.Errorf("Append: %v allocations per batch, want 0", n)
	}
	if n := testing.AllocsPerRun(20, build); n > 0 {
		t.Errorf("Append and AppendTo: %v allocations per batch, want 0", n)
	}

	dst := make([]batch.Record, 0, len(recs))
	n := testing.AllocsPerRun(20, func() {
		var err error
		if dst, err = batch.Decode(out, dst[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Errorf("Decode: %v allocations, want 1", n)
	}
}

// TestConcurrentUse builds and decodes batches of every codec from several
// goroutines at once, for the race detector to check the shared encoders
// and decoders.
func TestConcurrentUse(t *testing.T) {
	recs := numbered(50, 200)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 20 {
				for i := range codecs {
					c := codecs[(g+i)%len(codecs)]
					bld := batch.NewBuilder(c)
					for _, r := range recs {
						bld.Append(r)
					}
					b, err := bld.Build()
					if err != nil {
						t.Error(err)
						return
					}
					got, err := batch.Decode(b, nil)
					if err != nil || len(got) != len(recs) {
						t.Errorf("%v: Decode: %d records, %v", c, len(got), err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
