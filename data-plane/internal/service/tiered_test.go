package service_test

// The specifications of the remote tier's read half, on real objects: a real
// commit log with tiny segments writes the segments, whose closed files are
// uploaded under layout keys (as package upload does), to a local folder
// store and to a real S3 server (versitygw). They live here because only
// code under data-plane/ may import the commit log.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/data-plane/internal/service"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
	"github.com/spatehq/spate/tiered-storage/remote"
	"github.com/spatehq/spate/tiered-storage/remote/remotetest"
)

const (
	testTopic = "events"
	tsBase    = int64(1_700_000_000_000)
)

// logConfig is a commit log configuration with tiny segments, dense
// indexes and no background retention.
func logConfig() commitlog.Config {
	cfg := commitlog.DefaultConfig()
	cfg.RetentionTime = 0
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 512
	cfg.RetentionCheckInterval = 24 * time.Hour
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// stored is a batch as the log stored it.
type stored struct {
	base, last int64
	bytes      []byte
}

// makeBatch builds a batch of n records whose values name the batch and
// record, with timestamps ts, ts+1, ...
func makeBatch(t testing.TB, id, n, valueSize int, ts int64) []byte {
	t.Helper()
	b := batch.NewBuilder(batch.None)
	for i := range n {
		v := fmt.Appendf(nil, "batch %d record %d;", id, i)
		for len(v) < valueSize {
			v = append(v, byte('a'+(id+len(v))%26))
		}
		b.Append(batch.Record{Value: v, Timestamp: ts + int64(i)})
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fill appends count batches of records records each to l, timestamps one
// millisecond apart from ts, and returns them as stored.
func fill(t testing.TB, l *commitlog.Log, first, count, records, valueSize int, ts int64) []stored {
	t.Helper()
	var out []stored
	for i := range count {
		id := first + i
		b := makeBatch(t, id, records, valueSize, ts+int64(id*records))
		base, last, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, stored{base, last, slices.Clone(b)})
	}
	return out
}

// fixture is a commit log whose closed segments are in a store.
type fixture struct {
	log     *commitlog.Log
	batches []stored
	segs    []layout.Segment // uploaded
	store   objstore.Store
}

// end is one past the last offset uploaded.
func (f *fixture) end() int64 { return f.segs[len(f.segs)-1].Last + 1 }

// remoteBytes is the concatenation of the uploaded batches.
func (f *fixture) remoteBytes() []byte {
	var out []byte
	for _, b := range f.batches {
		if b.last < f.end() {
			out = append(out, b.bytes...)
		}
	}
	return out
}

// newFixture writes 60 batches of 5 records of about 100 bytes (about 12
// segments of 4 KiB) and uploads the closed segments to store.
func newFixture(t testing.TB, store objstore.Store) *fixture {
	t.Helper()
	l, err := commitlog.Open(t.TempDir(), logConfig(), quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fixture{log: l, store: store}
	f.batches = fill(t, l, 0, 60, 5, 100, tsBase)
	f.segs = remotetest.UploadClosed(t, store, testTopic, 0, l.Dir())
	if len(f.segs) < 8 {
		t.Fatalf("only %d closed segments", len(f.segs))
	}
	return f
}

// stores runs fn against a local folder store and against versitygw.
func stores(t *testing.T, fn func(t *testing.T, store objstore.Store, srv *s3test.Server)) {
	t.Run("local", func(t *testing.T) {
		s, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, nil)
	})
	t.Run("s3", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts an S3 server; skipped with -short")
		}
		srv := s3test.Start(t)
		s, err := s3.New(t.Context(), srv.Config())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, srv)
	})
}

func newReader(t testing.TB, store objstore.Store, opts ...remote.Option) *remote.Reader {
	r := remote.NewReader(store, opts...)
	t.Cleanup(func() { r.Close() })
	return r
}

// replay reads the partition from offset to the remote end with reads of
// maxBytes, checking each result, and returns the bytes read.
func replay(t testing.TB, r *remote.Reader, offset, end int64, maxBytes int, check func()) []byte {
	t.Helper()
	var out []byte
	for offset < end {
		data, next, err := r.Read(context.Background(), testTopic, 0, offset, maxBytes)
		if err != nil {
			t.Fatalf("Read(%d): %v", offset, err)
		}
		if len(data) == 0 || next <= offset {
			t.Fatalf("Read(%d) = %d bytes, next %d", offset, len(data), next)
		}
		h, _ := batch.ParseHeader(data)
		if h.BaseOffset > offset || h.NextOffset() <= offset {
			t.Fatalf("Read(%d) starts with the batch of offsets %d to %d", offset, h.BaseOffset, h.LastOffset())
		}
		out = append(out, data...)
		offset = next
		if check != nil {
			check()
		}
	}
	return out
}

