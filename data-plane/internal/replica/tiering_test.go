package replica_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// switchStore fails every call while down is set, as an unreachable S3
// would, and counts the Puts.
type switchStore struct {
	objstore.Store
	down atomic.Bool
	puts atomic.Int64
}

func (s *switchStore) err() error {
	if s.down.Load() {
		return fmt.Errorf("injected outage: %w", objstore.ErrUnavailable)
	}
	return nil
}

func (s *switchStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.err(); err != nil {
		return err
	}
	s.puts.Add(1)
	return s.Store.Put(ctx, key, r, size)
}

func (s *switchStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, prefix, startAfter, limit)
}

// openTiered opens a replica Manager with tiering over store, with small
// segments and retention checked every 20 ms.
func openTiered(t *testing.T, dir string, store objstore.Store) *replica.Manager {
	t.Helper()
	um, err := upload.New(upload.Config{Store: store, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defaults := commitlog.DefaultConfig()
	defaults.RetentionCheckInterval = 20 * time.Millisecond
	m, err := replica.Open(dir, defaults, nil, slog.New(slog.DiscardHandler), replica.WithTiering(um))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); um.Close() })
	return m
}

func record(t *testing.T, i int) []byte {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	b.Append(batch.Record{Value: fmt.Appendf(nil, "record %d %s", i, strings.Repeat("x", 200)), Timestamp: time.Now().UnixMilli()})
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remoteIndex lists a partition's remote index, failing on overlapping or
// duplicated objects.
func remoteIndex(t *testing.T, store objstore.Store, topic string, partition int32) layout.Index {
	t.Helper()
	objs, err := store.List(context.Background(), layout.PartitionPrefix(topic, partition), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var logs []layout.Segment
	n := map[string]int{}
	for _, o := range objs {
		s, suffix, ok := layout.Parse(o.Key)
		if !ok {
			t.Fatalf("foreign object %s", o.Key)
		}
		n[suffix]++
		if suffix == layout.LogSuffix {
			s.Size = o.Size
			logs = append(logs, s)
		}
	}
	x := layout.NewIndex(logs)
	if len(x.Segments) != len(logs) || n[layout.IndexSuffix] != len(logs) || n[layout.TimeIndexSuffix] != len(logs) {
		t.Fatalf("remote objects overlap or lack indexes: %v for %d segments kept", n, len(x.Segments))
	}
	for i := 1; i < len(x.Segments); i++ {
		if x.Segments[i].Base != x.Segments[i-1].Last+1 {
			t.Fatalf("remote index has a gap: %+v then %+v", x.Segments[i-1], x.Segments[i])
		}
	}
	return x
}

func TestLocalRetentionDeletesOnlyUploadedSegments(t *testing.T) {
	lstore, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &switchStore{Store: lstore}
	store.down.Store(true)
	m := openTiered(t, t.TempDir(), store)
	spec := replica.Spec{Topic: "tiered", Partition: 0, Settings: replica.Settings{
		Tiering: true, SegmentBytes: 4096, RetentionMS: -1, LocalRetentionBytes: 8192,
	}}
	if _, err := m.Ensure(spec); err != nil {
		t.Fatal(err)
	}
	r, err := m.Get("tiered", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 { // about 75 KB: many segments past the 8 KB local limit
		if _, _, err := r.Log.Append(record(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "local retention to hold segments", func() bool { return r.Log.Info().RetentionHeldSegments > 0 })
	time.Sleep(100 * time.Millisecond)
	info := r.Log.Info()
	rep := r.TierReport()
	if info.StartOffset != 0 || rep.UploadLagBytes == 0 || !strings.Contains(rep.Error, "unavailable") || !strings.Contains(rep.Error, "holding") {
		t.Fatalf("during the outage: %+v, %+v", info, rep)
	}
	if strings.Contains(rep.Error, "injected") {
		t.Fatalf("the report carries the store's details: %q", rep.Error)
	}
	if rep.UploadLagSegments == 0 || rep.RetentionHeldBytes == 0 || rep.DiskFreeBytes < 0 || strings.Contains(rep.Error, "running short") {
		t.Fatalf("during the outage, with disk space left: %+v", rep)
	}
	// The disk fills up while the store is down: the report says so
	// before appends fail.
	restore := replica.SetDiskSpace(func(string) (int64, int64, bool) { return 300 << 20, 100 << 30, true })
	rep = r.TierReport()
	restore()
	if rep.DiskFreeBytes != 300<<20 || !strings.Contains(rep.Error, "running short: 314572800 bytes free") || !strings.Contains(rep.Error, "unavailable") {
		t.Fatalf("with 300 MiB left: %+v", rep)
	}

	store.down.Store(false)
	waitFor(t, 20*time.Second, "uploads and local retention", func() bool {
		rep := r.TierReport()
		return rep.UploadLagBytes == 0 && rep.Error == "" && r.Log.Info().Size <= 8192+4096
	})
	info = r.Log.Info()
	x := remoteIndex(t, lstore, "tiered", 0)
	if x.Start() != 0 || x.End() != info.ActiveBase || info.StartOffset == 0 {
		t.Fatalf("remote holds %d to %d, local %+v", x.Start(), x.End(), info)
	}
	if rep := r.TierReport(); rep.RemoteStartOffset != 0 || rep.RemoteSizeBytes != x.Size() {
		t.Fatalf("report %+v, remote size %d", rep, x.Size())
	}
	// The first object is the log as produced: batches from offset 0.
	rc, err := lstore.Get(context.Background(), x.Segments[0].Key(layout.LogSuffix), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	next := int64(0)
	for len(data) > 0 {
		b, h, rest, err := batch.Next(data)
		if err != nil || h.BaseOffset != next {
			t.Fatalf("remote batch at offset %d: base %d, %v", next, h.BaseOffset, err)
		}
		if _, err := batch.Validate(b); err != nil {
			t.Fatal(err)
		}
		next, data = h.NextOffset(), rest
	}
	if next != x.Segments[0].Last+1 {
		t.Fatalf("first remote segment ends at %d, its key says %d", next-1, x.Segments[0].Last)
	}
}

func TestFollowerDoesNotUploadUntilItLeads(t *testing.T) {
	lstore, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &switchStore{Store: lstore}
	m := openTiered(t, t.TempDir(), store)
	leader := int32(7)
	spec := replica.Spec{Topic: "f", Partition: 3, FollowsLeader: &leader, Settings: replica.Settings{Tiering: true, SegmentBytes: 4096}}
	if _, err := m.Ensure(spec); err != nil {
		t.Fatal(err)
	}
	r, _ := m.Get("f", 3)
	for i := range 100 { // what replication writes
		b := record(t, i)
		batch.SetBaseOffset(b, int64(i))
		if _, err := r.Log.AppendReplicated(b); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.Log.ClosedSegments()) < 3 {
		t.Fatal("too few closed segments")
	}
	time.Sleep(300 * time.Millisecond)
	if n := store.puts.Load(); n != 0 {
		t.Fatalf("a follower made %d Puts", n)
	}
	r.SetLeader()
	waitFor(t, 10*time.Second, "the new leader's uploads", func() bool {
		rep := r.TierReport()
		return rep.UploadLagBytes == 0 && rep.RemoteStartOffset == 0
	})
	if x := remoteIndex(t, lstore, "f", 3); x.End() != r.Log.Info().ActiveBase {
		t.Fatalf("remote ends at %d, the active segment starts at %d", x.End(), r.Log.Info().ActiveBase)
	}
}

func TestTieringWithoutAnObjectStoreKeepsLocalRetentionAndSaysSo(t *testing.T) {
	m := open(t, t.TempDir())
	if _, err := m.Ensure(replica.Spec{Topic: "n", Partition: 0, Settings: replica.Settings{Tiering: true}}); err != nil {
		t.Fatal(err)
	}
	r, _ := m.Get("n", 0)
	rep := r.TierReport()
	if !rep.Tiering || rep.RemoteStartOffset != -1 || rep.Error != replica.ErrNoObjectStore.Error() {
		t.Fatalf("report %+v", rep)
	}
	if r.Log.Config().Tiering {
		t.Fatal("tiering is on in the log without an object store: local retention would hold everything")
	}
}

// TestS3StoppedUnderLoad produces to a tiered replica while the S3 server
// is stopped and started again: produce never fails, local retention deletes
// nothing that is not uploaded, uploads resume by themselves, and the remote
// index ends up holding every closed segment exactly once.
func TestS3StoppedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops an S3 server: not in -short")
	}
	srv := s3test.Start(t)
	cfg := srv.Config()
	cfg.MaxAttempts = 2
	store, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := openTiered(t, t.TempDir(), store)
	spec := replica.Spec{Topic: "load", Partition: 0, Settings: replica.Settings{
		Tiering: true, SegmentBytes: 16 << 10, RetentionMS: -1, LocalRetentionBytes: 64 << 10,
	}}
	if _, err := m.Ensure(spec); err != nil {
		t.Fatal(err)
	}
	r, _ := m.Get("load", 0)
	produced := 0
	produce := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); produced++ {
			if _, _, err := r.Log.Append(record(t, produced)); err != nil {
				t.Fatalf("produce %d: %v", produced, err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	produce(500 * time.Millisecond)
	srv.Stop()
	startBefore := r.Log.StartOffset()
	produce(1500 * time.Millisecond)
	rep := r.TierReport()
	info := r.Log.Info()
	if rep.Error == "" || rep.UploadLagBytes == 0 || info.RetentionHeldSegments == 0 {
		t.Fatalf("during the outage: report %+v, log %+v", rep, info)
	}
	if x := max(rep.RemoteEndOffset, 0); info.StartOffset > x {
		t.Fatalf("local retention deleted offsets %d to %d, which are not remote (start was %d)", x, info.StartOffset-1, startBefore)
	}
	t.Logf("during the outage: %s; %d bytes waiting", rep.Error, rep.UploadLagBytes)
	srv.Restart(t)
	produce(500 * time.Millisecond)
	waitFor(t, 60*time.Second, "uploads to catch up", func() bool {
		rep := r.TierReport()
		return rep.UploadLagBytes == 0 && rep.Error == ""
	})
	x := remoteIndex(t, store, "load", 0)
	info = r.Log.Info()
	if x.Start() != 0 || x.End() != info.ActiveBase || info.StartOffset > x.End() || info.EndOffset != int64(produced) {
		t.Fatalf("remote %d to %d; local %+v; produced %d", x.Start(), x.End(), info, produced)
	}
}

// TestNewLeaderUploadsFromTheBatchThatStraddlesTheRemoteEnd: the remote
// tier ends inside one of the new leader's batches (an old leader's upload
// ends at offset 4; the batches hold offsets 0-2, 3-5, ...): the leader
// uploads from the batch that holds the remote end, 3, so that the remote
// index has every offset and the object holds whole batches.
func TestNewLeaderUploadsFromTheBatchThatStraddlesTheRemoteEnd(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old := layout.Segment{Topic: "s", Partition: 0, Base: 0, Last: 4, Epoch: 0, MaxTimestamp: time.Now().UnixMilli()}
	for _, suf := range []string{layout.IndexSuffix, layout.TimeIndexSuffix, layout.LogSuffix} {
		if err := store.Put(context.Background(), old.Key(suf), strings.NewReader("old"), 3); err != nil {
			t.Fatal(err)
		}
	}
	m := openTiered(t, t.TempDir(), store)
	leader := int32(7)
	spec := replica.Spec{Topic: "s", Partition: 0, FollowsLeader: &leader, Settings: replica.Settings{Tiering: true, SegmentBytes: 4096}}
	if _, err := m.Ensure(spec); err != nil {
		t.Fatal(err)
	}
	r, _ := m.Get("s", 0)
	for i := 0; i < 90; i += 3 { // what replication writes: 3 records a batch
		b := batch.NewBuilder(batch.None)
		for j := range 3 {
			b.Append(batch.Record{Value: fmt.Appendf(nil, "record %d %s", i+j, strings.Repeat("x", 200)), Timestamp: time.Now().UnixMilli()})
		}
		data, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		batch.SetBaseOffset(data, int64(i))
		if _, err := r.Log.AppendReplicated(data); err != nil {
			t.Fatal(err)
		}
	}
	r.SetLeader()
	active := r.Log.Info().ActiveBase
	waitFor(t, 10*time.Second, "the new leader's uploads", func() bool {
		rep := r.TierReport()
		return rep.UploadLagBytes == 0 && rep.RemoteEndOffset == active
	})
	objs, err := store.List(context.Background(), layout.PartitionPrefix("s", 0), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var logs []layout.Segment
	for _, o := range objs {
		if s, suffix, ok := layout.Parse(o.Key); ok && suffix == layout.LogSuffix {
			s.Size = o.Size
			logs = append(logs, s)
		}
	}
	x := layout.NewIndex(logs)
	if len(x.Shadowed) != 0 || len(x.Segments) < 3 || x.Segments[1].Base != 3 || x.End() != active {
		t.Fatalf("remote index %+v (shadowed %+v), want 0-4, then from 3 on to %d", x.Segments, x.Shadowed, active)
	}
	for i := 2; i < len(x.Segments); i++ {
		if x.Segments[i].Base != x.Segments[i-1].Last+1 {
			t.Fatalf("remote index has a gap or overlap: %+v then %+v", x.Segments[i-1], x.Segments[i])
		}
	}
	// The tail from 3 holds whole batches, the first one at byte 0.
	rc, err := store.Get(context.Background(), x.Segments[1].Key(layout.LogSuffix), 0, batch.HeaderSize)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(rc)
	rc.Close()
	if h, err := batch.ParseHeader(hb); err != nil || h.BaseOffset != 3 {
		t.Fatalf("the tail begins with %+v, %v; want the batch of offset 3", h, err)
	}
}
