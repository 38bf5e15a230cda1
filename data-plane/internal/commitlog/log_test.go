package commitlog_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestAppendReadRoundTrip(t *testing.T) {
	tests := []struct {
		name         string
		segmentBytes int64
		interval     int
		batches      int
		records      int
		valueSize    int
		perAppend    int // batches per Append call
	}{
		{name: "one batch per segment", segmentBytes: 100, interval: 1, batches: 20, records: 3, valueSize: 10, perAppend: 1},
		{name: "many small batches", segmentBytes: 4096, interval: 256, batches: 300, records: 1, valueSize: 20, perAppend: 1},
		{name: "multi-batch appends", segmentBytes: 8192, interval: 1024, batches: 240, records: 5, valueSize: 30, perAppend: 4},
		{name: "large batches sparse index", segmentBytes: 64 << 10, interval: 16 << 10, batches: 60, records: 20, valueSize: 300, perAppend: 2},
		{name: "no segment roll", segmentBytes: 1 << 20, interval: 4096, batches: 100, records: 2, valueSize: 50, perAppend: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			cfg.SegmentBytes = tt.segmentBytes
			cfg.IndexIntervalBytes = tt.interval
			l := open(t, dir, cfg)

			var want []appended
			for i := 0; i < tt.batches; i += tt.perAppend {
				var in []byte
				var sizes []int
				for j := i; j < min(i+tt.perAppend, tt.batches); j++ {
					b := makeBatch(t, j, tt.records, tt.valueSize, int64(1000+j*tt.records))
					in = append(in, b...)
					sizes = append(sizes, len(b))
				}
				base, last, err := l.Append(in)
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				if wantBase := int64(i * tt.records); base != wantBase || last != base+int64(len(sizes)*tt.records)-1 {
					t.Fatalf("Append = %d, %d; want base %d", base, last, wantBase)
				}
				for k, size := range sizes {
					want = append(want, appended{
						base:  base + int64(k*tt.records),
						last:  base + int64((k+1)*tt.records) - 1,
						bytes: slices.Clone(in[:size]),
					})
					in = in[size:]
				}
			}
			checkEveryOffset(t, l, want)
			if tt.segmentBytes < 64<<10 && l.Info().Segments < 2 {
				t.Fatalf("expected segment rolls, have %d segment", l.Info().Segments)
			}

			// The same after a reopen, with closed segments loaded lazily.
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open(t, dir, cfg)
			checkEveryOffset(t, l, want)
			checkAll(t, l, want)
		})
	}
}

// checkEveryOffset reads at every offset of the log and checks that the first
// batch returned is the one holding the offset.
func checkEveryOffset(t *testing.T, l *commitlog.Log, want []appended) {
	t.Helper()
	if got := l.EndOffset(); got != want[len(want)-1].last+1 {
		t.Fatalf("EndOffset = %d, want %d", got, want[len(want)-1].last+1)
	}
	buf := make([]byte, 0, 1<<10)
	for _, w := range want {
		for off := w.base; off <= w.last; off++ {
			data, err := l.Read(off, 1, buf)
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			if !bytes.Equal(data, w.bytes) {
				t.Fatalf("Read(%d) returned %d bytes, want the batch at %d", off, len(data), w.base)
			}
		}
	}
}

