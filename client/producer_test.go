package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/client"
)

// newClient returns a client of the SPU at url, closed at the end of the
// test.
func newClient(tb testing.TB, url string) *client.Client {
	tb.Helper()
	c, err := client.New(client.WithSPU(url))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// newProducer returns a producer closed at the end of the test.
func newProducer(tb testing.TB, c *client.Client, topic string, opts ...client.ProducerOption) *client.Producer {
	tb.Helper()
	p, err := c.NewProducer(context.Background(), topic, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// results collects the callbacks of produced records.
type results struct {
	mu   sync.Mutex
	recs []client.Record
	errs []error
	wg   sync.WaitGroup
}

func (r *results) done() func(client.Record, error) {
	r.wg.Add(1)
	return func(rec client.Record, err error) {
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		r.errs = append(r.errs, err)
		r.mu.Unlock()
		r.wg.Done()
	}
}

func TestProduceCallbackPerRecord(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 1)
		p := newProducer(t, newClient(t, url), "t")
		var res results
		const n = 100
		for i := range n {
			p.Produce(ctx, client.Record{Value: fmt.Appendf(nil, "v%d", i)}, res.done())
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		res.wg.Wait()
		if len(res.recs) != n {
			t.Fatalf("%d callbacks, want %d", len(res.recs), n)
		}
		for i, r := range res.recs {
			if res.errs[i] != nil {
				t.Fatalf("record %d: %v", i, res.errs[i])
			}
			// One partition, one goroutine: callbacks come in offset order.
			if r.Offset != int64(i) || r.Partition != 0 || string(r.Value) != fmt.Sprintf("v%d", i) {
				t.Errorf("callback %d: partition %d offset %d value %q", i, r.Partition, r.Offset, r.Value)
			}
			if d := time.Since(r.Timestamp); d < -time.Second || d > 10*time.Second {
				t.Errorf("callback %d: timestamp %v is %v from now", i, r.Timestamp, d)
			}
		}
	})
}

func TestProduceBatching(t *testing.T) {
	value := bytes.Repeat([]byte("x"), 100)
	tests := []struct {
		name        string
		opts        []client.ProducerOption
		records     int
		flush       bool          // call Flush rather than wait
		wait        time.Duration // before looking, when not flushing
		wantMaxReq  int           // most records in one request
		wantMinReq  int           // fewest requests
		wantMaxReqs int           // most requests
	}{
		{
			name:        "size seals batches",
			opts:        []client.ProducerOption{client.WithBatchBytes(1200), client.WithLinger(time.Hour)},
			records:     100,
			flush:       true,
			wantMaxReq:  10, // 100-byte values in batches of 1200 bytes
			wantMinReq:  10,
			wantMaxReqs: 20,
		},
		{
			name:        "linger seals a partial batch",
			opts:        []client.ProducerOption{client.WithLinger(20 * time.Millisecond)},
			records:     5,
			wait:        500 * time.Millisecond,
			wantMaxReq:  5,
			wantMinReq:  1,
			wantMaxReqs: 1,
		},
		{
			name:        "flush seals before linger",
			opts:        []client.ProducerOption{client.WithLinger(time.Hour)},
			records:     5,
			flush:       true,
			wantMaxReq:  5,
			wantMinReq:  1,
			wantMaxReqs: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			spu := newFakeSPU(t, "t", 1)
			p := newProducer(t, newClient(t, spu.URL()), "t", tt.opts...)
			var acked atomic.Int64
			for range tt.records {
				p.Produce(ctx, client.Record{Value: value}, func(_ client.Record, err error) {
					if err == nil {
						acked.Add(1)
					}
				})
			}
			if tt.flush {
				if err := p.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				deadline := time.Now().Add(tt.wait)
				for acked.Load() < int64(tt.records) && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
			}
			if acked.Load() != int64(tt.records) {
				t.Fatalf("%d records acknowledged, want %d", acked.Load(), tt.records)
			}
			reqs := spu.produceRequests()
			most := 0
			for _, r := range reqs {
				most = max(most, r.Records)
			}
			if most > tt.wantMaxReq || len(reqs) < tt.wantMinReq || len(reqs) > tt.wantMaxReqs {
				t.Errorf("%d requests with at most %d records; want %d to %d requests with at most %d", len(reqs), most, tt.wantMinReq, tt.wantMaxReqs, tt.wantMaxReq)
			}
		})
	}
}

