package commitlog_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

func TestEvictIdleSegments(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1024
	l := open(t, t.TempDir(), cfg)
	want := fill(t, l, 60, 1, 50, 1000)
	if n := l.Info().Segments; n < 5 {
		t.Fatalf("%d segments", n)
	}
	checkEveryOffset(t, l, want)
	l.EvictIdle() // clears the used marks
	l.EvictIdle() // evicts: nothing was read since
	checkEveryOffset(t, l, want)
	for _, w := range want {
		h, _ := batch.ParseHeader(w.bytes)
		if off, err := l.OffsetForTimestamp(h.MaxTimestamp); err != nil || off != w.base {
			t.Fatalf("OffsetForTimestamp(%d) = %d, %v; want %d", h.MaxTimestamp, off, err, w.base)
		}
	}
	l.EvictIdle()
	l.EvictIdle()
	checkAll(t, l, append(want, appendBatch(t, l, makeBatch(t, 60, 1, 50, 1000))))
}

// FuzzRecovery replaces the tail of the active segment with arbitrary bytes
// and checks that Open never fails or panics on them, keeps every batch
// before the tail, and serves only valid batches.
func FuzzRecovery(f *testing.F) {
	good := makeBatch(f, 0, 2, 10, 1000)
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), good[:30]...))
	f.Add(bytes.Repeat([]byte{0xff}, 200))

	cfg := testConfig()
	golden := f.TempDir()
	l, err := commitlog.Open(golden, cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	want := fill(f, l, 5, 2, 20, 1000)
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := copyDir(t, golden)
		active := segmentFiles(t, dir, ".log")[0]
		fh, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.Write(tail); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		l, err := commitlog.Open(dir, cfg, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		if l.EndOffset() < want[len(want)-1].last+1 {
			t.Fatalf("recovery lost good batches: end offset %d", l.EndOffset())
		}
		for off := l.StartOffset(); off < l.EndOffset(); {
			data, err := l.Read(off, 1<<20, nil)
			if err != nil {
				t.Fatalf("Read(%d): %v", off, err)
			}
			for _, b := range splitBatches(t, data) {
				h, _ := batch.ParseHeader(b)
				off = h.NextOffset()
			}
		}
		if _, _, err := l.Append(makeBatch(t, 9, 1, 1, 1000)); err != nil {
			t.Fatalf("Append after recovery: %v", err)
		}
	})
}
