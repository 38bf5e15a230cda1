package remote_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/remote"
	"github.com/spatehq/spate/tiered-storage/remote/remotetest"
)

// The specifications on segments written by a real commit log are in
// data-plane/internal/service/tiered_test.go (only code under data-plane/
// may import the commit log). These tests use segments of one batch each,
// made here, in the same formats.

// tinySegment returns the .log, .index and .timeindex contents of a segment
// of one batch of n records from offset base, with timestamp ts, and its
// layout.Segment.
func tinySegment(t testing.TB, topic string, base int64, n int, ts int64) (layout.Segment, []byte, []byte, []byte) {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	for i := range n {
		b.Append(batch.Record{Value: fmt.Appendf(nil, "record %d", base+int64(i)), Timestamp: ts})
	}
	data, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	batch.SetBaseOffset(data, base)
	seg, err := remotetest.Describe(topic, 0, base, data)
	if err != nil {
		t.Fatal(err)
	}
	// One batch at byte 0: no offset index entry (the first is written
	// IndexIntervalBytes into a segment), one time index entry.
	ti := binary.BigEndian.AppendUint64(nil, uint64(ts))
	ti = binary.BigEndian.AppendUint32(ti, 0)
	return seg, data, nil, ti
}

// putTiny uploads count tiny segments of n records each, timestamps step
// ms apart from ts0, concurrently, and returns them.
func putTiny(t testing.TB, store objstore.Store, topic string, count, n int, ts0, step int64) []layout.Segment {
	t.Helper()
	segs := make([]layout.Segment, count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range count {
		seg, log, idx, ti := tinySegment(t, topic, int64(i*n), n, ts0+int64(i)*step)
		segs[i] = seg
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			remotetest.Put(t, store, seg.Key(layout.IndexSuffix), idx)
			remotetest.Put(t, store, seg.Key(layout.TimeIndexSuffix), ti)
			remotetest.Put(t, store, seg.Key(layout.LogSuffix), log)
		})
	}
	wg.Wait()
	return segs
}

func newLocal(t testing.TB) objstore.Store {
	s, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConcurrentReadersShareFetches(t *testing.T) {
	store := remotetest.NewCounting(newLocal(t))
	segs := putTiny(t, store, "t", 20, 3, 1000, 10)
	r := remote.NewReader(store, remote.WithReadAhead(0, 1))
	defer r.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range segs {
				s := segs[(i+g)%len(segs)]
				data, next, err := r.Read(t.Context(), "t", 0, s.Base+1, 1<<20)
				if err != nil {
					t.Error(err)
					return
				}
				if h, _ := batch.ParseHeader(data); h.BaseOffset != s.Base || next != s.Last+1 {
					t.Errorf("Read(%d) = batch at %d, next %d", s.Base+1, h.BaseOffset, next)
				}
			}
		})
	}
	wg.Wait()
	if n := store.Gets(".log"); n != len(segs) {
		t.Fatalf("%d GETs of .log objects for %d segments read by 8 readers: fetches not shared", n, len(segs))
	}
	if n := store.Lists(); n != 1 {
		t.Fatalf("%d listings, want 1", n)
	}
}

