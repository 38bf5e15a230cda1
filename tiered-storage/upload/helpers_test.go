package upload_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// recordBytes is the size of one offset in fakeLog's segments.
const recordBytes = 100

// fakeLog is a partition log of real segment files in which every offset
// takes recordBytes bytes, and byte i of a segment is its offset
// base+i/recordBytes. Its batches hold one offset (any offset is a batch
// boundary) unless batch is set.
type fakeLog struct {
	dir string
	// batch, when above 1, is the number of offsets of each batch, from
	// each segment's base.
	batch int64
	// epoch is the epoch of the segments rolled (1 when zero).
	epoch int32

	mu     sync.Mutex // guards the fields below
	segs   []upload.Segment
	next   int64
	rolled chan struct{}
}

func newFakeLog(t testing.TB) *fakeLog {
	return &fakeLog{dir: t.TempDir(), rolled: make(chan struct{})}
}

// roll appends a closed segment of n offsets whose newest record is at ts.
func (f *fakeLog) roll(t testing.TB, n int64, ts time.Time) upload.Segment {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := upload.Segment{Base: f.next, Last: f.next + n - 1, Epoch: max(f.epoch, 1), MaxTimestamp: ts.UnixMilli(), Size: n * recordBytes}
	data := make([]byte, s.Size)
	for i := range data {
		data[i] = byte(s.Base + int64(i)/recordBytes)
	}
	if err := os.WriteFile(f.path(s.Base), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f.segs = append(f.segs, s)
	f.next += n
	close(f.rolled)
	f.rolled = make(chan struct{})
	return s
}

// deleteBefore drops the segments below offset, as local retention does.
func (f *fakeLog) deleteBefore(offset int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.segs = slices.DeleteFunc(f.segs, func(s upload.Segment) bool {
		if s.Last < offset {
			os.Remove(f.path(s.Base))
			return true
		}
		return false
	})
}

func (f *fakeLog) path(base int64) string {
	return filepath.Join(f.dir, fmt.Sprintf("%020d.log", base))
}

func (f *fakeLog) Segments() []upload.Segment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.segs)
}

func (f *fakeLog) Rolled() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rolled
}

func (f *fakeLog) Open(base, from int64) (*upload.SegmentData, error) {
	f.mu.Lock()
	i := slices.IndexFunc(f.segs, func(s upload.Segment) bool { return s.Base == base })
	var s upload.Segment
	if i >= 0 {
		s = f.segs[i]
	}
	f.mu.Unlock()
	if i < 0 {
		return nil, fmt.Errorf("segment %d: %w", base, upload.ErrSegmentGone)
	}
	file, err := os.Open(f.path(base))
	if err != nil {
		return nil, err
	}
	if f.batch > 1 {
		from = base + (from-base)/f.batch*f.batch // the batch holding from
	}
	skip := (from - base) * recordBytes
	d := &upload.SegmentData{Segment: s, Log: io.NewSectionReader(file, skip, s.Size-skip), Closer: file}
	d.Base, d.Size = from, s.Size-skip
	d.Index = fmt.Appendf(nil, "index of %d-%d", from, s.Last)
	d.TimeIndex = fmt.Appendf(nil, "timeindex of %d-%d", from, s.Last)
	return d, nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func localStore(t testing.TB) *local.Store {
	t.Helper()
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newManager returns a Manager over store with fast retries, closed when
// the test ends.
func newManager(t testing.TB, store objstore.Store, mod func(*upload.Config)) *upload.Manager {
	t.Helper()
	cfg := upload.Config{
		Store:        store,
		MinBackoff:   20 * time.Millisecond,
		MaxBackoff:   200 * time.Millisecond,
		PollInterval: 50 * time.Millisecond,
		Logger:       testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := upload.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitUploaded waits until the uploader's lag is zero and it has no error.
func waitUploaded(t testing.TB, u *upload.Uploader, d time.Duration) upload.Status {
	t.Helper()
	var st upload.Status
	waitFor(t, d, "upload lag 0", func() bool {
		st = u.Status()
		return st.Listed && st.UploadLagSegments == 0 && st.Err == nil
	})
	return st
}

// checkRemote lists the partition's objects and checks that they are
// exactly the three objects of each of want, once, with the right contents.
func checkRemote(t testing.TB, store objstore.Store, topic string, partition int32, want []upload.Segment) {
	t.Helper()
	ctx := context.Background()
	objs, err := store.List(ctx, layout.PartitionPrefix(topic, partition), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Key)
	}
	var keys []string
	for _, s := range want {
		seg := layout.Segment{Topic: topic, Partition: partition, Base: s.Base, Last: s.Last, Epoch: s.Epoch, MaxTimestamp: s.MaxTimestamp}
		keys = append(keys, seg.Key(layout.IndexSuffix), seg.Key(layout.LogSuffix), seg.Key(layout.TimeIndexSuffix))
	}
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("remote objects:\n%v\nwant exactly:\n%v", got, keys)
	}
	for _, s := range want {
		seg := layout.Segment{Topic: topic, Partition: partition, Base: s.Base, Last: s.Last, Epoch: s.Epoch, MaxTimestamp: s.MaxTimestamp}
		rc, err := store.Get(ctx, seg.Key(layout.LogSuffix), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || int64(len(b)) != s.Size || b[0] != byte(s.Base) || b[len(b)-1] != byte(s.Last) {
			t.Fatalf("segment %d-%d: %d bytes (want %d), err %v", s.Base, s.Last, len(b), s.Size, err)
		}
	}
}
