package commitlog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

// copyDir copies the files of src into a new temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestRecoveryTornOrCorruptLastBatch truncates the active segment at, and
// separately flips, every byte of its last batch, and checks that recovery
// keeps every batch before it, never serves the damaged one, and appends
// again after it.
func TestRecoveryTornOrCorruptLastBatch(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 200
	golden := t.TempDir()
	l := open(t, golden, cfg)
	want := fill(t, l, 20, 2, 30, 100) // two segments
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	last := want[len(want)-1]
	logs := segmentFiles(t, golden, ".log")
	if len(logs) < 2 {
		t.Fatalf("want several segments, have %d", len(logs))
	}
	activeName := filepath.Base(logs[len(logs)-1])
	activeSize := fileSize(t, logs[len(logs)-1])
	lastPos := activeSize - int64(len(last.bytes))

	check := func(t *testing.T, dir string, wantKept []appended) {
		t.Helper()
		l, err := commitlog.Open(dir, cfg, testLogger(t))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		checkAll(t, l, wantKept)
		if len(wantKept) < len(want) {
			if data, err := l.Read(last.base, 1<<20, nil); err == nil && len(data) != 0 {
				t.Fatalf("Read at the damaged batch returned %d bytes", len(data))
			}
		}
		// Appends work and continue the offsets.
		next := appendBatch(t, l, makeBatch(t, 99, 3, 10, 5000))
		if next.base != wantKept[len(wantKept)-1].last+1 {
			t.Fatalf("append after recovery got offset %d, want %d", next.base, wantKept[len(wantKept)-1].last+1)
		}
		checkAll(t, l, append(append([]appended(nil), wantKept...), next))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// And a second recovery finds nothing to cut.
		l, err = commitlog.Open(dir, cfg, testLogger(t))
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		checkAll(t, l, append(append([]appended(nil), wantKept...), next))
	}

	// Every byte takes a few seconds (each recovery fsyncs); -short tries
	// every fifth.
	step := int64(1)
	if testing.Short() {
		step = 5
	}
	t.Run("truncate", func(t *testing.T) {
		for pos := lastPos; pos < activeSize; pos += step {
			dir := copyDir(t, golden)
			if err := os.Truncate(filepath.Join(dir, activeName), pos); err != nil {
				t.Fatal(err)
			}
			check(t, dir, want[:len(want)-1])
		}
	})

	t.Run("flip", func(t *testing.T) {
		for pos := lastPos; pos < activeSize; pos += step {
			dir := copyDir(t, golden)
			path := filepath.Join(dir, activeName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[pos] ^= 0x10
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			kept := want[:len(want)-1]
			if off := pos - lastPos; off >= 12 && off < 16 {
				// The leader epoch lies outside the CRC (it is stamped
				// after the producer computed the CRC): the batch, whose
				// records are intact, stays, with the flipped epoch.
				flipped := last
				flipped.bytes = b[lastPos:]
				kept = append(kept[:len(kept):len(kept)], flipped)
			}
			check(t, dir, kept)
		}
	})

	t.Run("flip in a middle batch truncates from there", func(t *testing.T) {
		dir := copyDir(t, golden)
		path := filepath.Join(dir, activeName)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The second batch of the active segment: find where it starts.
		first, _, rest, err := batch.Next(b)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := batch.ParseHeader(rest)
		b[len(first)+batch.HeaderSize+5] ^= 0xff
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var kept []appended
		for _, w := range want {
			if w.base < h.BaseOffset {
				kept = append(kept, w)
			}
		}
		check(t, dir, kept)
	})

	t.Run("garbage appended", func(t *testing.T) {
		dir := copyDir(t, golden)
		f, err := os.OpenFile(filepath.Join(dir, activeName), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(bytes.Repeat([]byte{0}, 100))
		f.Close()
		check(t, dir, want)
	})
}

// TestRecoveryAfterUnflushedRoll checks the segments at and after the
// recovery point: a damaged closed segment there is truncated and the
// segments after it are deleted, as after a power failure that lost the
// data of a segment rolled just before.
func TestRecoveryAfterUnflushedRoll(t *testing.T) {
	cfg := testConfig()
	cfg.SegmentBytes = 1024
	dir := t.TempDir()
	l := open(t, dir, cfg)
	want := fill(t, l, 30, 2, 20, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	logs := segmentFiles(t, dir, ".log")
	if len(logs) < 4 {
		t.Fatalf("want at least 4 segments, have %d", len(logs))
	}
	// Pretend the third segment was never fsynced: the recovery point is
	// its base, and its tail was lost.
	third := filepath.Base(logs[2])
	if err := os.WriteFile(filepath.Join(dir, "recovery-point"), []byte(third[:20]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	size := fileSize(t, logs[2])
	if err := os.Truncate(logs[2], size-7); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, cfg)
	var kept []appended
	for _, w := range want {
		if w.base < l.EndOffset() {
			kept = append(kept, w)
		}
	}
	if len(kept) == len(want) {
		t.Fatal("nothing was truncated")
	}
	checkAll(t, l, kept)
	if got := len(segmentFiles(t, dir, ".log")); got != 3 {
		t.Fatalf("%d segments after recovery, want 3", got)
	}
	kept = append(kept, appendBatch(t, l, makeBatch(t, 1, 1, 1, 0)))
	checkAll(t, l, kept)
}

// TestRebuildIndexes damages the indexes of closed segments in every way and
// checks that reads and timestamp lookups still find every batch.
func TestRebuildIndexes(t *testing.T) {
	damages := []struct {
		name   string
		suffix string
		damage func(path string) error
	}{
		{name: "missing index", suffix: ".index", damage: os.Remove},
		{name: "missing time index", suffix: ".timeindex", damage: os.Remove},
		{name: "empty index", suffix: ".index", damage: func(p string) error { return os.Truncate(p, 0) }},
		{name: "empty time index", suffix: ".timeindex", damage: func(p string) error { return os.Truncate(p, 0) }},
		{name: "torn index", suffix: ".index", damage: func(p string) error { return os.Truncate(p, 5) }},
		{name: "torn time index", suffix: ".timeindex", damage: func(p string) error { return os.Truncate(p, 13) }},
		{name: "short index", suffix: ".index", damage: func(p string) error { return os.Truncate(p, 8) }},
		{name: "garbage index", suffix: ".index", damage: func(p string) error {
			return os.WriteFile(p, bytes.Repeat([]byte{0, 0, 0, 1, 0, 0, 0, 9}, 2), 0o644)
		}},
		{name: "unsorted index", suffix: ".index", damage: func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil || len(b) < 16 {
				return err
			}
			copy(b[len(b)-8:], b[:8])
			return os.WriteFile(p, b, 0o644)
		}},
		{name: "index pointing between batches", suffix: ".index", damage: func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil || len(b) < 8 {
				return err
			}
			b[7]++ // one byte past the batch start
			return os.WriteFile(p, b, 0o644)
		}},
	}
	cfg := testConfig()
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 100
	golden := t.TempDir()
	l := open(t, golden, cfg)
	want := fill(t, l, 40, 2, 20, 1000)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := copyDir(t, golden)
			paths := segmentFiles(t, dir, d.suffix)
			for _, p := range paths[:len(paths)-1] { // closed segments
				if err := d.damage(p); err != nil {
					t.Fatal(err)
				}
			}
			l := open(t, dir, cfg)
			checkEveryOffset(t, l, want)
			for _, w := range want {
				h, _ := batch.ParseHeader(w.bytes)
				if off, err := l.OffsetForTimestamp(h.MaxTimestamp); err != nil || off != w.base {
					t.Fatalf("OffsetForTimestamp(%d) = %d, %v; want %d", h.MaxTimestamp, off, err, w.base)
				}
			}
		})
	}
}

func TestOrphanIndexFilesDeleted(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"00000000000000000500.index", "00000000000000000500.timeindex", "recovery-point.tmp"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := open(t, dir, testConfig())
	if l.EndOffset() != 0 || l.StartOffset() != 0 {
		t.Fatalf("offsets %d-%d", l.StartOffset(), l.EndOffset())
	}
	for _, name := range []string{"00000000000000000500.index", "00000000000000000500.timeindex", "recovery-point.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s not deleted: %v", name, err)
		}
	}
}