func TestRemoteReaderReadsWhatTheLogWrote(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store, _ *s3test.Server) {
		f := newFixture(t, store)
		for _, chunk := range []int64{remote.DefaultChunkBytes, 1000} { // chunks larger than segments, and batches across chunks
			t.Run(fmt.Sprintf("chunks of %d", chunk), func(t *testing.T) {
				r := newReader(t, store, remote.WithChunkBytes(chunk))
				t.Run("across segment boundaries", func(t *testing.T) {
					for _, maxBytes := range []int{1, 700, 64 << 10} {
						if got := replay(t, r, 0, f.end(), maxBytes, nil); !bytes.Equal(got, f.remoteBytes()) {
							t.Fatalf("maxBytes %d: replay differs from the log's batches (%d bytes, want %d)", maxBytes, len(got), len(f.remoteBytes()))
						}
					}
					start, ok, err := r.Start(t.Context(), testTopic, 0)
					if err != nil || !ok || start != 0 {
						t.Fatalf("Start = %d %v %v", start, ok, err)
					}
				})
				t.Run("from the middle of a batch", func(t *testing.T) {
					for i := 7; i < 40; i += 3 {
						b := f.batches[i]
						data, next, err := r.Read(t.Context(), testTopic, 0, b.base+2, 1)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(data, b.bytes) || next != b.last+1 {
							t.Fatalf("Read(%d) did not return the batch of offsets %d to %d whole", b.base+2, b.base, b.last)
						}
					}
				})
				t.Run("past the remote end", func(t *testing.T) {
					for _, off := range []int64{f.end(), f.end() + 1, f.log.EndOffset() + 100} {
						_, _, err := r.Read(t.Context(), testTopic, 0, off, 1)
						if !errors.Is(err, remote.ErrOffsetOutOfRange) || !strings.Contains(err.Error(), fmt.Sprintf("holds 0 to %d", f.end()-1)) {
							t.Fatalf("Read(%d) = %v, want ErrOffsetOutOfRange naming the remote range", off, err)
						}
					}
					_, _, err := r.Read(t.Context(), "other", 0, 0, 1)
					if !errors.Is(err, remote.ErrOffsetOutOfRange) {
						t.Fatalf("Read of a partition with nothing remote = %v", err)
					}
				})
				t.Run("by timestamp", func(t *testing.T) {
					// The commit log is the oracle.
					for _, ts := range []int64{0, tsBase, tsBase + 1, tsBase + 77, tsBase + 150, tsBase + int64(f.end()) - 1, tsBase + int64(f.end()), tsBase + 1e9} {
						want, err := f.log.OffsetForTimestamp(ts)
						if err != nil {
							t.Fatal(err)
						}
						got, found, err := r.OffsetForTimestamp(t.Context(), testTopic, 0, ts)
						if err != nil {
							t.Fatal(err)
						}
						if want >= f.end() {
							if found || got != f.end() {
								t.Errorf("OffsetForTimestamp(%d) = %d %v, want not found, remote end %d", ts, got, found, f.end())
							}
						} else if !found || got != want {
							t.Errorf("OffsetForTimestamp(%d) = %d %v, want %d", ts, got, found, want)
						}
					}
				})
			})
		}
	})
}

