package commitlog_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestSyncGroupsConcurrentCallers(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	fill(t, l, 3, 1, 10, 1000)
	if l.Info().DurableOffset != 0 {
		t.Fatalf("durable offset %d before any Sync", l.Info().DurableOffset)
	}
	before := l.Info().Fsyncs

	// Many Syncs of offsets written before any of them: one fsync.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		wg.Go(func() {
			<-start
			if err := l.Sync(context.Background(), int64(i%3)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := l.Info().Fsyncs - before; got != 1 {
		t.Fatalf("100 Syncs of written offsets made %d fsyncs, want 1", got)
	}
	if l.Info().DurableOffset != 3 {
		t.Fatalf("durable offset %d, want 3", l.Info().DurableOffset)
	}
	// A Sync of a durable offset costs nothing.
	if err := l.Sync(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if got := l.Info().Fsyncs - before; got != 1 {
		t.Fatalf("a Sync of a durable offset fsynced")
	}
}

func TestSyncGroupsConcurrentAppenders(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	l := open(t, t.TempDir(), cfg)
	const appenders, each = 8, 40
	before := l.Info().Fsyncs
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				_, last, err := l.Append(makeBatch(t, a*each+i, 1, 100, 1000))
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.Sync(context.Background(), last); err != nil {
					t.Error(err)
					return
				}
				if d := l.Info().DurableOffset; d <= last {
					t.Errorf("Sync(%d) returned with durable offset %d", last, d)
				}
			}
		})
	}
	wg.Wait()
	fsyncs := l.Info().Fsyncs - before
	t.Logf("%d appends with Sync made %d fsyncs", appenders*each, fsyncs)
	// How much grouping there is depends on how long an fsync takes (on
	// ext4 here, about a quarter as many fsyncs as Syncs); the exact test
	// is TestSyncGroupsConcurrentCallers.
	if fsyncs >= appenders*each {
		t.Fatalf("%d Syncs made %d fsyncs: not grouped", appenders*each, fsyncs)
	}
}

func TestSyncPipelined(t *testing.T) {
	// One producer appends without waiting and syncs in the background.
	l := open(t, t.TempDir(), testConfig())
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		_, last, err := l.Append(makeBatch(t, i, 1, 100, 1000))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs <- l.Sync(context.Background(), last) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("200 pipelined appends: %d fsyncs", l.Info().Fsyncs)
	if l.Info().DurableOffset != 200 {
		t.Fatalf("durable offset %d", l.Info().DurableOffset)
	}
}

func TestSyncErrors(t *testing.T) {
	l := open(t, t.TempDir(), testConfig())
	fill(t, l, 2, 1, 10, 1000)
	if err := l.Sync(context.Background(), 2); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
		t.Fatalf("Sync past the end = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Sync(ctx, 1); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with a canceled context = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(context.Background(), 1); err != nil {
		t.Fatalf("Close fsyncs everything, but Sync after Close = %v", err)
	}
}

// TestConcurrentReadersAppendsRetention runs readers against an appender and
// retention that deletes segments under them, with the background loop
// evicting idle segments every millisecond. Run it with -race.
func TestConcurrentReadersAppendsRetention(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 256
	cfg.RetentionBytes = 16 << 10
	cfg.RetentionCheckInterval = time.Millisecond
	l := open(t, t.TempDir(), cfg)

	var stop atomic.Bool
	var wg sync.WaitGroup
	var reads, outOfRange atomic.Int64
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			buf := make([]byte, 0, 4096)
			for !stop.Load() {
				start, end := l.StartOffset(), l.EndOffset()
				if end == start {
					continue
				}
				off := start + rng.Int64N(end-start)
				data, err := l.Read(off, 1000, buf)
				if errors.Is(err, commitlog.ErrOffsetOutOfRange) {
					outOfRange.Add(1) // retention won the race
					continue
				}
				if err != nil {
					t.Errorf("Read(%d): %v", off, err)
					return
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
		buf := make([]byte, 0, 8192)
		for !stop.Load() {
			ch := l.Changed()
			if next < l.StartOffset() {
				next = l.StartOffset()
			}
			if next == l.EndOffset() {
				select {
				case <-ch:
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			data, err := l.Read(next, 8192, buf)
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
	wg.Go(func() { // retention by hand too, with time-based deletion
		for !stop.Load() {
			if _, err := l.EnforceRetention(time.Now()); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if _, _, err := l.Append(makeBatch(t, i, 1+i%3, 80, 1000)); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			if _, err := l.OffsetForTimestamp(1001); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d reads, %d out of range, log %+v", reads.Load(), outOfRange.Load(), l.Info())
	if reads.Load() == 0 || l.StartOffset() == 0 {
		t.Fatalf("the test did not exercise reads (%d) or retention (start %d)", reads.Load(), l.StartOffset())
	}
}

// splitBatchesNoFail splits data into batches, for goroutines that must not
// call t.Fatal.
func splitBatchesNoFail(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		first, _, rest, err := batch.Next(data)
		if err != nil {
			return out
		}
		out = append(out, first)
		data = rest
	}
	return out
}