func TestReadMaxBytes(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	want := fill(t, l, 40, 2, 100, 1000) // 14 batches per 4 KiB segment
	size := len(want[0].bytes)
	tests := []struct {
		name     string
		offset   int64
		maxBytes int
		buf      []byte
		batches  int // expected number of batches
	}{
		{name: "zero max bytes returns one batch", offset: 0, maxBytes: 0, batches: 1},
		{name: "smaller than a batch returns one batch", offset: 1, maxBytes: size - 1, batches: 1},
		{name: "exactly two batches", offset: 2, maxBytes: 2 * size, batches: 2},
		{name: "just under three batches", offset: 2, maxBytes: 3*size - 1, batches: 2},
		{name: "stops at the segment end", offset: 0, maxBytes: 1 << 20, batches: 4096 / size},
		{name: "small buffer reads less", offset: 0, maxBytes: 1 << 20, buf: make([]byte, 0, 2*size+10), batches: 2},
		{name: "last batch", offset: 79, maxBytes: 1 << 20, batches: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := l.Read(tt.offset, tt.maxBytes, tt.buf)
			if err != nil {
				t.Fatal(err)
			}
			got := splitBatches(t, data)
			if len(got) != tt.batches {
				t.Fatalf("got %d batches, want %d", len(got), tt.batches)
			}
			if len(data) > max(tt.maxBytes, size) {
				t.Fatalf("got %d bytes for max %d", len(data), tt.maxBytes)
			}
			h, _ := batch.ParseHeader(got[0])
			if tt.offset < h.BaseOffset || tt.offset > h.LastOffset() {
				t.Fatalf("first batch holds %d-%d, not %d", h.BaseOffset, h.LastOffset(), tt.offset)
			}
			if tt.buf != nil && &data[0] != &tt.buf[:1][0] {
				t.Fatal("Read did not use the buffer")
			}
		})
	}

	for _, off := range []int64{-1, 81, 1000} {
		if _, err := l.Read(off, 100, nil); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
			t.Errorf("Read(%d) = %v, want ErrOffsetOutOfRange", off, err)
		}
	}
	if data, err := l.Read(80, 100, nil); err != nil || len(data) != 0 {
		t.Errorf("Read(EndOffset) = %d bytes, %v; want none", len(data), err)
	}
}

func TestReadBatchLargerThanMaxBytesAndBuffer(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	l := open(t, t.TempDir(), cfg)
	want := []appended{
		appendBatch(t, l, makeBatch(t, 0, 1, 10, 0)),
		appendBatch(t, l, makeBatch(t, 1, 1, 100<<10, 0)),
		appendBatch(t, l, makeBatch(t, 2, 1, 10, 0)),
	}
	data, err := l.Read(1, 10, make([]byte, 0, 100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want[1].bytes) {
		t.Fatalf("got %d bytes, want the whole %d-byte batch", len(data), len(want[1].bytes))
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.IndexIntervalBytes = 300
	l := open(t, dir, cfg)
	// Timestamps mostly grow, with some batches going back in time.
	var want []appended
	var maxTs []int64
	for i := range 60 {
		ts := int64(10_000 + 100*i)
		if i%7 == 3 {
			ts = 5_000 + int64(i)
		}
		want = append(want, appendBatch(t, l, makeBatch(t, i, 3, 40, ts)))
		maxTs = append(maxTs, ts+2)
	}
	check := func(t *testing.T) {
		for ts := int64(4_000); ts <= 17_000; ts += 37 {
			wantOff := l.EndOffset()
			for i, m := range maxTs {
				if m >= ts {
					wantOff = want[i].base
					break
				}
			}
			got, err := l.OffsetForTimestamp(ts)
			if err != nil {
				t.Fatal(err)
			}
			if got != wantOff {
				t.Fatalf("OffsetForTimestamp(%d) = %d, want %d", ts, got, wantOff)
			}
		}
	}
	check(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Lazily loaded time indexes, and rebuilt ones.
	l = open(t, dir, cfg)
	check(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range segmentFiles(t, dir, ".timeindex") {
		os.Remove(p)
	}
	l = open(t, dir, cfg)
	check(t)
}

func TestAppendInvalidLeavesLogUnchanged(t *testing.T) {
	good := func() []byte { return makeBatch(t, 9, 2, 20, 1) }
	badCRC := good()
	badCRC[len(badCRC)-1] ^= 1
	badMagic := good()
	badMagic[16] = 7
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{name: "empty", b: nil, want: batch.ErrTruncated},
		{name: "bad CRC", b: badCRC, want: batch.ErrBadCRC},
		{name: "bad CRC in the second batch", b: append(good(), badCRC...), want: batch.ErrBadCRC},
		{name: "bad magic", b: badMagic, want: batch.ErrBadMagic},
		{name: "truncated", b: good()[:40], want: batch.ErrTruncated},
		{name: "truncated second batch", b: append(good(), good()[:70]...), want: batch.ErrTruncated},
		{name: "too large", b: makeBatch(t, 1, 1, 2000, 1), want: commitlog.ErrBatchTooLarge},
		{name: "too large second batch", b: append(good(), makeBatch(t, 1, 1, 2000, 1)...), want: commitlog.ErrBatchTooLarge},
		{name: "derived (SmartModule output)", b: derivedBatch(t), want: batch.ErrDerived},
	}
	dir := t.TempDir()
	cfg := testConfig()
	cfg.MaxBatchBytes = 1000
	l := open(t, dir, cfg)
	want := fill(t, l, 3, 2, 20, 0)
	before := l.Info()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := l.Append(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("Append = %v, want %v", err, tt.want)
			}
			if got := l.Info(); got != before {
				t.Fatalf("Info changed: %+v, was %+v", got, before)
			}
			if size := fileSize(t, segmentFiles(t, dir, ".log")[0]); size != before.Size {
				t.Fatalf("segment file has %d bytes, want %d", size, before.Size)
			}
			checkAll(t, l, want)
		})
	}
	want = append(want, appendBatch(t, l, good()))
	checkAll(t, l, want)
}