func TestRemoteReaderReadsAhead(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store, _ *s3test.Server) {
		f := newFixture(t, store)
		const chunk = 1024
		misses := func(readAhead int) (float64, int) {
			counting := remotetest.NewCounting(store)
			reg := prometheus.NewRegistry()
			r := newReader(t, counting, remote.WithChunkBytes(chunk), remote.WithReadAhead(readAhead, 8), remote.WithRegisterer(reg))
			// A consumer that takes a moment to process each response.
			got := replay(t, r, 0, f.end(), 600, func() { time.Sleep(5 * time.Millisecond) })
			if !bytes.Equal(got, f.remoteBytes()) {
				t.Fatal("replay differs from the log's batches")
			}
			r.Close() // waits for the read-aheads
			mf, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, fam := range mf {
				if fam.GetName() == "spate_remote_cache_misses_total" {
					return fam.GetMetric()[0].GetCounter().GetValue(), counting.Gets(".log")
				}
			}
			t.Fatal("no spate_remote_cache_misses_total")
			return 0, 0
		}
		chunks := 0
		for _, s := range f.segs {
			chunks += int((s.Size + chunk - 1) / chunk)
		}
		cold, coldGets := misses(0)
		warm, warmGets := misses(2)
		t.Logf("%d chunks in %d segments: without read-ahead %v misses, %d GETs of .log; with read-ahead %v misses, %d GETs", chunks, len(f.segs), cold, coldGets, warm, warmGets)
		// A sequential reader needs no .index: each read goes on where
		// the previous one ended.
		if coldGets != chunks || cold != float64(chunks) {
			t.Errorf("without read-ahead: %d GETs and %v misses, want one GET and one miss per chunk (%d)", coldGets, cold, chunks)
		}
		if warm != 1 {
			t.Errorf("with read-ahead: %v cache misses, want 1 (the first chunk): the rest should have been fetched ahead", warm)
		}
		if warmGets > chunks+2 { // read-ahead may fetch up to 2 chunks that nobody read... but there are none past the end
			t.Errorf("with read-ahead: %d GETs of .log objects for %d chunks: chunks fetched twice", warmGets, chunks)
		}
	})
}

func TestRemoteReaderCacheIsBounded(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store, _ *s3test.Server) {
		f := newFixture(t, store)
		const limit = 3000
		r := newReader(t, store, remote.WithChunkBytes(1024), remote.WithCacheBytes(limit))
		peak := int64(0)
		got := replay(t, r, 0, f.end(), 500, func() {
			peak = max(peak, r.CacheBytes())
			if n := r.CacheBytes(); n > limit {
				t.Fatalf("cache holds %d bytes, limit %d", n, limit)
			}
		})
		if !bytes.Equal(got, f.remoteBytes()) {
			t.Fatal("replay differs from the log's batches")
		}
		if peak < limit/2 {
			t.Fatalf("cache peaked at %d bytes: is it used?", peak)
		}
	})
}

// segmentErrorOf checks that err is a *remote.SegmentError for seg that
// wraps want and whose message names the offset range.
func segmentErrorOf(t *testing.T, err error, want error, base, last int64) {
	t.Helper()
	var se *remote.SegmentError
	if !errors.As(err, &se) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want a SegmentError wrapping %v", err, want)
	}
	if se.Base != base || se.Last != last || se.Topic != testTopic || se.Partition != 0 {
		t.Fatalf("error names %s/%d offsets %d to %d, want %d to %d", se.Topic, se.Partition, se.Base, se.Last, base, last)
	}
	if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("offsets %d to %d", base, last)) || !strings.Contains(msg, testTopic) {
		t.Fatalf("message %q does not name the topic and offsets", msg)
	}
	if remote.IsRetriable(err) {
		t.Fatalf("%v is retriable", err)
	}
}

