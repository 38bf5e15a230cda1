package commitlog_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestResetDiscardsTheLogAndStartsAtZero(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, testConfig())
	l.SetLeaderEpoch(4)
	old := fill(t, l, 40, 5, 100, 1000) // several segments of 4 KiB
	if err := l.Sync(context.Background(), old[len(old)-1].last); err != nil {
		t.Fatal(err)
	}
	if l.Info().Segments < 2 {
		t.Fatalf("the log did not roll: %+v", l.Info())
	}
	changed := l.Changed()

	if err := l.Reset(); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Reset did not wake the Changed waiters")
	}
	info := l.Info()
	if info.StartOffset != 0 || info.EndOffset != 0 || info.DurableOffset != 0 || info.Segments != 1 || info.ActiveBase != 0 || info.Size != 0 {
		t.Fatalf("after Reset, info %+v", info)
	}
	if info.LeaderEpoch != 4 {
		t.Fatalf("Reset changed the leader epoch to %d", info.LeaderEpoch)
	}
	for _, suffix := range []string{".log", ".index", ".timeindex"} {
		files := segmentFiles(t, dir, suffix)
		if len(files) != 1 || filepath.Base(files[0]) != "00000000000000000000"+suffix || fileSize(t, files[0]) != 0 {
			t.Fatalf("%s files after Reset: %v", suffix, files)
		}
	}
	if rp, err := os.ReadFile(filepath.Join(dir, "recovery-point")); err != nil || strings.TrimSpace(string(rp)) != "0" {
		t.Fatalf("recovery point after Reset: %q, %v", rp, err)
	}
	if data, err := l.Read(0, 1000, nil); err != nil || len(data) != 0 {
		t.Fatalf("Read(0) after Reset = %d bytes, %v", len(data), err)
	}
	if _, err := l.Read(5, 1000, nil); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		t.Fatalf("Read(5) after Reset: %v, want ErrOffsetOutOfRange", err)
	}
	if err := l.Sync(context.Background(), 5); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		t.Fatalf("Sync(5) after Reset: %v, want ErrOffsetOutOfRange", err)
	}
	if off, err := l.OffsetForTimestamp(0); err != nil || off != 0 {
		t.Fatalf("OffsetForTimestamp after Reset = %d, %v", off, err)
	}

	// A follower fetches everything again, from 0.
	want := leaderBatches(t, 30)
	for _, a := range want {
		if _, err := l.AppendReplicated(a.bytes); err != nil {
			t.Fatalf("AppendReplicated at %d: %v", a.base, err)
		}
	}
	checkAll(t, l, want)
	if err := l.Sync(context.Background(), want[len(want)-1].last); err != nil {
		t.Fatal(err)
	}
	if d := l.Info().DurableOffset; d != want[len(want)-1].last+1 {
		t.Fatalf("durable offset %d, want %d", d, want[len(want)-1].last+1)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, dir, testConfig())
	checkAll(t, l, want)
	if l.StartOffset() != 0 {
		t.Fatalf("start offset %d after reopen", l.StartOffset())
	}
	more := appendBatch(t, l, makeBatch(t, 99, 3, 10, 5000))
	if more.base != want[len(want)-1].last+1 {
		t.Fatalf("append after reopen at %d, want %d", more.base, want[len(want)-1].last+1)
	}
	checkAll(t, l, append(want, more))
}

func TestResetThenAppendAndReopen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, testConfig())
	fill(t, l, 20, 5, 100, 1000)
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	want := fill(t, l, 3, 2, 50, 2000)
	if want[0].base != 0 {
		t.Fatalf("first append after Reset at %d", want[0].base)
	}
	// Reopen without Close's final sync having run on the old segments:
	// only the new log may come back.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, testConfig())
	checkAll(t, l, want)

	// Reset an empty log, and a reset log.
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, l, nil)
	if l.EndOffset() != 0 {
		t.Fatalf("end offset %d", l.EndOffset())
	}
}