func TestChangedWakesWaiters(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	const waiters = 5
	woke := make(chan int64, waiters)
	for range waiters {
		go func() {
			for {
				ch := l.Changed()
				if end := l.EndOffset(); end > 0 {
					woke <- end
					return
				}
				<-ch
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	appendBatch(t, l, makeBatch(t, 0, 1, 10, 0))
	for range waiters {
		select {
		case end := <-woke:
			if end != 1 {
				t.Fatalf("woke with end offset %d", end)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter was not woken")
		}
	}
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("Changed is closed without an append")
	default:
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not close the Changed channel")
	}
}

func TestClosedLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "topic-0")
	l, err := commitlog.Open(dir, testConfig(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := commitlog.Open(dir, testConfig(), testLogger(t)); err == nil {
		t.Fatal("a second Open of the same folder succeeded")
	}
	appendBatch(t, l, makeBatch(t, 0, 1, 10, 0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(makeBatch(t, 0, 1, 10, 0)); !errors.Is(err, commitlog.ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if _, err := l.Read(0, 100, nil); !errors.Is(err, commitlog.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if err := l.Sync(context.Background(), 0); err != nil {
		t.Errorf("Sync of a durable offset after Close = %v", err)
	}
	if _, err := l.EnforceRetention(time.Now()); !errors.Is(err, commitlog.ErrClosed) {
		t.Errorf("EnforceRetention after Close = %v", err)
	}
	if err := l.Close(); !errors.Is(err, commitlog.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}

	l, err = commitlog.Open(dir, testConfig(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if l.EndOffset() != 1 {
		t.Fatalf("EndOffset after reopen = %d", l.EndOffset())
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("folder still there after Remove: %v", err)
	}
}

func TestLeaderEpochStamped(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, testConfig())
	l.SetLeaderEpoch(7)
	appendBatch(t, l, makeBatch(t, 0, 2, 10, 0))
	data, err := l.Read(0, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := batch.Validate(data)
	if err != nil || h.LeaderEpoch != 7 || h.BaseOffset != 0 {
		t.Fatalf("stored header %+v, %v", h, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, testConfig())
	if got := l.Info().LeaderEpoch; got != 7 {
		t.Fatalf("leader epoch after reopen = %d, want 7", got)
	}
}

// TestReadNeverReturnsBatchesPastTheEndOffset tails a log while it is
// appended to in small batches. Append grows a segment before it publishes
// the new end offset; a Read in between must not return the batch that is
// not published yet, or the tailing reader would ask for an offset past the
// end and fail with ErrOffsetOutOfRange.
func TestReadNeverReturnsBatchesPastTheEndOffset(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	const batches = 20000
	b := makeBatch(t, 0, 1, 10, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range batches {
			if _, _, err := l.Append(slices.Clone(b)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var next int64
	buf := make([]byte, 0, 64<<10)
	for next < batches {
		end := l.EndOffset()
		data, err := l.Read(next, 64<<10, buf)
		if err != nil {
			t.Fatalf("read at %d: %v", next, err)
		}
		for _, raw := range splitBatches(t, data) {
			h, _ := batch.ParseHeader(raw)
			next = h.NextOffset()
		}
		if len(data) == 0 && end > next {
			t.Fatalf("read at %d returned nothing below end offset %d", next, end)
		}
	}
	<-done
}

// derivedBatch builds a batch the SPU sends consumers from SmartModule
// output: offsets 0 and 2 of three, never to be stored.
func derivedBatch(t *testing.T) []byte {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	b.AppendAt(batch.Record{Value: []byte("a")}, 0)
	b.AppendAt(batch.Record{Value: []byte("c")}, 2)
	b.SetLastOffsetDelta(2)
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