func TestRemoteReaderRefusesMissingAndCorruptSegments(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store, _ *s3test.Server) {
		t.Run("missing .log", func(t *testing.T) {
			f := newFixture(t, store)
			victim := f.segs[3]
			listed := newReader(t, store) // has listed before the deletion
			if _, _, err := listed.Read(t.Context(), testTopic, 0, 0, 1); err != nil {
				t.Fatal(err)
			}
			if err := store.Delete(t.Context(), victim.Key(layout.LogSuffix)); err != nil {
				t.Fatal(err)
			}
			for name, r := range map[string]*remote.Reader{"listed before": listed, "listed after": newReader(t, store)} {
				t.Run(name, func(t *testing.T) {
					// Reading up to it works; at it, the read fails; never
					// is it skipped.
					replay(t, r, 0, victim.Base, 1<<20, nil)
					for _, off := range []int64{victim.Base, victim.Base + 3, victim.Last} {
						_, _, err := r.Read(t.Context(), testTopic, 0, off, 1<<20)
						segmentErrorOf(t, err, remote.ErrMissing, victim.Base, victim.Last)
					}
					replay(t, r, victim.Last+1, f.end(), 1<<20, nil)
				})
			}
		})
		t.Run("damaged or missing .index is not fatal", func(t *testing.T) {
			f := newFixture(t, store)
			// An index pointing into the middle of a batch, and none.
			remotetest.Put(t, store, f.segs[1].Key(layout.IndexSuffix), []byte{0, 0, 0, 3, 0, 0, 0, 9})
			if err := store.Delete(t.Context(), f.segs[2].Key(layout.IndexSuffix)); err != nil {
				t.Fatal(err)
			}
			r := newReader(t, store)
			for _, b := range f.batches {
				if b.last >= f.end() {
					break
				}
				data, _, err := r.Read(t.Context(), testTopic, 0, b.last, 1)
				if err != nil || !bytes.Equal(data, b.bytes) {
					t.Fatalf("Read(%d) = %v, want the batch of offsets %d to %d", b.last, err, b.base, b.last)
				}
			}
		})
		t.Run("corrupt .log", func(t *testing.T) {
			f := newFixture(t, store)
			victim := f.segs[2]
			key := victim.Key(layout.LogSuffix)
			data := readAll(t, store, key)
			// Flip a byte in the records of the third batch.
			pos := 0
			for range 2 {
				h, _ := batch.ParseHeader(data[pos:])
				pos += h.Size()
			}
			h, _ := batch.ParseHeader(data[pos:])
			data[pos+batch.HeaderSize+10] ^= 0x40
			remotetest.Put(t, store, key, data)
			r := newReader(t, store)
			replay(t, r, 0, h.BaseOffset, 1, nil) // the batches before it are fine
			_, _, err := r.Read(t.Context(), testTopic, 0, victim.Base, 1<<20)
			segmentErrorOf(t, err, remote.ErrCorrupt, victim.Base, victim.Last)
			if !errors.Is(err, batch.ErrBadCRC) {
				t.Fatalf("err = %v, want a CRC mismatch", err)
			}
			// A replay stops there, batch by batch too.
			_, _, err = r.Read(t.Context(), testTopic, 0, h.BaseOffset, 1)
			segmentErrorOf(t, err, remote.ErrCorrupt, victim.Base, victim.Last)
		})
	})
}

func readAll(t testing.TB, store objstore.Store, key string) []byte {
	t.Helper()
	rc, err := store.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRemoteReaderStoreStoppedIsRetriable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server; skipped with -short")
	}
	srv := s3test.Start(t)
	store, err := s3.New(t.Context(), srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, store)
	listed := newReader(t, store, remote.WithReadAhead(0, 1))
	if _, _, err := listed.Read(t.Context(), testTopic, 0, 0, 1); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for name, r := range map[string]*remote.Reader{"listed": listed, "cold": newReader(t, store)} {
		_, _, err := r.Read(t.Context(), testTopic, 0, f.segs[4].Base, 1)
		if !errors.Is(err, objstore.ErrUnavailable) || !remote.IsRetriable(err) {
			t.Fatalf("%s reader with the store stopped: %v, want a retriable ErrUnavailable", name, err)
		}
	}
	srv.Restart(t)
	for name, r := range map[string]*remote.Reader{"listed": listed, "cold": newReader(t, store)} {
		if got := replay(t, r, 0, f.end(), 1<<20, nil); !bytes.Equal(got, f.remoteBytes()) {
			t.Fatalf("%s reader after the restart: replay differs", name)
		}
	}
}

// consumeServer serves the Consume service over replicas and returns a
// client of it.
func consumeServer(t *testing.T, replicas *replica.Manager, rr service.RemoteReader) dataplanev1connect.ConsumeServiceClient {
	t.Helper()
	h := &service.Consume{Replicas: replicas, Metrics: service.NewMetrics(prometheus.NewRegistry()), Logger: quietLogger(), Remote: rr}
	mux := http.NewServeMux()
	mux.Handle(dataplanev1connect.NewConsumeServiceHandler(h))
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = smallBufferListener{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(smallSocketBuffer)
		}
		return c, err
	}
	return dataplanev1connect.NewConsumeServiceClient(&http.Client{Transport: tr}, srv.URL)
}

// smallSocketBuffer caps the test connections' kernel buffers, which
// autotuning on loopback would otherwise grow to tens of MB: a slow
// consumer then makes the stream's sender wait sooner, as it does across a
// real network.
const smallSocketBuffer = 64 << 10

