package upload_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// recordingStore records the keys put, and can hold or fail Puts.
type recordingStore struct {
	objstore.Store

	mu   sync.Mutex // guards puts and hook
	puts []string
	// hook, when set, runs before each Put; an error fails the Put.
	hook func(ctx context.Context, key string) error
}

func (r *recordingStore) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	r.mu.Lock()
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, key); err != nil {
			return err
		}
	}
	if err := r.Store.Put(ctx, key, body, size); err != nil {
		return err
	}
	r.mu.Lock()
	r.puts = append(r.puts, key)
	r.mu.Unlock()
	return nil
}

func (r *recordingStore) keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

func TestSegmentsAreUploadedOnceInOrderIndexesFirst(t *testing.T) {
	store := &recordingStore{Store: localStore(t)}
	reg := prometheus.NewRegistry()
	m := newManager(t, store, func(c *upload.Config) { c.Registerer = reg; c.Concurrency = 1 })
	log := newFakeLog(t)
	now := time.Now()
	var want []upload.Segment
	for range 3 {
		want = append(want, log.roll(t, 10, now))
	}
	u, err := m.Add("orders", 2, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	for range 3 { // segments closing while it runs
		want = append(want, log.roll(t, 7, now))
	}
	st := waitUploaded(t, u, 10*time.Second)
	checkRemote(t, store, "orders", 2, want)

	puts := store.keys()
	if len(puts) != 3*len(want) {
		t.Fatalf("%d Puts for %d segments: %v", len(puts), len(want), puts)
	}
	for i, s := range want {
		seg := layout.Segment{Topic: "orders", Partition: 2, Base: s.Base, Last: s.Last, Epoch: s.Epoch, MaxTimestamp: s.MaxTimestamp}
		order := []string{seg.Key(layout.IndexSuffix), seg.Key(layout.TimeIndexSuffix), seg.Key(layout.LogSuffix)}
		if !slices.Equal(puts[3*i:3*i+3], order) {
			t.Fatalf("Puts %d to %d are %v, want %v", 3*i, 3*i+2, puts[3*i:3*i+3], order)
		}
	}
	var size int64
	for _, s := range want {
		size += s.Size
		if !u.Uploaded(s.Base, s.Last) {
			t.Fatalf("segment %d-%d not reported uploaded", s.Base, s.Last)
		}
	}
	if u.Uploaded(log.next, log.next) {
		t.Fatal("an offset past the closed segments is reported uploaded")
	}
	if st.RemoteStartOffset != 0 || st.RemoteEndOffset != log.next || st.RemoteSizeBytes != size || st.RemoteSegments != len(want) || !st.Leader {
		t.Fatalf("status %+v", st)
	}
	if got := metricValue(t, reg, "spate_tier_uploaded_segments_total"); got != float64(len(want)) {
		t.Fatalf("uploaded segments metric %v, want %d", got, len(want))
	}
	if got := metricValue(t, reg, "spate_tier_uploaded_bytes_total"); got < float64(size) {
		t.Fatalf("uploaded bytes metric %v, want at least %d", got, size)
	}
}

// metricValue returns the value of the one series of the named counter.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.Metric) == 1 {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no single series of %s", name)
	return 0
}