func TestResetAfterClose(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	fill(t, l, 2, 1, 10, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Reset(); !errors.Is(err, commitlog.ErrClosed) {
		t.Fatalf("Reset after Close: %v, want ErrClosed", err)
	}
}

// TestResetConcurrent resets the log again and again while readers, a
// tailing consumer, an appender with Syncs, and retention run. Run it with
// -race.
func TestResetConcurrent(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 256
	cfg.RetentionBytes = 16 << 10
	cfg.RetentionCheckInterval = time.Millisecond
	l := open(t, dir, cfg)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			buf := make([]byte, 0, 4096)
			for !stop.Load() {
				start, end := l.StartOffset(), l.EndOffset()
				if end <= start {
					continue
				}
				off := start + rng.Int64N(end-start)
				data, err := l.Read(off, 1000, buf)
				if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
					continue // a Reset or retention won the race
				}
				if err != nil {
					t.Errorf("Read(%d): %v", off, err)
					return
				}
				if len(data) == 0 {
					continue // reset meanwhile, and offset is the new end
				}
				for first := true; len(data) > 0; first = false {
					_, h, rest, err := batch.Next(data)
					if err != nil {
						t.Errorf("Read(%d) returned a bad batch: %v", off, err)
						return
					}
					if first && (h.BaseOffset > off || h.LastOffset() < off) {
						t.Errorf("Read(%d) returned the batch %d-%d first", off, h.BaseOffset, h.LastOffset())
						return
					}
					data = rest
				}
				reads.Add(1)
			}
		})
	}
	wg.Go(func() { // a consumer following the end with Changed
		next := int64(0)
		for !stop.Load() {
			ch := l.Changed()
			if end := l.EndOffset(); next > end || next < l.StartOffset() {
				next = l.StartOffset()
			}
			if next == l.EndOffset() {
				select {
				case <-ch:
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			data, err := l.Read(next, 8192, nil)
			if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
				continue
			}
			if err != nil {
				t.Errorf("tailing Read(%d): %v", next, err)
				return
			}
			for _, b := range splitBatchesNoFail(data) {
				h, _ := batch.ParseHeader(b)
				if h.BaseOffset > next || h.LastOffset() < next {
					t.Errorf("tailing Read(%d) returned the batch %d-%d", next, h.BaseOffset, h.LastOffset())
					return
				}
				next = h.NextOffset()
			}
		}
	})
	wg.Go(func() { // retention by hand too
		for !stop.Load() {
			if _, err := l.EnforceRetention(time.Now()); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	var resets atomic.Int64
	wg.Go(func() { // the resets; nothing else resets, so end only grows between them
		for !stop.Load() {
			time.Sleep(5 * time.Millisecond)
			if err := l.Reset(); err != nil {
				t.Errorf("Reset: %v", err)
				return
			}
			resets.Add(1)
			for range 20 {
				// A syncer round that spanned the Reset must not publish
				// the old log's durable offset.
				d := l.Info().DurableOffset
				if e := l.EndOffset(); d > e {
					t.Errorf("durable offset %d is past the end offset %d after a Reset", d, e)
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	var synced atomic.Int64
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		_, last, err := l.Append(makeBatch(t, i, 1+i%3, 80, 1000))
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			err := l.Sync(context.Background(), last)
			if err == nil {
				synced.Add(1)
			} else if !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
				t.Fatalf("Sync(%d): %v", last, err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads, %d resets, %d syncs, log %+v", reads.Load(), resets.Load(), synced.Load(), l.Info())
	if reads.Load() == 0 || resets.Load() == 0 || synced.Load() == 0 {
		t.Fatal("the test did not exercise reads, resets and syncs")
	}

	// The log still works, and survives a reopen.
	if err := l.Reset(); err != nil {
		t.Fatal(err)
	}
	want := fill(t, l, 30, 2, 80, 3000)
	if err := l.Sync(context.Background(), want[len(want)-1].last); err != nil {
		t.Fatal(err)
	}
	checkAll(t, l, want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, cfg)
	checkAll(t, l, want)
}
