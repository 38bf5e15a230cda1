package batch_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spatehq/spate/internal/batch"
)

// buildDerived builds a derived batch at base offset base from recs, whose
// Offsets must be absolute, covering up to offset last.
func buildDerived(tb testing.TB, c batch.Compression, base, last int64, recs []batch.Record) []byte {
	tb.Helper()
	bld := batch.NewBuilder(c)
	for _, r := range recs {
		bld.AppendAt(r, r.Offset-base)
	}
	bld.SetLastOffsetDelta(last - base)
	b, err := bld.Build()
	if err != nil {
		tb.Fatalf("Build: %v", err)
	}
	batch.SetBaseOffset(b, base)
	return b
}

func TestDerivedRoundTrip(t *testing.T) {
	// What an array map then a filter over stored offsets 100 to 109
	// could send: offsets skip (101, 104 to 109), repeat (103), and the
	// batch still covers the stored records up to 109.
	recs := []batch.Record{
		{Offset: 100, Timestamp: ts0, Key: []byte("a"), Value: []byte("1")},
		{Offset: 102, Timestamp: ts0 - 5, Key: nil, Value: []byte("2"), Headers: []batch.RecordHeader{{Key: "h", Value: []byte("v")}}},
		{Offset: 103, Timestamp: ts0 + 7, Key: []byte{}, Value: nil},
		{Offset: 103, Timestamp: ts0 + 7, Key: []byte("c"), Value: []byte("3")},
	}
	for _, c := range codecs {
		t.Run(c.String(), func(t *testing.T) {
			b := buildDerived(t, c, 100, 109, recs)
			h, err := batch.Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !h.Derived() || h.Compression() != c {
				t.Fatalf("derived %v, codec %v; want derived, %v", h.Derived(), h.Compression(), c)
			}
			if h.RecordCount != 4 || h.LastOffset() != 109 || h.NextOffset() != 110 {
				t.Fatalf("record count %d, last offset %d, next %d; want 4, 109, 110", h.RecordCount, h.LastOffset(), h.NextOffset())
			}
			if h.FirstTimestamp != ts0 || h.MaxTimestamp != ts0+7 {
				t.Fatalf("timestamps %d..%d, want %d..%d", h.FirstTimestamp, h.MaxTimestamp, ts0, ts0+7)
			}
			got, err := batch.Decode(b, nil)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(got) != len(recs) {
				t.Fatalf("%d records, want %d", len(got), len(recs))
			}
			for i := range recs {
				if d := diffRecord(got[i], recs[i]); d != "" {
					t.Errorf("record %d: %s", i, d)
				}
			}
		})
	}
}

func TestDerivedKeepsTimestampZero(t *testing.T) {
	// A derived record is a copy of a stored one: timestamp 0 is not "now".
	b := buildDerived(t, batch.None, 0, 0, []batch.Record{{Offset: 0, Timestamp: 0, Value: []byte("x")}})
	got, err := batch.Decode(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Timestamp != 0 {
		t.Fatalf("timestamp %d, want 0", got[0].Timestamp)
	}
}

func TestDerivedBuilderMisuse(t *testing.T) {
	r := batch.Record{Timestamp: ts0, Value: []byte("v")}
	tests := []struct {
		name  string
		build func(*batch.Builder)
		want  string
	}{
		{"decreasing delta", func(b *batch.Builder) { b.AppendAt(r, 3); b.AppendAt(r, 2) }, "do not decrease"},
		{"negative delta", func(b *batch.Builder) { b.AppendAt(r, -1) }, "out of range"},
		{"Append after AppendAt", func(b *batch.Builder) { b.AppendAt(r, 0); b.Append(r) }, "ordinary or derived"},
		{"AppendAt after Append", func(b *batch.Builder) { b.Append(r); b.AppendAt(r, 1) }, "ordinary or derived"},
		{"last delta below the last record's", func(b *batch.Builder) { b.AppendAt(r, 5); b.SetLastOffsetDelta(4) }, "below the last record"},
		{"last delta of an ordinary batch", func(b *batch.Builder) { b.Append(r); b.SetLastOffsetDelta(4) }, "not derived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bld := batch.NewBuilder(batch.None)
			tt.build(bld)
			if _, err := bld.Build(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build: %v, want an error containing %q", err, tt.want)
			}
			// Reset forgets the misuse and the derived mode.
			bld.Reset()
			bld.Append(r)
			b, err := bld.Build()
			if err != nil {
				t.Fatalf("Build after Reset: %v", err)
			}
			if h, _ := batch.Validate(b); h.Derived() {
				t.Fatal("batch built after Reset is derived")
			}
		})
	}
}

func TestDerivedDecodeRejects(t *testing.T) {
	derived := func(lastDelta, count int32, deltas ...int64) []byte {
		var section []byte
		for _, d := range deltas {
			section = rawRecord{offsetDelta: d, value: []byte("v")}.appendTo(section)
		}
		return rawBatch(header{baseOffset: 10, magic: batch.Magic, attributes: batch.AttrDerived, lastOffsetDelta: lastDelta, recordCount: count}, section)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"decreasing delta", derived(5, 3, 0, 2, 1), "offset delta 1 of a derived batch, want 2 to 5"},
		{"delta past the last", derived(5, 2, 0, 6), "offset delta 6 of a derived batch, want 0 to 5"},
		{"negative delta", derived(5, 1, -1), "offset delta -1"},
		{"negative last delta", derived(-1, 1, 0), "derived batch with last offset delta -1"},
		{"count disagrees with the records", derived(5, 3, 0, 1), "record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := batch.Decode(tt.b, nil)
			if !errors.Is(err, batch.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode: %v, want ErrCorrupt containing %q", err, tt.want)
			}
		})
	}
	// The same gap in an ordinary batch is refused: its offsets are dense.
	var section []byte
	for _, d := range []int64{0, 2} {
		section = rawRecord{offsetDelta: d, value: []byte("v")}.appendTo(section)
	}
	b := rawBatch(header{magic: batch.Magic, lastOffsetDelta: 1, recordCount: 2}, section)
	if _, err := batch.Decode(b, nil); !errors.Is(err, batch.ErrCorrupt) {
		t.Fatalf("Decode of an ordinary batch with a gap: %v, want ErrCorrupt", err)
	}
}