func TestProduceLingerTiming(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	const linger = 100 * time.Millisecond
	p := newProducer(t, newClient(t, spu.URL()), "t", client.WithLinger(linger))
	start := time.Now()
	ackedAt := make(chan time.Duration, 1)
	p.Produce(ctx, client.Record{Value: []byte("v")}, func(_ client.Record, err error) {
		if err != nil {
			t.Error(err)
		}
		ackedAt <- time.Since(start)
	})
	select {
	case d := <-ackedAt:
		if d < linger {
			t.Errorf("acknowledged after %v, before the linger of %v", d, linger)
		}
	case <-ctx.Done():
		t.Fatal("never acknowledged")
	}
}

func TestProduceSync(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 3)
		p := newProducer(t, newClient(t, url), "t", client.WithLinger(time.Hour))
		var recs []client.Record
		for i := range 30 {
			recs = append(recs, client.Record{Key: fmt.Appendf(nil, "k%d", i), Value: []byte("v")})
		}
		start := time.Now()
		got, err := p.ProduceSync(ctx, recs...)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 10*time.Second {
			t.Error("ProduceSync waited for the linger")
		}
		next := map[int32]int64{}
		for i, r := range got {
			if string(r.Key) != fmt.Sprintf("k%d", i) {
				t.Fatalf("record %d has key %q", i, r.Key)
			}
			if r.Offset != next[r.Partition] {
				t.Errorf("record %d: partition %d offset %d, want %d", i, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition]++
		}
		if len(next) != 3 {
			t.Errorf("keys spread over %d partitions, want 3", len(next))
		}
	})
}

func TestProduceRefused(t *testing.T) {
	tests := []struct {
		name    string
		opts    []client.ProducerOption
		record  client.Record
		wantErr error
		code    connect.Code
	}{
		{
			name:    "record larger than a batch",
			opts:    []client.ProducerOption{client.WithBatchBytes(1024)},
			record:  client.Record{Value: make([]byte, 1024)},
			wantErr: client.ErrRecordTooLarge,
			code:    connect.CodeInvalidArgument,
		},
		{
			name:    "headers count",
			opts:    []client.ProducerOption{client.WithBatchBytes(1024)},
			record:  client.Record{Headers: []client.Header{{Key: "h", Value: make([]byte, 1000)}}},
			wantErr: client.ErrRecordTooLarge,
			code:    connect.CodeInvalidArgument,
		},
		{
			name:    "unknown partition",
			opts:    []client.ProducerOption{client.WithPartitioner(client.ManualPartitioner())},
			record:  client.Record{Partition: 7, Value: []byte("v")},
			wantErr: client.ErrUnknownPartition,
			code:    connect.CodeInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			spu := newFakeSPU(t, "t", 1)
			p := newProducer(t, newClient(t, spu.URL()), "t", tt.opts...)
			called := false
			p.Produce(ctx, tt.record, func(r client.Record, err error) {
				called = true // before Produce returns
				if !errors.Is(err, tt.wantErr) || connect.CodeOf(err) != tt.code {
					t.Errorf("error %v (code %v), want %v (code %v)", err, connect.CodeOf(err), tt.wantErr, tt.code)
				}
				if r.Offset != -1 {
					t.Errorf("offset %d, want -1", r.Offset)
				}
			})
			if !called {
				t.Fatal("done not called before Produce returned")
			}
			// Without a callback, Flush reports it.
			p.Produce(ctx, tt.record, nil)
			if err := p.Flush(ctx); !errors.Is(err, tt.wantErr) {
				t.Errorf("Flush: %v, want %v", err, tt.wantErr)
			}
			if err := p.Flush(ctx); err != nil {
				t.Errorf("second Flush: %v, want nil", err)
			}
			if n := len(spu.produceRequests()); n != 0 {
				t.Errorf("%d requests reached the SPU", n)
			}
		})
	}
}

func TestProducerUnknownTopic(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 1)
		_, err := newClient(t, url).NewProducer(testContext(t), "nope")
		if !client.IsNotFound(err) {
			t.Fatalf("error %v, want NotFound", err)
		}
	})
}

