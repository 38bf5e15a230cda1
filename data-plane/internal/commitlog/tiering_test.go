package commitlog_test

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestClosedSegmentsDescribeEverySegmentButTheActiveOne(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, testConfig())
	l.SetLeaderEpoch(3)
	rolled := l.Rolled()
	want := fill(t, l, 40, 3, 100, 1_000)
	select {
	case <-rolled:
	default:
		t.Fatal("Rolled was not closed by a roll")
	}
	segs := l.ClosedSegments()
	info := l.Info()
	if len(segs) != info.Segments-1 || len(segs) == 0 {
		t.Fatalf("%d closed segments, the log has %d", len(segs), info.Segments)
	}
	next := int64(0)
	for _, s := range segs {
		if s.Base != next || s.Last < s.Base || s.Epoch != 3 || s.Size != fileSize(t, s.LogPath) {
			t.Fatalf("segment %+v does not follow offset %d, or has a wrong epoch or size", s, next)
		}
		next = s.Last + 1
	}
	if next != info.ActiveBase {
		t.Fatalf("closed segments end at %d, the active one starts at %d", next, info.ActiveBase)
	}
	// After a restart the epoch is read from the files.
	l.Close()
	l = open(t, dir, testConfig())
	again := l.ClosedSegments()
	if len(again) != len(segs) {
		t.Fatalf("after reopening: %d closed segments, want %d", len(again), len(segs))
	}
	for i := range segs {
		if again[i].Epoch != 3 || again[i].MaxTimestamp != segs[i].MaxTimestamp {
			t.Fatalf("after reopening: %+v, was %+v", again[i], segs[i])
		}
	}
	checkAll(t, l, want)
}

func TestOpenClosedSegmentReadsTheSegmentAndItsTail(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	want := fill(t, l, 40, 3, 100, 1_000)
	segs := l.ClosedSegments()
	s := segs[0]
	d, err := l.OpenClosedSegment(s.Base, s.Base)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := io.ReadAll(d.Log)
	d.Close()
	if int64(len(whole)) != s.Size || len(d.Index)%8 != 0 || len(d.TimeIndex) == 0 || len(d.TimeIndex)%12 != 0 {
		t.Fatalf("read %d bytes of %d, index %d bytes, time index %d bytes", len(whole), s.Size, len(d.Index), len(d.TimeIndex))
	}
	// The tail from the third batch of the segment.
	var third appended
	n := 0
	for _, w := range want {
		if w.base >= s.Base && w.last <= s.Last {
			if n == 2 {
				third = w
			}
			n++
		}
	}
	d, err = l.OpenClosedSegment(s.Base, third.base)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tail, _ := io.ReadAll(d.Log)
	if !bytes.HasSuffix(whole, tail) || !bytes.HasPrefix(tail, third.bytes) || d.Base != third.base || d.Last != s.Last || d.Size != int64(len(tail)) {
		t.Fatalf("tail from %d: %d bytes, base %d, last %d", third.base, len(tail), d.Base, d.Last)
	}
	h, _ := batch.ParseHeader(want[n-1].bytes)
	if d.MaxTimestamp != h.MaxTimestamp {
		t.Fatalf("tail max timestamp %d, want %d", d.MaxTimestamp, h.MaxTimestamp)
	}
	if _, err := l.OpenClosedSegment(s.Base, third.base+1); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		t.Fatalf("open from inside a batch: %v", err)
	}
	if _, err := l.OpenClosedSegment(l.Info().ActiveBase, l.Info().ActiveBase); !errors.Is(err, commitlog.ErrSegmentNotFound) {
		t.Fatalf("open the active segment: %v", err)
	}
}

