package commitlog_test

import (
	"errors"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestRetention(t *testing.T) {
	// 30 batches of ~120 bytes, timestamps one minute apart from t0, in
	// segments of at most 1 KiB.
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		retentionTime  time.Duration
		retentionBytes int64
		now            time.Time
		check          func(t *testing.T, l *commitlog.Log, want []appended, deleted int)
	}{
		{
			name: "nothing expired", retentionTime: time.Hour, now: t0.Add(50 * time.Minute),
			check: func(t *testing.T, l *commitlog.Log, want []appended, deleted int) {
				if deleted != 0 || l.StartOffset() != 0 {
					t.Fatalf("deleted %d segments, start offset %d", deleted, l.StartOffset())
				}
			},
		},
		{
			name: "by time", retentionTime: time.Hour, now: t0.Add(75 * time.Minute),
			check: func(t *testing.T, l *commitlog.Log, want []appended, deleted int) {
				// Every batch newer than now - 1h = t0+15min stays.
				if deleted == 0 {
					t.Fatal("nothing deleted")
				}
				for _, w := range want {
					h, _ := batch.ParseHeader(w.bytes)
					kept := w.base >= l.StartOffset()
					if h.MaxTimestamp >= t0.Add(15*time.Minute).UnixMilli() && !kept {
						t.Fatalf("batch %d of %v deleted", w.base, time.UnixMilli(h.MaxTimestamp).UTC())
					}
				}
				if _, err := l.Read(l.StartOffset()-1, 100, nil); !errors.Is(err, commitlog.ErrOffsetOutOfRange) {
					t.Fatalf("Read below the start = %v", err)
				}
			},
		},
		{
			name: "all expired rolls and deletes the active segment", retentionTime: time.Hour, now: t0.Add(10 * time.Hour),
			check: func(t *testing.T, l *commitlog.Log, want []appended, deleted int) {
				info := l.Info()
				if info.StartOffset != info.EndOffset || info.Size != 0 || info.Segments != 1 {
					t.Fatalf("after expiring everything: %+v", info)
				}
				if info.EndOffset != want[len(want)-1].last+1 {
					t.Fatalf("end offset %d lost", info.EndOffset)
				}
			},
		},
		{
			name: "by bytes", retentionBytes: 2000, now: t0,
			check: func(t *testing.T, l *commitlog.Log, want []appended, deleted int) {
				if deleted == 0 {
					t.Fatal("nothing deleted")
				}
				if size := l.Info().Size; size > 2000 {
					t.Fatalf("log has %d bytes, more than the 2000 retained", size)
				}
				if size := l.Info().Size; size < 2000-1024 {
					t.Fatalf("log has %d bytes: more deleted than needed", size)
				}
			},
		},
		{
			name: "forever", now: t0.Add(100000 * time.Hour),
			check: func(t *testing.T, l *commitlog.Log, want []appended, deleted int) {
				if deleted != 0 {
					t.Fatalf("deleted %d segments", deleted)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig()
			cfg.SegmentBytes = 1024
			cfg.SegmentAge = 1000 * time.Hour
			cfg.RetentionTime = tt.retentionTime
			cfg.RetentionBytes = tt.retentionBytes
			l := open(t, dir, cfg)
			var want []appended
			for i := range 30 {
				want = append(want, appendBatch(t, l, makeBatch(t, i, 1, 50, t0.Add(time.Duration(i)*time.Minute).UnixMilli())))
			}
			deleted, err := l.EnforceRetention(tt.now)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, l, want, deleted)
			if got := len(segmentFiles(t, dir, ".log")); got != l.Info().Segments {
				t.Fatalf("%d segment files for %d segments", got, l.Info().Segments)
			}
			if got := len(segmentFiles(t, dir, ".index")); got != l.Info().Segments {
				t.Fatalf("%d index files for %d segments", got, l.Info().Segments)
			}
			checkAll(t, l, want)
			// Appends go on, and a reopen finds the same log.
			want = append(want, appendBatch(t, l, makeBatch(t, 99, 1, 50, tt.now.UnixMilli())))
			start := l.StartOffset()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open(t, dir, cfg)
			if l.StartOffset() != start {
				t.Fatalf("start offset %d after reopen, was %d", l.StartOffset(), start)
			}
			checkAll(t, l, want)
		})
	}
}