// smallBufferListener accepts connections with small kernel send buffers.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(smallSocketBuffer)
	}
	return c, err
}

// tieredReplica is a replica whose log's local start offset is above 0,
// with the segments below it in store.
func tieredReplica(t *testing.T, store objstore.Store) (*replica.Manager, *replica.Replica, []stored) {
	t.Helper()
	m, err := replica.Open(t.TempDir(), logConfig(), nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if _, err := m.Ensure(replica.Spec{Topic: testTopic, Partition: 0, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Get(testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	batches := fill(t, r.Log, 0, 60, 5, 100, tsBase)
	segs := remotetest.UploadClosed(t, store, testTopic, 0, r.Log.Dir())
	// Local retention by size: keep about 3 segments.
	cfg := r.Log.Config()
	cfg.RetentionBytes = 3 * 4096
	if err := r.Log.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Log.EnforceRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	if start := r.Log.StartOffset(); start < 100 || start > segs[len(segs)-1].Last+1 {
		t.Fatalf("local start %d: want it well above 0, at most the remote end %d", start, segs[len(segs)-1].Last+1)
	}
	return m, r, batches
}

// receive reads responses until want records (from offset from on) have
// arrived, checks they are the stored records in order, and returns the
// first response.
func receive(t *testing.T, stream *connect.ServerStreamForClient[dataplanev1.ConsumeResponse], from int64, want []stored) *dataplanev1.ConsumeResponse {
	t.Helper()
	c := &recordStream{stream: stream, next: from}
	c.expect(t, want)
	return c.first
}

// recordStream reads the records of a consume stream.
type recordStream struct {
	stream  *connect.ServerStreamForClient[dataplanev1.ConsumeResponse]
	first   *dataplanev1.ConsumeResponse
	pending []batch.Record // received, not yet checked
	next    int64          // the offset of the next record expected
}

// expect checks that the next records are those of want, from r.next on.
func (r *recordStream) expect(t *testing.T, want []stored) {
	t.Helper()
	var wantRecs []batch.Record
	for _, b := range want {
		recs, err := batch.DecodeAll(b.bytes, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			recs[i].Offset = b.base + int64(i)
		}
		wantRecs = append(wantRecs, recs...)
	}
	for len(wantRecs) > 0 && wantRecs[0].Offset < r.next {
		wantRecs = wantRecs[1:]
	}
	for len(wantRecs) > 0 {
		for len(r.pending) == 0 {
			if !r.stream.Receive() {
				t.Fatalf("stream ended at offset %d: %v", r.next, r.stream.Err())
			}
			msg := r.stream.Msg()
			if r.first == nil {
				r.first = msg
			}
			recs, err := batch.DecodeAll(msg.Batches, nil)
			if err != nil {
				t.Fatalf("response at %d: %v", r.next, err)
			}
			for _, rec := range recs {
				if rec.Offset >= r.next { // the first batch may begin before the offset asked for
					r.pending = append(r.pending, rec)
				}
			}
		}
		rec, w := r.pending[0], wantRecs[0]
		if rec.Offset != w.Offset || !bytes.Equal(rec.Value, w.Value) || rec.Timestamp != w.Timestamp {
			t.Fatalf("got record %d %q, want %d %q", rec.Offset, rec.Value, w.Offset, w.Value)
		}
		r.pending, wantRecs = r.pending[1:], wantRecs[1:]
		r.next = rec.Offset + 1
	}
}

func TestConsumeReadsTheRemoteTierBelowTheLocalStart(t *testing.T) {
	stores(t, func(t *testing.T, store objstore.Store, _ *s3test.Server) {
		m, r, batches := tieredReplica(t, store)
		localStart := r.Log.StartOffset()
		reader := newReader(t, store, remote.WithChunkBytes(1500))
		client := consumeServer(t, m, reader)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()

		t.Run("from the beginning, then new records", func(t *testing.T) {
			stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
				Topic: testTopic, MaxBytes: 700,
				Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Beginning{Beginning: true}}}},
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			first := receive(t, stream, 0, batches)
			if first.NextOffset != 0 || first.StartOffset != 0 {
				t.Fatalf("first response: next %d, start %d; want 0 and 0 (the remote start)", first.NextOffset, first.StartOffset)
			}
			more := fill(t, r.Log, 60, 3, 5, 100, tsBase)
			receive(t, stream, more[0].base, more)
			batches = append(batches, more...)
		})
		t.Run("from an absolute offset in the remote tier", func(t *testing.T) {
			for _, off := range []int64{1, 57, localStart - 1, localStart, localStart + 1} {
				end := localStart + 20
				stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
					Topic: testTopic,
					Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, EndOffset: &end,
						Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: off}}}},
				}))
				if err != nil {
					t.Fatal(err)
				}
				var upTo []stored
				for _, b := range batches {
					if b.base < end {
						upTo = append(upTo, b)
					}
				}
				receive(t, stream, off, upTo)
				stream.Close()
			}
		})
		t.Run("by timestamp, across both tiers", func(t *testing.T) {
			for _, off := range []int64{0, 3, 101, localStart - 2, localStart, localStart + 7} {
				ts := tsBase + off // record n has timestamp tsBase + n
				want, err := r.Log.OffsetForTimestamp(ts)
				if err != nil {
					t.Fatal(err)
				}
				if off < localStart {
					// The batch holding off.
					for _, b := range batches {
						if b.base <= off && off <= b.last {
							want = b.base
						}
					}
				}
				stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
					Topic:      testTopic,
					Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_TimestampMs{TimestampMs: ts}}}},
				}))
				if err != nil {
					t.Fatal(err)
				}
				if !stream.Receive() {
					t.Fatal(stream.Err())
				}
				if got := stream.Msg().NextOffset; got != want {
					t.Errorf("timestamp of offset %d: consume starts at %d, want %d", off, got, want)
				}
				stream.Close()
			}
		})
		t.Run("offsets report the remote start", func(t *testing.T) {
			resp, err := client.Offsets(ctx, connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: testTopic}))
			if err != nil {
				t.Fatal(err)
			}
			if p := resp.Msg.Partitions[0]; p.StartOffset != 0 || p.EndOffset != r.Log.EndOffset() {
				t.Fatalf("offsets %d to %d, want 0 to %d", p.StartOffset, p.EndOffset, r.Log.EndOffset())
			}
		})
		t.Run("a corrupt remote segment is data loss naming the offsets", func(t *testing.T) {
			segs, err := store.List(ctx, layout.PartitionPrefix(testTopic, 0), "", 0)
			if err != nil {
				t.Fatal(err)
			}
			var victim layout.Segment
			for _, info := range segs {
				if s, suf, ok := layout.Parse(info.Key); ok && suf == layout.LogSuffix && s.Base > 0 {
					victim = s
					break
				}
			}
			if err := store.Delete(ctx, victim.Key(layout.LogSuffix)); err != nil {
				t.Fatal(err)
			}
			client := consumeServer(t, m, newReader(t, store)) // nothing cached
			stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
				Topic:      testTopic,
				Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: victim.Base}}}},
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			for stream.Receive() {
			}
			err = stream.Err()
			if connect.CodeOf(err) != connect.CodeDataLoss || !strings.Contains(err.Error(), fmt.Sprintf("offsets %d to %d", victim.Base, victim.Last)) {
				t.Fatalf("err = %v, want DataLoss naming offsets %d to %d", err, victim.Base, victim.Last)
			}
			if strings.Contains(err.Error(), ".log") || strings.Contains(err.Error(), "s3://") {
				t.Fatalf("err = %v names objects", err)
			}
		})
	})
}