func TestNewUploadsAreFoundPastTheCachedEnd(t *testing.T) {
	store := newLocal(t)
	segs := putTiny(t, store, "t", 3, 2, 1000, 10)
	r := remote.NewReader(store)
	defer r.Close()
	if _, _, err := r.Read(t.Context(), "t", 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	seg, log, idx, ti := tinySegment(t, "t", segs[2].Last+1, 2, 2000)
	remotetest.Put(t, store, seg.Key(layout.IndexSuffix), idx)
	remotetest.Put(t, store, seg.Key(layout.TimeIndexSuffix), ti)
	remotetest.Put(t, store, seg.Key(layout.LogSuffix), log)
	data, _, err := r.Read(t.Context(), "t", 0, seg.Base, 1)
	if err != nil || !bytes.Equal(data, log) {
		t.Fatalf("Read of a segment uploaded after the listing: %v", err)
	}
}

func TestUntieredPartitionsCostNothing(t *testing.T) {
	store := remotetest.NewCounting(newLocal(t))
	putTiny(t, store, "t", 3, 2, 1000, 10)
	r := remote.NewReader(store, remote.WithTiered(func(topic string, _ int32) bool { return topic != "t" }))
	defer r.Close()
	if _, ok, err := r.Start(t.Context(), "t", 0); ok || err != nil {
		t.Fatalf("Start of an untiered partition = %v %v", ok, err)
	}
	if _, _, err := r.Read(t.Context(), "t", 0, 0, 1); !errors.Is(err, remote.ErrOffsetOutOfRange) {
		t.Fatalf("Read of an untiered partition = %v", err)
	}
	if store.Lists()+store.Gets("") != 0 {
		t.Fatal("requests for an untiered partition")
	}
}

func TestClosedReader(t *testing.T) {
	r := remote.NewReader(newLocal(t))
	r.Close()
	if _, _, err := r.Read(t.Context(), "t", 0, 0, 1); !errors.Is(err, remote.ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

// gatedStore holds back the listings that continue a listing (startAfter
// set) until gate is closed.
type gatedStore struct {
	objstore.Store
	gate chan struct{}
}

func (s *gatedStore) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	if startAfter != "" {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.Store.List(ctx, prefix, startAfter, limit)
}

func TestAReadWaitsOnlyForTheListingItNeeds(t *testing.T) {
	base := newLocal(t)
	segs := putTiny(t, base, "t", 1100, 2, 1000, 10) // 3300 keys: 4 pages
	store := &gatedStore{Store: base, gate: make(chan struct{})}
	r := remote.NewReader(store)
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// The first page holds offset 0 and the segment of timestamp 1000+10*20.
	if _, _, err := r.Read(ctx, "t", 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	if off, found, err := r.OffsetForTimestamp(ctx, "t", 0, 1000+10*20); err != nil || !found || off != segs[20].Base {
		t.Fatalf("OffsetForTimestamp = %d %v %v, want %d", off, found, err, segs[20].Base)
	}
	close(store.gate)
	last := segs[len(segs)-1]
	data, next, err := r.Read(ctx, "t", 0, last.Base, 1)
	if err != nil || len(data) == 0 || next != last.Last+1 {
		t.Fatalf("Read of the last segment: %v", err)
	}
}

func TestTheListingIsRefreshedAfterItsTTL(t *testing.T) {
	store := newLocal(t)
	segs := putTiny(t, store, "t", 5, 2, 1000, 10)
	r := remote.NewReader(store, remote.WithIndexTTL(time.Millisecond))
	defer r.Close()
	if start, ok, err := r.Start(t.Context(), "t", 0); err != nil || !ok || start != 0 {
		t.Fatalf("Start = %d %v %v", start, ok, err)
	}
	// Remote retention deletes the oldest segment.
	if err := store.Delete(t.Context(), segs[0].Key(layout.LogSuffix), segs[0].Key(layout.IndexSuffix), segs[0].Key(layout.TimeIndexSuffix)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(20 * time.Millisecond)
		start, _, err := r.Start(t.Context(), "t", 0)
		if err != nil {
			t.Fatal(err)
		}
		if start == segs[1].Base {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("start still %d after the TTL", start)
		}
	}
	if _, _, err := r.Read(t.Context(), "t", 0, 0, 1); !errors.Is(err, remote.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), "below the remote start") {
		t.Fatalf("Read of a deleted offset = %v", err)
	}
}

// ReadFunc serves what Read serves, without the copy, and passes fn's error
// on.
func TestReadFuncServesWhatReadServes(t *testing.T) {
	store := newLocal(t)
	segs := putTiny(t, store, "t", 6, 5, 1000, 10)
	r := remote.NewReader(store, remote.WithChunkBytes(64)) // batches across chunks
	defer r.Close()
	for _, s := range segs {
		want, wantNext, err := r.Read(t.Context(), "t", 0, s.Base, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		next, err := r.ReadFunc(t.Context(), "t", 0, s.Base, 1<<20, func(b []byte) error {
			got = append(got, b...)
			return nil
		})
		if err != nil || next != wantNext || !bytes.Equal(got, want) {
			t.Fatalf("ReadFunc(%d) = %d bytes, next %d, %v; Read: %d bytes, next %d", s.Base, len(got), next, err, len(want), wantNext)
		}
	}
	stop := errors.New("stop")
	if _, err := r.ReadFunc(t.Context(), "t", 0, segs[0].Base, 1<<20, func([]byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("ReadFunc with a failing fn: %v", err)
	}
}

// A sequential replay drops the chunks it has read to their end: it holds
// no more than the chunks it is reading, leaving the cache to other reads,
// yet fetches each chunk once.
func TestASequentialReplayHoldsOnlyTheChunksItReads(t *testing.T) {
	store := remotetest.NewCounting(newLocal(t))
	// One segment of 40 batches of 4 records, about 300 bytes a batch.
	var log []byte
	for i := range 40 {
		b := batch.NewBuilder(batch.None)
		for j := range 4 {
			b.Append(batch.Record{Value: fmt.Appendf(nil, "record %d of batch %d, padded to some length", j, i), Timestamp: 1000})
		}
		data, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		batch.SetBaseOffset(data, int64(4*i))
		log = append(log, data...)
	}
	seg, err := remotetest.Describe("t", 0, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	remotetest.Put(t, store, seg.Key(layout.IndexSuffix), nil)
	remotetest.Put(t, store, seg.Key(layout.TimeIndexSuffix), nil)
	remotetest.Put(t, store, seg.Key(layout.LogSuffix), log)
	const chunk = 1024 // batches span chunks
	for _, copyOut := range []bool{false, true} {
		r := remote.NewReader(store, remote.WithChunkBytes(chunk), remote.WithReadAhead(1, 1))
		gets := store.Gets(".log")
		var got []byte
		for off := seg.Base; off <= seg.Last; {
			var next int64
			var err error
			if copyOut {
				var b []byte
				b, next, err = r.Read(t.Context(), "t", 0, off, 500)
				got = append(got, b...)
			} else {
				next, err = r.ReadFunc(t.Context(), "t", 0, off, 500, func(b []byte) error {
					got = append(got, b...)
					return nil
				})
			}
			if err != nil {
				t.Fatal(err)
			}
			// The chunk being read, the next one (a batch that spans
			// them) and the one read ahead.
			if c := r.CacheBytes(); c > 3*chunk {
				t.Fatalf("after the read at offset %d the cache holds %d bytes: more than the chunks in use", off, c)
			}
			off = next
		}
		r.Close()
		if !bytes.Equal(got, log) {
			t.Fatalf("the replay returned %d bytes, not the segment's %d", len(got), len(log))
		}
		chunks := (seg.Size + chunk - 1) / chunk
		if n := store.Gets(".log") - gets; int64(n) != chunks {
			t.Fatalf("the replay made %d GETs of a segment of %d chunks: each should be fetched once", n, chunks)
		}
	}
}
