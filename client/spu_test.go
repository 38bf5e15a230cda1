package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// spuFunc starts an SPU holding partitions 0 to partitions-1 of topic,
// stopped at the end of the test, and returns its URL.
type spuFunc func(tb testing.TB, topic string, partitions int) (url string)

// forEachSPU runs test against the in-memory fake SPU and against a real
// SPU running in-process: the client must behave the same with both.
// Tests that need fault injection use the fake only.
func forEachSPU(t *testing.T, test func(t *testing.T, newSPU spuFunc)) {
	t.Run("fake", func(t *testing.T) {
		test(t, func(tb testing.TB, topic string, partitions int) string {
			return newFakeSPU(tb, topic, partitions).URL()
		})
	})
	t.Run("spu", func(t *testing.T) { test(t, newRealSPU) })
}

// newRealSPU starts a real SPU in-process, on a temporary data directory.
func newRealSPU(tb testing.TB, topic string, partitions int) string {
	tb.Helper()
	s := sputest.Start(tb, spu.Config{})
	createTopic(tb, s.URL, topic, partitions)
	return s.URL
}

// createTopic creates partitions 0 to partitions-1 of topic.
func createTopic(tb testing.TB, url, topic string, partitions int) {
	tb.Helper()
	c := newClient(tb, url)
	for p := range int32(partitions) {
		if _, err := c.EnsurePartition(context.Background(), topic, p, client.PartitionConfig{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// serveSPU runs a real SPU on dir and ln until the returned stop is
// called (or the test ends).
func serveSPU(tb testing.TB, dir string, ln net.Listener) (stop func()) {
	tb.Helper()
	// A short shutdown: open streams are cut rather than waited for.
	srv, err := spu.New(spu.Config{DataDir: dir, ShutdownTimeout: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("spu: %v", err)
		}
	})
	tb.Cleanup(stop)
	return stop
}

// TestSPURestart restarts the SPU, on the same data and address, under a
// producer and a consumer: the consumer resumes where it was, losing and
// repeating nothing, and the producer reconnects.
func TestSPURestart(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	stop := serveSPU(t, dir, ln)
	url := "http://" + addr
	createTopic(t, url, "t", 1)
	c := newClient(t, url)
	p := newProducer(t, c, "t")
	produce := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			for {
				_, err := p.ProduceSync(ctx, client.Record{Value: fmt.Appendf(nil, "v%d", i)})
				if err == nil {
					break
				}
				if !client.IsRetriable(err) {
					t.Fatalf("record %d: %v", i, err)
				}
				// The SPU may have written it: with ErrConnectionLost,
				// a retry could duplicate it. Not here: the SPU was
				// down before this record was sent.
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	produce(0, 100)

	cons, err := c.Consume(ctx, "t", client.WithEndOffset(200))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []client.Record
	for len(got) < 100 {
		r, err := cons.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}

	stop()
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	serveSPU(t, dir, ln2)
	produce(100, 200)
	got = append(got, consumeAll(t, cons)...)
	checkRange(t, got, 0, 200)
}