func TestConsumeWithoutRemoteIsUnchanged(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, r, batches := tieredReplica(t, store)
	client := consumeServer(t, m, nil)
	stream, err := client.Consume(t.Context(), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      testTopic,
		Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	first := receive(t, stream, r.Log.StartOffset(), batches)
	if first.NextOffset != r.Log.StartOffset() || first.StartOffset != r.Log.StartOffset() {
		t.Fatalf("first response: next %d start %d, want the local start %d", first.NextOffset, first.StartOffset, r.Log.StartOffset())
	}
	s2, err := client.Consume(t.Context(), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic:      testTopic,
		Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: 0}}}},
	}))
	if err == nil {
		for s2.Receive() {
		}
		err = s2.Err()
		s2.Close()
	}
	if connect.CodeOf(err) != connect.CodeOutOfRange {
		t.Fatalf("consume from 0 below the local start without a remote tier: %v, want OutOfRange", err)
	}
}

// BenchmarkRemoteColdReplay replays a partition of 64 MiB (8 MiB segments
// of 64 KiB batches of 1 KiB records, written by a real commit log) from
// versitygw with a new Reader per iteration, so that every byte comes from
// the server, and compares it with the server's raw GET throughput of the
// same .log objects, fetched in the same ranged GETs with as many in flight
// (raw-get; raw-get-whole-objects reads each object in one GET, one after
// the other).
func BenchmarkRemoteColdReplay(b *testing.B) {
	srv := s3test.Start(b)
	store, err := s3.New(b.Context(), srv.Config())
	if err != nil {
		b.Fatal(err)
	}
	cfg := logConfig()
	cfg.SegmentBytes = 8 << 20
	cfg.IndexIntervalBytes = commitlog.DefaultIndexIntervalBytes
	l, err := commitlog.Open(b.TempDir(), cfg, quietLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const recordsPerBatch = 64
	fill(b, l, 0, 1024+8, recordsPerBatch, 1000, tsBase)
	segs := remotetest.UploadClosed(b, store, testTopic, 0, l.Dir())
	var size int64
	for _, s := range segs {
		size += s.Size
	}
	end := segs[len(segs)-1].Last + 1
	b.Logf("%d segments, %d MiB, %d records", len(segs), size>>20, end)

	for _, rc := range []struct {
		name     string
		opts     []remote.Option
		readFunc bool // ReadFunc instead of Read: no copy
	}{
		{"reader", nil, false},
		{"reader-readfunc", nil, true},
		{"reader-4MiB-chunks", []remote.Option{remote.WithChunkBytes(4 << 20)}, false},
		{"reader-no-readahead", []remote.Option{remote.WithReadAhead(0, 1)}, false},
	} {
		b.Run(rc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				// The listing is taken before the timer starts, as the
				// raw baseline is given the keys: both time the bytes.
				// (Time to first record, listing included, is
				// BenchmarkYearBack's.)
				b.StopTimer()
				r := remote.NewReader(store, rc.opts...)
				if _, ok, err := r.Start(b.Context(), testTopic, 0); err != nil || !ok {
					b.Fatalf("Start: %v %v", ok, err)
				}
				b.StartTimer()
				records := int64(0)
				count := func(data []byte) error {
					for p := data; len(p) > 0; {
						h, _ := batch.ParseHeader(p)
						records += int64(h.RecordCount)
						p = p[h.Size():]
					}
					return nil
				}
				for off := int64(0); off < end; {
					var next int64
					var err error
					if rc.readFunc {
						next, err = r.ReadFunc(b.Context(), testTopic, 0, off, 1<<20, count)
					} else {
						var data []byte
						data, next, err = r.Read(b.Context(), testTopic, 0, off, 1<<20)
						if err == nil {
							err = count(data)
						}
					}
					if err != nil {
						b.Fatal(err)
					}
					off = next
				}
				if records != end {
					b.Fatalf("%d records, want %d", records, end)
				}
				b.StopTimer()
				r.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(end)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
	// The raw baseline fetches what the default Reader fetches, the way it
	// does: the same ranged GETs (DefaultChunkBytes, aligned, object after
	// object), as many in flight as the Reader can have (the one a read
	// waits for and DefaultReadAhead ahead of it), each read to the end into
	// a buffer of its own. Only what the Reader adds on top is left out:
	// cache, CRC checks, batch walking and the copy handed to the caller.
	type rng struct {
		key    string
		off, n int64
	}
	var ranges []rng
	for _, s := range segs {
		for off := int64(0); off < s.Size; off += remote.DefaultChunkBytes {
			ranges = append(ranges, rng{s.Key(layout.LogSuffix), off, min(remote.DefaultChunkBytes, s.Size-off)})
		}
	}
	b.Run("raw-get", func(b *testing.B) {
		const inFlight = 1 + remote.DefaultReadAhead
		bufs := make([][]byte, inFlight)
		for i := range bufs {
			bufs[i] = make([]byte, remote.DefaultChunkBytes)
		}
		b.SetBytes(size)
		for b.Loop() {
			var next atomic.Int64
			var wg sync.WaitGroup
			for w := range inFlight {
				wg.Go(func() {
					for i := next.Add(1) - 1; i < int64(len(ranges)); i = next.Add(1) - 1 {
						g := ranges[i]
						rc, err := store.Get(b.Context(), g.key, g.off, g.n)
						if err != nil {
							b.Error(err)
							return
						}
						_, err = io.ReadFull(rc, bufs[w][:g.n])
						rc.Close()
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(end)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
	// The earlier baseline, for reference: one whole-object GET per .log
	// object, one at a time.
	b.Run("raw-get-whole-objects", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, 1<<20)
		for b.Loop() {
			for _, s := range segs {
				rc, err := store.Get(b.Context(), s.Key(layout.LogSuffix), 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				n, err := int64(0), error(nil)
				for err == nil {
					var m int
					m, err = rc.Read(buf)
					n += int64(m)
				}
				rc.Close()
				if err != io.EOF || n != s.Size {
					b.Fatalf("GET %s: %d bytes of %d: %v", s.Key(layout.LogSuffix), n, s.Size, err)
				}
			}
		}
		b.ReportMetric(float64(end)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

func TestConsumeOfASlowConsumerContinuesFromTheRemoteTier(t *testing.T) {
	store, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := logConfig()
	cfg.SegmentBytes = 256 << 10
	m, err := replica.Open(t.TempDir(), cfg, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Ensure(replica.Spec{Topic: testTopic, Partition: 0, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := m.Get(testTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 40 MB: more than the connection holds even with small socket buffers
	// (about 16 MB here), so the stream's sender waits for the consumer.
	batches := fill(t, r.Log, 0, 2000, 20, 1000, tsBase)
	reg := prometheus.NewRegistry()
	client := consumeServer(t, m, newReader(t, store, remote.WithRegisterer(reg)))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic: testTopic, MaxBytes: 64 << 10,
		Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	rs := &recordStream{stream: stream}
	rs.expect(t, batches[:5])
	// Meanwhile the segments go up and local retention deletes all but
	// the last ones, far past where the consumer is.
	remotetest.UploadClosed(t, store, testTopic, 0, r.Log.Dir())
	lc := r.Log.Config()
	lc.RetentionBytes = 512 << 10
	if err := r.Log.SetConfig(lc); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Log.EnforceRetention(time.Now()); err != nil {
		t.Fatal(err)
	}
	if r.Log.StartOffset() < 30000 {
		t.Fatalf("local start %d", r.Log.StartOffset())
	}
	rs.expect(t, batches[5:])
	served := 0.0
	mf, _ := reg.Gather()
	for _, fam := range mf {
		if fam.GetName() == "spate_remote_served_bytes_total" {
			served = fam.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Logf("%.0f bytes of %d served from the remote tier", served, len(batches)*len(batches[0].bytes))
	if served == 0 {
		t.Fatal("nothing was served from the remote tier: the stream read ahead of the retention")
	}
}

func TestConsumeOfLocalDataNeedsNoObjectStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server; skipped with -short")
	}
	srv := s3test.Start(t)
	store, err := s3.New(t.Context(), srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	m, r, batches := tieredReplica(t, store)
	client := consumeServer(t, m, newReader(t, store))
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	local := r.Log.StartOffset()
	for _, tc := range []struct {
		name  string
		start *dataplanev1.Offset
		from  func() int64
	}{
		{"end", &dataplanev1.Offset{Position: &dataplanev1.Offset_End{End: true}}, r.Log.EndOffset},
		{"absolute local", &dataplanev1.Offset{Position: &dataplanev1.Offset_Absolute{Absolute: local + 1}}, func() int64 { return local + 1 }},
		{"from end in local", &dataplanev1.Offset{Position: &dataplanev1.Offset_FromEnd{FromEnd: 10}}, func() int64 { return r.Log.EndOffset() - 10 }},
		{"recent timestamp", &dataplanev1.Offset{Position: &dataplanev1.Offset_TimestampMs{TimestampMs: tsBase + local + 3}}, func() int64 { return local }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from()
			stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
				Topic: testTopic, Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, Start: tc.start}},
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			rs := &recordStream{stream: stream, next: from}
			more := fill(t, r.Log, len(batches), 1, 5, 100, tsBase)
			batches = append(batches, more...)
			rs.expect(t, batches)
		})
	}
	stream, err := client.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic: testTopic, Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}},
	}))
	if err == nil {
		for stream.Receive() {
		}
		err = stream.Err()
		stream.Close()
	}
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("consume from the beginning with the store stopped: %v, want Unavailable (retriable)", err)
	}
}
