package batch_test

import (
	"encoding/binary"
	"errors"
	"runtime/metrics"
	"testing"

	"github.com/spatehq/spate/internal/batch"
)

// fuzzMaxRecordsBytes is MaxRecordsBytes while fuzzing, small so that a
// decompression bomb is cheap to find and to check.
const fuzzMaxRecordsBytes = 1 << 20

// maxDecodeAlloc bounds what one Decode may allocate while fuzzing: the
// decompressed records (at most fuzzMaxRecordsBytes, possibly grown once),
// the Record and RecordHeader structs for them (at most 88 bytes per 7-byte
// record and 40 per 2-byte header), and the codecs' own buffers, which are
// pooled but may be made afresh (lz4 up to 4 MiB blocks, zstd and gzip
// state).
const maxDecodeAlloc = 2*fuzzMaxRecordsBytes + 88*fuzzMaxRecordsBytes/7 + 40*fuzzMaxRecordsBytes/2 + 24<<20

// seedBatches returns valid batches of every codec, to start fuzzing from.
func seedBatches(tb testing.TB) [][]byte {
	var seeds [][]byte
	for _, c := range codecs {
		seeds = append(seeds,
			build(tb, c, numbered(1, 1)),
			build(tb, c, numbered(5, 40)),
			build(tb, c, []batch.Record{
				{Timestamp: ts0, Key: []byte{}, Value: nil, Headers: []batch.RecordHeader{{Key: "a", Value: []byte("b")}, {Key: "", Value: nil}}},
				{Timestamp: ts0 - 1, Key: nil, Value: []byte{}, Headers: []batch.RecordHeader{{Key: "a", Value: []byte{}}}},
			}),
			buildDerived(tb, c, 7, 20, []batch.Record{
				{Offset: 7, Timestamp: ts0, Value: []byte("a")},
				{Offset: 9, Timestamp: ts0 + 1, Key: []byte("k"), Value: []byte("b")},
				{Offset: 9, Timestamp: ts0 + 1, Value: []byte("c"), Headers: []batch.RecordHeader{{Key: "h", Value: nil}}},
			}),
		)
	}
	return seeds
}

// FuzzDecode checks that Decode neither panics nor allocates without bound
// on any input, and that what it accepts survives a round trip. Each input
// is decoded as it is and, so that the fuzzer gets past the CRC, again with
// its length, last offset delta and CRC made consistent.
func FuzzDecode(f *testing.F) {
	setMaxRecordsBytes(f, fuzzMaxRecordsBytes)
	for _, b := range seedBatches(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		if len(b) >= batch.HeaderSize {
			fixed := append([]byte(nil), b...)
			fixed[0] &= 0x7f // base offset ≥ 0
			count := int32(binary.BigEndian.Uint32(fixed[57:]))
			if binary.BigEndian.Uint16(fixed[21:])&batch.AttrDerived == 0 {
				binary.BigEndian.PutUint32(fixed[23:], uint32(count-1))
			}
			fixLengthAndCRC(fixed)
			checkDecode(t, fixed)
		}
	})
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocs returns the bytes allocated on the heap so far.
func heapAllocs() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

func checkDecode(t *testing.T, b []byte) {
	before := heapAllocs()
	recs, err := batch.Decode(b, nil)
	if n := heapAllocs() - before; n > maxDecodeAlloc {
		t.Fatalf("Decode of %d bytes allocated %d bytes", len(b), n)
	}
	if err != nil {
		if !errors.Is(err, batch.ErrCorrupt) && !errors.Is(err, batch.ErrTruncated) &&
			!errors.Is(err, batch.ErrBadCRC) && !errors.Is(err, batch.ErrBadMagic) {
			t.Fatalf("Decode: error %v is none of the package's sentinels", err)
		}
		if len(recs) != 0 {
			t.Fatalf("Decode returned %d records with error %v", len(recs), err)
		}
		return
	}
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatalf("Decode accepted a batch Validate refuses: %v", err)
	}
	if len(recs) != int(h.RecordCount) {
		t.Fatalf("Decode returned %d records, header says %d", len(recs), h.RecordCount)
	}
	for i, r := range recs {
		switch {
		case !h.Derived() && r.Offset != h.BaseOffset+int64(i):
			t.Fatalf("record %d: offset %d with base offset %d", i, r.Offset, h.BaseOffset)
		case h.Derived() && (r.Offset < h.BaseOffset || r.Offset > h.LastOffset() || i > 0 && r.Offset < recs[i-1].Offset):
			t.Fatalf("derived record %d: offset %d outside %d..%d or below the previous", i, r.Offset, h.BaseOffset, h.LastOffset())
		}
	}

	// Rebuild the records: they must come back the same. A timestamp of
	// 0 would mean now to Append, so it is left out.
	bld := batch.NewBuilder(h.Compression())
	for _, r := range recs {
		if h.Derived() {
			bld.AppendAt(r, r.Offset-h.BaseOffset)
			continue
		}
		if r.Timestamp == 0 {
			return
		}
		bld.Append(r)
	}
	if h.Derived() {
		bld.SetLastOffsetDelta(int64(h.LastOffsetDelta))
	}
	rebuilt, err := bld.Build()
	if err != nil {
		t.Fatalf("Build of decoded records: %v", err)
	}
	batch.SetBaseOffset(rebuilt, h.BaseOffset)
	again, err := batch.Decode(rebuilt, nil)
	if err != nil {
		t.Fatalf("Decode of rebuilt batch: %v", err)
	}
	for i := range recs {
		if d := diffRecord(again[i], recs[i]); d != "" {
			t.Fatalf("rebuilt record %d: %s", i, d)
		}
	}
}

// FuzzRoundTrip checks that whatever records are appended come back from
// Decode, under every codec.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(0), int64(ts0), []byte("key"), []byte("value"), "header", []byte("hv"), uint8(3))
	f.Add(uint8(4), int64(-1), []byte{}, []byte{}, "", []byte{}, uint8(0))
	f.Add(uint8(1), int64(1<<62), []byte{0xff, 0x80}, make([]byte, 300), "\x00", []byte(nil), uint8(200))
	f.Fuzz(func(t *testing.T, codec uint8, ts int64, key, value []byte, hkey string, hvalue []byte, n uint8) {
		if ts == 0 {
			ts = 1 // 0 means now
		}
		c := codecs[int(codec)%len(codecs)]
		// Vary which fields are null and how many headers each record
		// has, from the fuzzer's inputs.
		var recs []batch.Record
		for i := range int(n)%16 + 1 {
			r := batch.Record{Timestamp: ts + int64(i*int(n)) - 100, Key: key, Value: value}
			if r.Timestamp == 0 {
				r.Timestamp = 1
			}
			if (i+int(n))%3 == 0 {
				r.Key = nil
			}
			if (i+int(n))%4 == 1 {
				r.Value = nil
			}
			for j := range (i + int(n)) % 4 {
				hv := hvalue
				if j%2 == 1 {
					hv = nil
				}
				r.Headers = append(r.Headers, batch.RecordHeader{Key: hkey, Value: hv})
			}
			recs = append(recs, r)
		}
		b := build(t, c, recs)
		got, err := batch.Decode(b, nil)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if len(got) != len(recs) {
			t.Fatalf("%d records, want %d", len(got), len(recs))
		}
		for i := range recs {
			w := recs[i]
			w.Offset = int64(i)
			if d := diffRecord(got[i], w); d != "" {
				t.Fatalf("record %d: %s", i, d)
			}
		}
	})
}
