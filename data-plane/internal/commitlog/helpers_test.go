package commitlog_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

// testLogger logs to the test's output, so that what recovery cut shows
// with -v and on failure.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// testConfig is a config with small segments and no background retention.
func testConfig() commitlog.Config {
	cfg := commitlog.DefaultConfig()
	cfg.RetentionTime = 0
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 512
	cfg.RetentionCheckInterval = 24 * 3600e9
	return cfg
}

// open opens a log in dir and closes it when the test ends.
func open(t testing.TB, dir string, cfg commitlog.Config) *commitlog.Log {
	t.Helper()
	l, err := commitlog.Open(dir, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, commitlog.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// makeBatch builds a batch of n records with values of valueSize bytes and
// timestamps ts, ts+1, ...; the values say which batch and record they are.
func makeBatch(t testing.TB, id, n, valueSize int, ts int64) []byte {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	for i := range n {
		v := fmt.Appendf(nil, "batch %d record %d;", id, i)
		for len(v) < valueSize {
			v = append(v, byte('a'+(id+len(v))%26))
		}
		b.Append(batch.Record{Value: v[:max(valueSize, len(v))], Timestamp: ts + int64(i)})
	}
	out, err := b.Build()
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return out
}

// appended is a batch as the log stored it.
type appended struct {
	base, last int64
	bytes      []byte // stamped
}

// appendBatch appends b and returns it as stored.
func appendBatch(t testing.TB, l *commitlog.Log, b []byte) appended {
	t.Helper()
	base, last, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return appended{base: base, last: last, bytes: slices.Clone(b)}
}

// fill appends count batches of records records each and returns them.
func fill(t testing.TB, l *commitlog.Log, count, records, valueSize int, ts int64) []appended {
	t.Helper()
	var out []appended
	for i := range count {
		out = append(out, appendBatch(t, l, makeBatch(t, i, records, valueSize, ts+int64(i*records))))
	}
	return out
}

// splitBatches splits data into batches, failing the test on a bad one.
func splitBatches(t testing.TB, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(data) > 0 {
		first, _, rest, err := batch.Next(data)
		if err != nil {
			t.Fatalf("read returned a bad batch: %v", err)
		}
		out = append(out, first)
		data = rest
	}
	return out
}

// checkAll reads the whole log batch by batch and checks it holds exactly
// want, from the start offset on.
func checkAll(t testing.TB, l *commitlog.Log, want []appended) {
	t.Helper()
	start := l.StartOffset()
	for len(want) > 0 && want[0].last < start {
		want = want[1:]
	}
	var got [][]byte
	buf := make([]byte, 0, 64<<10)
	for off := start; off < l.EndOffset(); {
		data, err := l.Read(off, 8<<10, buf)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(data) == 0 {
			t.Fatalf("Read(%d) returned nothing before the end offset %d", off, l.EndOffset())
		}
		for _, b := range splitBatches(t, data) {
			h, _ := batch.ParseHeader(b)
			got = append(got, slices.Clone(b))
			off = h.NextOffset()
		}
	}
	if len(got) != len(want) {
		t.Fatalf("log holds %d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i].bytes) {
			t.Fatalf("batch %d (offset %d) differs from what was appended", i, want[i].base)
		}
	}
	if len(want) > 0 && l.EndOffset() != want[len(want)-1].last+1 {
		t.Fatalf("EndOffset = %d, want %d", l.EndOffset(), want[len(want)-1].last+1)
	}
}

// segmentFiles returns the paths of dir's files ending in suffix, in order.
func segmentFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	return paths
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