func TestProducerClose(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 2)
		p, err := newClient(t, url).NewProducer(ctx, "t", client.WithLinger(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var res results
		for i := range 50 {
			p.Produce(ctx, client.Record{Key: fmt.Append(nil, i), Value: []byte("v")}, res.done())
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		// Close flushed: every callback has run, successfully.
		if len(res.recs) != 50 {
			t.Fatalf("%d callbacks after Close, want 50", len(res.recs))
		}
		for i, err := range res.errs {
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		var after error
		p.Produce(ctx, client.Record{Value: []byte("late")}, func(_ client.Record, err error) { after = err })
		if !errors.Is(after, client.ErrClosed) {
			t.Errorf("Produce after Close: %v, want ErrClosed", after)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestProduceRequestError(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 2)
	spu.onProduce = func(_ int, req *dataplanev1.ProduceRequest) (*connect.Error, bool) {
		if req.GetPartition() == 1 {
			return connect.NewError(connect.CodeResourceExhausted, errors.New("partition 1 is full")), false
		}
		return nil, false
	}
	p := newProducer(t, newClient(t, spu.URL()), "t", client.WithPartitioner(client.ManualPartitioner()))
	got, err := p.ProduceSync(ctx,
		client.Record{Partition: 0, Value: []byte("a")},
		client.Record{Partition: 1, Value: []byte("b")},
	)
	if connect.CodeOf(err) != connect.CodeResourceExhausted || !client.IsRetriable(err) {
		t.Fatalf("error %v, want resource_exhausted", err)
	}
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Message() != "partition 1 is full" {
		t.Errorf("error %v does not carry the SPU's message", err)
	}
	if got[0].Offset != 0 || got[1].Offset != -1 {
		t.Errorf("offsets %d and %d, want 0 and -1", got[0].Offset, got[1].Offset)
	}
}

func TestProduceAcks(t *testing.T) {
	tests := []struct {
		name string
		acks client.Acks
		want dataplanev1.Acks
	}{
		{"topic default", client.AcksTopicDefault, dataplanev1.Acks_ACKS_UNSPECIFIED},
		{"write", client.AcksWrite, dataplanev1.Acks_ACKS_WRITE},
		{"fsync", client.AcksFsync, dataplanev1.Acks_ACKS_FSYNC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spu := newFakeSPU(t, "t", 1)
			p := newProducer(t, newClient(t, spu.URL()), "t", client.WithAcks(tt.acks))
			if _, err := p.ProduceSync(testContext(t), client.Record{Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
			if got := spu.produceRequests()[0].Acks; got != tt.want {
				t.Errorf("acks %v, want %v", got, tt.want)
			}
		})
	}
}

func TestProduceCompression(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		for _, codec := range []client.Compression{client.CompressionNone, client.CompressionGzip, client.CompressionSnappy, client.CompressionLZ4, client.CompressionZstd} {
			t.Run(codec.String(), func(t *testing.T) {
				ctx := testContext(t)
				url := newSPU(t, "t", 1)
				c := newClient(t, url)
				p := newProducer(t, c, "t", client.WithCompression(codec))
				value := bytes.Repeat([]byte("compressible "), 100)
				var recs []client.Record
				for range 20 {
					recs = append(recs, client.Record{Value: value, Headers: []client.Header{{Key: "h", Value: []byte("1")}}})
				}
				if _, err := p.ProduceSync(ctx, recs...); err != nil {
					t.Fatal(err)
				}
				cons, err := c.Consume(ctx, "t", client.WithEndOffset(20))
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Close()
				for i := range 20 {
					r, err := cons.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if r.Offset != int64(i) || !bytes.Equal(r.Value, value) || len(r.Headers) != 1 || r.Headers[0].Key != "h" {
						t.Fatalf("record %d: offset %d, %d bytes, headers %v", i, r.Offset, len(r.Value), r.Headers)
					}
				}
			})
		}
	})
}

// TestProduceConnectionLost breaks the stream while batches are in flight:
// they fail with ErrConnectionLost, never silently resent, and later
// records go through a new stream.
func TestProduceConnectionLost(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	var dropped atomic.Bool
	spu.onProduce = func(n int, _ *dataplanev1.ProduceRequest) (*connect.Error, bool) {
		if n == 2 && dropped.CompareAndSwap(false, true) {
			return nil, true
		}
		return nil, false
	}
	p := newProducer(t, newClient(t, spu.URL()), "t")
	var errs []error
	for i := range 3 {
		_, err := p.ProduceSync(ctx, client.Record{Value: fmt.Append(nil, i)})
		errs = append(errs, err)
	}
	if errs[0] != nil {
		t.Errorf("first record: %v", errs[0])
	}
	if !errors.Is(errs[1], client.ErrConnectionLost) || !client.IsRetriable(errs[1]) {
		t.Errorf("second record: %v, want ErrConnectionLost", errs[1])
	}
	if errs[2] != nil {
		t.Errorf("third record, after reconnecting: %v", errs[2])
	}
	if n := len(spu.produceRequests()); n != 2 {
		t.Errorf("the SPU stored %d requests, want 2 (no resend)", n)
	}
}

// TestProduceSPUDown produces while no SPU listens: batches wait in the
// queue, as nothing was sent, until the delivery timeout fails them.
func TestProduceSPUDown(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	c := newClient(t, spu.URL())
	p := newProducer(t, c, "t", client.WithDeliveryTimeout(300*time.Millisecond))
	spu.Close()
	time.Sleep(100 * time.Millisecond) // see TestProduceSPUComesBack
	start := time.Now()
	_, err := p.ProduceSync(ctx, client.Record{Value: []byte("v")})
	if !errors.Is(err, client.ErrDeliveryTimeout) {
		t.Fatalf("error %v, want ErrDeliveryTimeout", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("failed after %v, before the delivery timeout", d)
	}
}

// TestProduceSPUComesBack produces while the SPU is down and brings it
// back on the same address: the queued batch, which could not have
// reached anyone, goes through without error.
func TestProduceSPUComesBack(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	addr := spu.srv.Listener.Addr().String()
	p := newProducer(t, newClient(t, spu.URL()), "t")
	spu.Close()
	// Let the client notice that its connection is closed: a request
	// written on a connection as it breaks may have reached the SPU, and
	// fails with ErrConnectionLost (TestProduceConnectionLost).
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := p.ProduceSync(ctx, client.Record{Value: []byte("v")})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	spu2 := startFakeSPUOn(ln)
	t.Cleanup(spu2.Close)
	spu2.ensure("t", 0)
	if err := <-done; err != nil {
		t.Fatalf("produce after the SPU came back: %v", err)
	}
	if n := len(spu2.produceRequests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestProduceMaxBufferedBytes(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before the SPU stops, on failure
	spu.onProduce = func(int, *dataplanev1.ProduceRequest) (*connect.Error, bool) {
		<-release
		return nil, false
	}
	p := newProducer(t, newClient(t, spu.URL()), "t",
		client.WithBatchBytes(4096), client.WithMaxBufferedBytes(8192), client.WithLinger(0))
	value := make([]byte, 1000)
	var failed error
	blockCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	produced := 0
	for range 20 {
		p.Produce(blockCtx, client.Record{Value: value}, func(_ client.Record, err error) {
			if err != nil && failed == nil {
				failed = err
			}
		})
		if failed != nil {
			break
		}
		produced++
	}
	if !errors.Is(failed, context.DeadlineExceeded) {
		t.Fatalf("Produce did not block on a full buffer: %v", failed)
	}
	if produced > 8 {
		t.Errorf("%d KB buffered, beyond the 8 KiB bound", produced)
	}
	unblock()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestProduceConcurrent(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 4)
		c := newClient(t, url)
		p := newProducer(t, c, "t", client.WithBatchBytes(2048))
		const goroutines, each = 8, 500
		var acked atomic.Int64
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					p.Produce(ctx, client.Record{Key: fmt.Appendf(nil, "%d-%d", g, i), Value: []byte("v")}, func(_ client.Record, err error) {
						if err != nil {
							t.Error(err)
						}
						acked.Add(1)
					})
				}
			})
		}
		wg.Wait()
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if acked.Load() != goroutines*each {
			t.Fatalf("%d acknowledged, want %d", acked.Load(), goroutines*each)
		}
		offs, err := c.Offsets(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for _, o := range offs {
			total += o.End
		}
		if total != goroutines*each {
			t.Errorf("%d records stored, want %d", total, goroutines*each)
		}
	})
}

func TestProducerOptionsValidated(t *testing.T) {
	tests := []struct {
		name string
		opt  client.ProducerOption
	}{
		{"negative linger", client.WithLinger(-time.Second)},
		{"tiny batch", client.WithBatchBytes(10)},
		{"huge batch", client.WithBatchBytes(1 << 30)},
		{"buffer below batch", client.WithMaxBufferedBytes(1)},
		{"no in flight", client.WithMaxInFlight(0)},
		{"bad compression", client.WithCompression(42)},
		{"bad acks", client.WithAcks(9)},
		{"zero delivery timeout", client.WithDeliveryTimeout(0)},
	}
	spu := newFakeSPU(t, "t", 1)
	c := newClient(t, spu.URL())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := c.NewProducer(testContext(t), "t", tt.opt); err == nil {
				p.Close()
				t.Fatal("no error")
			}
		})
	}
}

// TestProduceSPUHangs has the SPU take requests and never answer: the
// batch in flight fails with ErrDeliveryTimeout (its outcome unknown), and
// Close does not hang.
func TestProduceSPUHangs(t *testing.T) {
	ctx := testContext(t)
	spu := newFakeSPU(t, "t", 1)
	hang := make(chan struct{})
	t.Cleanup(sync.OnceFunc(func() { close(hang) }))
	spu.onProduce = func(int, *dataplanev1.ProduceRequest) (*connect.Error, bool) {
		<-hang
		return nil, true
	}
	p, err := newClient(t, spu.URL()).NewProducer(ctx, "t", client.WithDeliveryTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.ProduceSync(ctx, client.Record{Value: []byte("v")})
	if !errors.Is(err, client.ErrDeliveryTimeout) || !client.IsRetriable(err) {
		t.Fatalf("error %v, want ErrDeliveryTimeout", err)
	}
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
}