func TestTieredRetentionDeletesOnlyWhatTheGateAllows(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := testConfig()
	cfg.Tiering = true
	cfg.RetentionTime = 24 * time.Hour // the whole log's: not applied locally
	cfg.LocalRetentionTime = time.Hour
	l := open(t, t.TempDir(), cfg)
	want := fill(t, l, 60, 3, 100, t0.UnixMilli())
	segs := l.ClosedSegments()
	if len(segs) < 4 {
		t.Fatalf("only %d closed segments", len(segs))
	}
	now := t0.Add(10 * time.Hour) // everything is past the local retention

	// No gate: nothing is deleted, everything is held.
	if n, err := l.EnforceRetention(now); err != nil || n != 0 {
		t.Fatalf("EnforceRetention without a gate = %d, %v", n, err)
	}
	info := l.Info()
	if info.RetentionHeldSegments == 0 || info.RetentionHeldBytes == 0 || info.StartOffset != 0 {
		t.Fatalf("without a gate: %+v", info)
	}

	// Uploaded up to the end of the second segment: only those two go.
	var uploadedEnd atomic.Int64
	uploadedEnd.Store(segs[1].Last + 1)
	var calls atomic.Int64
	l.SetDeletionGate(func(base, last int64) bool { calls.Add(1); return last < uploadedEnd.Load() })
	if n, err := l.EnforceRetention(now); err != nil || n != 2 {
		t.Fatalf("EnforceRetention = %d, %v; want 2 deleted", n, err)
	}
	if l.StartOffset() != segs[2].Base || calls.Load() == 0 {
		t.Fatalf("start offset %d, want %d", l.StartOffset(), segs[2].Base)
	}
	checkAll(t, l, want)

	// Everything uploaded: all closed segments go, the held state clears.
	uploadedEnd.Store(l.EndOffset())
	if _, err := l.EnforceRetention(now); err != nil {
		t.Fatal(err)
	}
	info = l.Info()
	if info.RetentionHeldSegments != 0 || info.RetentionHeldBytes != 0 || info.Segments != 1 {
		t.Fatalf("after uploading everything: %+v", info)
	}
}

func TestTieredRetentionBySizeAndWithoutTieringUnchanged(t *testing.T) {
	tests := []struct {
		name        string
		tiering     bool
		gate        bool
		wantDeleted bool
	}{
		{name: "tiering, uploaded", tiering: true, gate: true, wantDeleted: true},
		{name: "tiering, not uploaded", tiering: true, gate: false, wantDeleted: false},
		{name: "no tiering ignores the local settings and the gate", tiering: false, gate: false, wantDeleted: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Tiering = tt.tiering
			cfg.LocalRetentionBytes = 8192
			l := open(t, t.TempDir(), cfg)
			l.SetDeletionGate(func(int64, int64) bool { return tt.gate })
			fill(t, l, 100, 3, 100, 1_000)
			n, err := l.EnforceRetention(time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tt.wantDeleted {
				t.Fatalf("deleted %d segments; want deletions: %v", n, tt.wantDeleted)
			}
			if tt.wantDeleted {
				if info := l.Info(); info.Size > 8192+cfg.SegmentBytes {
					t.Fatalf("size %d after retention to 8192 bytes", info.Size)
				}
			}
		})
	}
}

func TestClosedSegmentsRaceRetentionAndReset(t *testing.T) {
	cfg := testConfig()
	cfg.RetentionBytes = 16 << 10
	l := open(t, t.TempDir(), cfg)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, _, err := l.Append(makeBatch(t, i, 3, 100, int64(i))); err != nil {
				t.Error(err)
				return
			}
			if i%200 == 199 {
				if err := l.Reset(); err != nil {
					t.Error(err)
					return
				}
			}
		}
	})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.EnforceRetention(time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for _, s := range l.ClosedSegments() {
			d, err := l.OpenClosedSegment(s.Base, s.Base)
			if errors.Is(err, commitlog.ErrSegmentNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(d.Log)
			d.Close()
			if err != nil || int64(len(b)) != d.Size {
				t.Fatalf("read %d of %d bytes: %v", len(b), d.Size, err)
			}
			if _, err := batch.Validate(b[:mustHeader(t, b).Size()]); err != nil {
				t.Fatalf("segment %d starts with a bad batch: %v", d.Base, err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func mustHeader(t *testing.T, b []byte) batch.Header {
	t.Helper()
	h, err := batch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