func TestRollByAge(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.SegmentAge = time.Hour
	l := open(t, t.TempDir(), cfg)
	want := fill(t, l, 5, 1, 10, 1000)
	if _, err := l.EnforceRetention(time.Now().Add(59 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := l.Info().Segments; n != 1 {
		t.Fatalf("rolled before the age: %d segments", n)
	}
	if _, err := l.EnforceRetention(time.Now().Add(61 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if info := l.Info(); info.Segments != 2 || info.ActiveBase != 5 {
		t.Fatalf("after the age: %+v", info)
	}
	// An empty active segment does not roll, however old.
	if _, err := l.EnforceRetention(time.Now().Add(1000 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := l.Info().Segments; n != 2 {
		t.Fatalf("an empty segment rolled: %d segments", n)
	}
	want = append(want, fill(t, l, 2, 1, 10, 1000)...)
	checkAll(t, l, want)

	// Append rolls by age too.
	cfg.SegmentAge = 50 * time.Millisecond
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	want = append(want, appendBatch(t, l, makeBatch(t, 7, 1, 10, 1000)))
	if info := l.Info(); info.Segments != 3 || info.ActiveBase != 7 {
		t.Fatalf("Append did not roll the aged segment: %+v", info)
	}
	checkAll(t, l, want)
}

func TestSetConfigLive(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1 << 20
	cfg.RetentionCheckInterval = time.Hour
	l := open(t, t.TempDir(), cfg)
	fill(t, l, 10, 1, 100, 1000)
	if n := l.Info().Segments; n != 1 {
		t.Fatalf("%d segments", n)
	}

	bad := cfg
	bad.SegmentBytes = -1
	if err := l.SetConfig(bad); err == nil {
		t.Fatal("SetConfig accepted a bad config")
	}
	if l.Config().SegmentBytes != 1<<20 {
		t.Fatal("a failed SetConfig changed the config")
	}

	// Smaller segments from the next append on.
	cfg.SegmentBytes = 500
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	fill(t, l, 10, 1, 100, 1000)
	if n := l.Info().Segments; n < 4 {
		t.Fatalf("%d segments after lowering the segment size", n)
	}

	// Retention applies at once, without waiting for the hour-long check.
	cfg.RetentionBytes = 600
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Info().Size > 600 {
		if time.Now().After(deadline) {
			t.Fatalf("retention not applied: %+v", l.Info())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*commitlog.Config)
		ok     bool
	}{
		{name: "defaults", change: func(*commitlog.Config) {}, ok: true},
		{name: "zero config", change: func(c *commitlog.Config) { *c = commitlog.Config{} }, ok: true},
		{name: "negative segment bytes", change: func(c *commitlog.Config) { c.SegmentBytes = -1 }},
		{name: "tiny segment bytes", change: func(c *commitlog.Config) { c.SegmentBytes = 10 }},
		{name: "huge segment bytes", change: func(c *commitlog.Config) { c.SegmentBytes = 3 << 30 }},
		{name: "negative segment age", change: func(c *commitlog.Config) { c.SegmentAge = -time.Second }},
		{name: "negative retention time", change: func(c *commitlog.Config) { c.RetentionTime = -time.Second }},
		{name: "negative retention bytes", change: func(c *commitlog.Config) { c.RetentionBytes = -1 }},
		{name: "tiny max batch", change: func(c *commitlog.Config) { c.MaxBatchBytes = 10 }},
		{name: "negative index interval", change: func(c *commitlog.Config) { c.IndexIntervalBytes = -1 }},
		{name: "unknown durability", change: func(c *commitlog.Config) { c.Durability = 5 }},
		{name: "fsync durability", change: func(c *commitlog.Config) { c.Durability = commitlog.Fsync }, ok: true},
		{name: "negative check interval", change: func(c *commitlog.Config) { c.RetentionCheckInterval = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := commitlog.DefaultConfig()
			tt.change(&cfg)
			if err := cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
			l, err := commitlog.Open(t.TempDir(), cfg, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("Open = %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				l.Close()
			}
		})
	}
	d := commitlog.DefaultConfig()
	if d.SegmentBytes != 1<<30 || d.RetentionTime != 7*24*time.Hour || d.SegmentAge != 7*24*time.Hour ||
		d.MaxBatchBytes != 1<<20 || d.IndexIntervalBytes != 4096 || d.RetentionCheckInterval != time.Minute ||
		d.Durability != commitlog.Write || d.RetentionBytes != 0 {
		t.Fatalf("DefaultConfig = %+v", d)
	}
}