func TestRestartMidUploadNeitherLosesNorDuplicates(t *testing.T) {
	base := localStore(t)
	store := &recordingStore{Store: base}
	log := newFakeLog(t)
	now := time.Now()
	var want []upload.Segment
	for range 6 {
		want = append(want, log.roll(t, 10, now))
	}
	// The .log of the fourth segment never makes it: the SPU "crashes"
	// with its indexes uploaded.
	stuck := make(chan struct{})
	var once sync.Once
	fourth := layout.Segment{Topic: "t", Partition: 0, Base: want[3].Base, Last: want[3].Last, Epoch: 1, MaxTimestamp: want[3].MaxTimestamp}.Key(layout.LogSuffix)
	store.hook = func(ctx context.Context, key string) error {
		if key == fourth {
			once.Do(func() { close(stuck) })
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	m1, err := upload.New(upload.Config{Store: store, Logger: testLogger(t), MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Add("t", 0, log, upload.Policy{}, true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stuck:
	case <-time.After(10 * time.Second):
		t.Fatal("the upload of the fourth segment never started")
	}
	m1.Close()
	first := store.keys()

	// A new SPU process: learns from the listing what is uploaded.
	again := &recordingStore{Store: base}
	m2 := newManager(t, again, nil)
	u, err := m2.Add("t", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	checkRemote(t, base, "t", 0, want)
	for _, k := range again.keys() {
		if s, suffix, _ := layout.Parse(k); suffix == layout.LogSuffix && s.Base < want[3].Base {
			t.Fatalf("segment %d was uploaded again after the restart (first run put %v)", s.Base, first)
		}
	}
}

func TestRemoteRetention(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name     string
		policy   upload.Policy
		ages     []time.Duration // of the segments' newest records, oldest first
		wantKept int             // the newest segments that stay remote
	}{
		{name: "by time", policy: upload.Policy{RetentionTime: time.Hour}, ages: []time.Duration{90 * time.Minute, 70 * time.Minute, 5 * time.Minute, time.Minute}, wantKept: 2},
		{name: "by bytes", policy: upload.Policy{RetentionBytes: 2500}, ages: []time.Duration{4, 3, 2, 1}, wantKept: 2},
		{name: "no limit", ages: []time.Duration{4, 3, 2, 1}, wantKept: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := localStore(t)
			clock := &fakeClock{t: now.Add(-2 * time.Hour)}
			reg := prometheus.NewRegistry()
			m := newManager(t, store, func(c *upload.Config) { c.Now = clock.Now; c.Registerer = reg })
			log := newFakeLog(t)
			var segs []upload.Segment
			for _, age := range tt.ages {
				segs = append(segs, log.roll(t, 10, now.Add(-age))) // 1000 bytes each
			}
			u, err := m.Add("r", 0, log, upload.Policy{}, true)
			if err != nil {
				t.Fatal(err)
			}
			waitUploaded(t, u, 10*time.Second)
			checkRemote(t, store, "r", 0, segs) // nothing expired two hours ago
			clock.Set(now)
			u.SetPolicy(tt.policy)
			kept := segs[len(segs)-tt.wantKept:]
			waitFor(t, 10*time.Second, "remote retention", func() bool {
				objs, err := store.List(context.Background(), "r/", "", 0)
				return err == nil && len(objs) == 3*len(kept) && u.Status().RemoteSegments == len(kept)
			})
			checkRemote(t, store, "r", 0, kept)
			st := u.Status()
			if st.RemoteStartOffset != kept[0].Base || st.RemoteEndOffset != log.next {
				t.Fatalf("status after retention %+v", st)
			}
			// Deleted segments stay uploaded as far as local retention goes.
			if !u.Uploaded(segs[0].Base, segs[0].Last) {
				t.Fatal("a segment deleted by remote retention is no longer reported uploaded")
			}
			if got := metricValue(t, reg, "spate_tier_remote_deleted_segments_total"); len(kept) < len(segs) && got != float64(len(segs)-len(kept)) {
				t.Fatalf("deleted segments metric %v", got)
			}
		})
	}
}

type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestSegmentsPastRetentionAreNotUploaded(t *testing.T) {
	store := &recordingStore{Store: localStore(t)}
	m := newManager(t, store, nil)
	log := newFakeLog(t)
	old := log.roll(t, 10, time.Now().Add(-48*time.Hour))
	fresh := log.roll(t, 10, time.Now())
	u, err := m.Add("p", 0, log, upload.Policy{RetentionTime: 24 * time.Hour}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	checkRemote(t, store, "p", 0, []upload.Segment{fresh})
	if !u.Uploaded(old.Base, old.Last) {
		t.Fatal("an expired segment holds local retention")
	}
}

func TestFollowerDoesNotUploadButFollowsTheLeader(t *testing.T) {
	store := localStore(t)
	leaderStore := &recordingStore{Store: store}
	followerStore := &recordingStore{Store: store}
	leaderLog, followerLog := newFakeLog(t), newFakeLog(t)
	now := time.Now()
	var want []upload.Segment
	for range 3 {
		want = append(want, leaderLog.roll(t, 10, now))
		followerLog.roll(t, 10, now)
	}
	fm := newManager(t, followerStore, nil)
	fu, err := fm.Add("f", 0, followerLog, upload.Policy{}, false)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several rounds
	if puts := followerStore.keys(); len(puts) != 0 || fu.Uploaded(0, 0) {
		t.Fatalf("a follower uploaded %v", puts)
	}
	lm := newManager(t, leaderStore, nil)
	lu, err := lm.Add("f", 0, leaderLog, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, lu, 10*time.Second)
	waitFor(t, 10*time.Second, "the follower to see the uploads", func() bool { return fu.Uploaded(want[2].Base, want[2].Last) })
	if puts := followerStore.keys(); len(puts) != 0 {
		t.Fatalf("a follower uploaded %v", puts)
	}
	if st := fu.Status(); st.Leader || st.RemoteEndOffset != want[2].Last+1 {
		t.Fatalf("follower status %+v", st)
	}
	checkRemote(t, store, "f", 0, want)
}

func TestNewLeaderUploadsTheTailPastTheRemoteEnd(t *testing.T) {
	store := localStore(t)
	now := time.Now()
	old := newFakeLog(t)
	for range 2 {
		old.roll(t, 10, now) // 0-9, 10-19
	}
	m := newManager(t, store, nil)
	u, err := m.Add("l", 0, old, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	m.Remove("l", 0)

	// The new leader rolled its segments elsewhere: 0-14, 15-29.
	nl := newFakeLog(t)
	nl.roll(t, 15, now)
	nl.roll(t, 15, now)
	u, err = m.Add("l", 0, nl, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	idx := u.RemoteIndex()
	var got [][2]int64
	for _, s := range idx {
		got = append(got, [2]int64{s.Base, s.Last})
	}
	if want := [][2]int64{{0, 9}, {10, 19}, {20, 29}}; !slices.Equal(got, want) {
		t.Fatalf("remote index %v, want %v", got, want)
	}
	objs, _ := store.List(context.Background(), layout.PartitionPrefix("l", 0), "", 0)
	var logs []layout.Segment
	for _, o := range objs {
		if s, suffix, ok := layout.Parse(o.Key); ok && suffix == layout.LogSuffix {
			s.Size = o.Size
			logs = append(logs, s)
		}
	}
	if x := layout.NewIndex(logs); x.Start() != 0 || x.End() != 30 || len(x.Segments) != 3 || x.Size() != 3000 {
		t.Fatalf("the listing's index %+v", x)
	}
}

func TestFailingStoreKeepsSegmentsAndRecovers(t *testing.T) {
	store := &recordingStore{Store: localStore(t)}
	var failing sync.Mutex
	down := true
	store.hook = func(ctx context.Context, key string) error {
		failing.Lock()
		defer failing.Unlock()
		if down {
			return errors.New("injected: " + objstore.ErrUnavailable.Error())
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	m := newManager(t, store, func(c *upload.Config) { c.Registerer = reg })
	log := newFakeLog(t)
	s := log.roll(t, 10, time.Now())
	u, err := m.Add("x", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a failure in the status", func() bool { return u.Status().Err != nil })
	st := u.Status()
	if u.Uploaded(s.Base, s.Last) || st.UploadLagBytes != s.Size || !strings.Contains(st.Err.Error(), "injected") {
		t.Fatalf("status while failing: %+v", st)
	}
	if got := metricValue(t, reg, "spate_tier_upload_failures_total"); got < 1 {
		t.Fatalf("failures metric %v", got)
	}
	failing.Lock()
	down = false
	failing.Unlock()
	waitUploaded(t, u, 10*time.Second)
	checkRemote(t, store, "x", 0, []upload.Segment{s})
}

func TestBandwidthLimit(t *testing.T) {
	const bps = 256 << 10
	m := newManager(t, localStore(t), func(c *upload.Config) { c.BytesPerSecond = bps })
	log := newFakeLog(t)
	for range 4 {
		log.roll(t, 1500, time.Now()) // 150 KB each, 600 KB in all
	}
	start := time.Now()
	u, err := m.Add("bw", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 20*time.Second)
	// 600 KB at 256 KiB/s, less the initial burst: well over 1.5 s.
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("600 KB uploaded in %v at a limit of %d bytes/s", d, bps)
	}
}

func TestLocalRetentionMayDeleteWhatWasUploaded(t *testing.T) {
	store := localStore(t)
	m := newManager(t, store, nil)
	log := newFakeLog(t)
	now := time.Now()
	var want []upload.Segment
	for range 4 {
		want = append(want, log.roll(t, 10, now))
	}
	u, err := m.Add("d", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	log.deleteBefore(20) // local retention, allowed by Uploaded
	want = append(want, log.roll(t, 10, now))
	waitUploaded(t, u, 10*time.Second)
	checkRemote(t, store, "d", 0, want)
}

// remoteLogs lists the .log objects of a partition.
func remoteLogs(t *testing.T, store objstore.Store, topic string, partition int32) []layout.Segment {
	t.Helper()
	objs, err := store.List(context.Background(), layout.PartitionPrefix(topic, partition), "", 0)
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
	return logs
}

// bounds returns the base and last offsets of segs.
func bounds(segs []layout.Segment) [][2]int64 {
	var out [][2]int64
	for _, s := range segs {
		out = append(out, [2]int64{s.Base, s.Last})
	}
	return out
}

// readRemote reads the remote index from its start as a reader does (each
// segment from the offset asked for to its end, then on from the next one)
// and returns the offsets read, in order, checking each one's bytes.
func readRemote(t *testing.T, store objstore.Store, x layout.Index) []int64 {
	t.Helper()
	var got []int64
	for off := x.Start(); len(x.Segments) > 0 && off < x.End(); {
		i, ok := x.Find(off)
		if !ok || x.Segments[i].Base > off {
			t.Fatalf("no remote segment holds offset %d: %v", off, bounds(x.Segments))
		}
		s := x.Segments[i]
		rc, err := store.Get(context.Background(), s.Key(layout.LogSuffix), (off-s.Base)*recordBytes, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b); i += recordBytes {
			if o := off + int64(i/recordBytes); b[i] != byte(o) {
				t.Fatalf("segment %d-%d holds %d at offset %d", s.Base, s.Last, b[i], o)
			}
		}
		for o := off; o <= s.Last; o++ {
			got = append(got, o)
		}
		off = s.Last + 1
	}
	return got
}

func TestNewLeaderUploadsFromTheBatchStraddlingTheRemoteEnd(t *testing.T) {
	store := localStore(t)
	now := time.Now()
	old := newFakeLog(t)
	old.roll(t, 10, now) // 0-9
	old.roll(t, 10, now) // 10-19
	m := newManager(t, store, nil)
	u, err := m.Add("s", 0, old, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	m.Remove("s", 0)

	// The new leader's batches hold 3 offsets: 18-20 straddles the remote
	// end, 20.
	nl := newFakeLog(t)
	nl.batch, nl.epoch = 3, 2
	nl.roll(t, 15, now) // 0-14
	nl.roll(t, 15, now) // 15-29
	u, err = m.Add("s", 0, nl, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	st := waitUploaded(t, u, 10*time.Second)
	want := [][2]int64{{0, 9}, {10, 19}, {18, 29}}
	if got := bounds(u.RemoteIndex()); !slices.Equal(got, want) {
		t.Fatalf("remote index %v, want %v", got, want)
	}
	if st.RemoteStartOffset != 0 || st.RemoteEndOffset != 30 || st.ShadowedSegments != 0 || !u.Uploaded(15, 29) {
		t.Fatalf("status %+v", st)
	}
	x := layout.NewIndex(remoteLogs(t, store, "s", 0))
	if got := bounds(x.Segments); !slices.Equal(got, want) || len(x.Shadowed) != 0 {
		t.Fatalf("the listing's index %v (shadowed %v), want %v", got, bounds(x.Shadowed), want)
	}
	got := readRemote(t, store, x)
	for i, o := range got {
		if o != int64(i) {
			t.Fatalf("a reader reads offsets %v, want 0 to 29 once each", got)
		}
	}
	if len(got) != 30 {
		t.Fatalf("a reader reads offsets %v, want 0 to 29 once each", got)
	}
}

func TestShadowedObjectsAreDeletedAfterTheGrace(t *testing.T) {
	store := localStore(t)
	reg := prometheus.NewRegistry()
	now := time.Now()
	clock := &fakeClock{t: now}
	m := newManager(t, store, func(c *upload.Config) {
		c.Registerer = reg
		c.Now = clock.Now
		c.ShadowGrace = time.Hour
		c.FullListInterval = time.Second
	})
	l := newFakeLog(t)
	l.epoch = 2
	l.roll(t, 10, now) // 0-9
	l.roll(t, 10, now) // 10-19
	u, err := m.Add("z", 0, l, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)

	// A former leader (epoch 1), which listed before the new one
	// uploaded, uploads late: 0-4, 5-14 and 15-24.
	for _, r := range [][2]int64{{0, 4}, {5, 14}, {15, 24}} {
		putRemote(t, store, layout.Segment{Topic: "z", Partition: 0, Base: r[0], Last: r[1], Epoch: 1, MaxTimestamp: now.UnixMilli()})
	}
	// What the zombie uploaded past the remote end (20-24 of 15-24) is not
	// shadowed; 0-4 and 5-14 are.
	waitFor(t, 10*time.Second, "the leader to list the zombie's objects", func() bool {
		if u.Status().ShadowedSegments == 2 {
			return true
		}
		clock.Set(clock.Now().Add(time.Second)) // a full listing is due
		return false
	})
	want := [][2]int64{{0, 9}, {10, 19}, {15, 24}}
	if got := bounds(u.RemoteIndex()); !slices.Equal(got, want) {
		t.Fatalf("remote index %v, want %v", got, want)
	}
	time.Sleep(200 * time.Millisecond) // rounds pass within the grace
	if n := len(remoteLogs(t, store, "z", 0)); n != 5 {
		t.Fatalf("%d .log objects within the grace period, want 5", n)
	}

	clock.Set(clock.Now().Add(time.Hour))
	waitFor(t, 10*time.Second, "the shadowed objects to go", func() bool {
		objs, err := store.List(context.Background(), layout.PartitionPrefix("z", 0), "", 0)
		return err == nil && len(objs) == 9 // 3 segments' objects
	})
	st := u.Status()
	if got := bounds(layout.NewIndex(remoteLogs(t, store, "z", 0)).Segments); !slices.Equal(got, want) || st.ShadowedSegments != 0 {
		t.Fatalf("after the grace: index %v, status %+v", got, st)
	}
	if got := metricValue(t, reg, "spate_tier_shadowed_deleted_segments_total"); got != 2 {
		t.Fatalf("shadowed deletions metric %v, want 2", got)
	}
}

// listingStore records the startAfter of each List.
type listingStore struct {
	objstore.Store

	mu    sync.Mutex
	after []string
}

func (l *listingStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	l.mu.Lock()
	l.after = append(l.after, startAfter)
	l.mu.Unlock()
	return l.Store.List(ctx, prefix, startAfter, limit)
}

func (l *listingStore) lists() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.after)
}

func TestFollowerListsOnlyWhatItWaitsFor(t *testing.T) {
	store := localStore(t)
	fstore := &listingStore{Store: store}
	now := time.Now()
	leaderLog, followerLog := newFakeLog(t), newFakeLog(t)
	lm := newManager(t, store, nil)
	lu, err := lm.Add("w", 0, leaderLog, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		leaderLog.roll(t, 10, now)
		followerLog.roll(t, 10, now)
	}
	waitUploaded(t, lu, 10*time.Second)
	fm := newManager(t, fstore, nil)
	fu, err := fm.Add("w", 0, followerLog, upload.Policy{}, false)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the follower's first listing", func() bool { return fu.Uploaded(0, 19) })

	// Every closed segment of the follower is remote: rounds pass without
	// listing.
	time.Sleep(300 * time.Millisecond) // 6 poll intervals
	if got := fstore.lists(); len(got) != 1 || got[0] != "" {
		t.Fatalf("listings %q, want the first full one only", got)
	}

	// A segment closes on both: the follower lists only the keys from its
	// newest remote segment on, until it sees the upload.
	leaderLog.roll(t, 10, now)
	followerLog.roll(t, 10, now)
	waitFor(t, 10*time.Second, "the follower to see the new upload", func() bool { return fu.Uploaded(20, 29) })
	got := fstore.lists()
	from := layout.PartitionPrefix("w", 0) + "00000000000000000010"
	for _, a := range got[1:] {
		if a != from {
			t.Fatalf("listings %q: want incremental ones after %q", got, from)
		}
	}
	if st := fu.Status(); st.RemoteEndOffset != 30 || st.RemoteSegments != 3 || st.UploadLagSegments != 0 {
		t.Fatalf("follower status %+v", st)
	}
}

// putRemote puts seg's three objects, its .log with fakeLog's bytes.
func putRemote(t *testing.T, store objstore.Store, seg layout.Segment) {
	t.Helper()
	data := make([]byte, (seg.Last-seg.Base+1)*recordBytes)
	for i := range data {
		data[i] = byte(seg.Base + int64(i)/recordBytes)
	}
	for _, o := range []struct {
		suffix string
		b      []byte
	}{{layout.IndexSuffix, []byte("i")}, {layout.TimeIndexSuffix, []byte("t")}, {layout.LogSuffix, data}} {
		if err := store.Put(context.Background(), seg.Key(o.suffix), bytes.NewReader(o.b), int64(len(o.b))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoteRetentionTakesTheShadowedObjectsBelowItsCut(t *testing.T) {
	store := localStore(t)
	now := time.Now()
	clock := &fakeClock{t: now}
	m := newManager(t, store, func(c *upload.Config) {
		c.Now = clock.Now
		c.ShadowGrace = 24 * time.Hour
		c.FullListInterval = time.Minute
	})
	l := newFakeLog(t)
	l.epoch = 2
	l.roll(t, 10, now.Add(-30*time.Minute)) // 0-9
	l.roll(t, 10, now.Add(time.Hour))       // 10-19
	u, err := m.Add("r", 0, l, upload.Policy{RetentionTime: time.Hour}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 10*time.Second)
	// A former leader's late upload, shadowed by both segments.
	putRemote(t, store, layout.Segment{Topic: "r", Partition: 0, Base: 5, Last: 14, Epoch: 1, MaxTimestamp: now.Add(time.Hour).UnixMilli()})
	waitFor(t, 10*time.Second, "the leader to list it", func() bool {
		if u.Status().ShadowedSegments == 1 {
			return true
		}
		clock.Set(clock.Now().Add(time.Minute)) // a full listing is due
		return false
	})

	// 0-9 expires. Left alone, 5-14 would come back into the index for
	// offsets 5-9; it goes with 0-9, long before its grace ends.
	clock.Set(now.Add(45 * time.Minute))
	waitFor(t, 10*time.Second, "remote retention", func() bool { return u.Status().RemoteStartOffset == 10 })
	x := layout.NewIndex(remoteLogs(t, store, "r", 0))
	if got := bounds(x.Segments); !slices.Equal(got, [][2]int64{{10, 19}}) || len(x.Shadowed) != 0 {
		t.Fatalf("remote index %v, shadowed %v; want 10-19 alone", got, bounds(x.Shadowed))
	}
}
