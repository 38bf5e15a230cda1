package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/client"
)

// produceN produces n records to partition 0 of topic, in batches of
// perBatch, with values "v<offset>" and timestamps base+offset ms.
func produceN(tb testing.TB, c *client.Client, topic string, n, perBatch int, base time.Time) {
	tb.Helper()
	ctx := testContext(tb)
	p, err := c.NewProducer(ctx, topic, client.WithPartitioner(client.ManualPartitioner()), client.WithLinger(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	defer p.Close()
	var recs []client.Record
	for i := range n {
		recs = append(recs, client.Record{
			Value:     fmt.Appendf(nil, "v%d", i),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
		if len(recs) == perBatch || i == n-1 {
			if _, err := p.ProduceSync(ctx, recs...); err != nil {
				tb.Fatal(err)
			}
			recs = recs[:0]
		}
	}
}

// consumeAll reads until io.EOF and returns the offsets and values seen.
func consumeAll(tb testing.TB, cons *client.Consumer) []client.Record {
	tb.Helper()
	ctx := testContext(tb)
	var out []client.Record
	for {
		r, err := cons.Next(ctx)
		if err == io.EOF {
			return out
		}
		if err != nil {
			tb.Fatalf("after %d records: %v", len(out), err)
		}
		out = append(out, r)
	}
}

// checkRange checks that recs are the records from..to-1 of produceN.
func checkRange(tb testing.TB, recs []client.Record, from, to int64) {
	tb.Helper()
	if int64(len(recs)) != to-from {
		tb.Errorf("%d records, want %d (offsets %d to %d)", len(recs), to-from, from, to-1)
	}
	for i, r := range recs {
		want := from + int64(i)
		if r.Offset != want || string(r.Value) != fmt.Sprintf("v%d", want) {
			tb.Fatalf("record %d: offset %d value %q, want offset %d", i, r.Offset, r.Value, want)
		}
	}
}

func TestConsumeStart(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		base := time.UnixMilli(1_700_000_000_000)
		tests := []struct {
			name     string
			start    client.Offset
			from, to int64 // records expected, with end offset 50
		}{
			{"beginning", client.Beginning(), 0, 50},
			{"zero offset is beginning", client.Offset{}, 0, 50},
			{"absolute in a batch", client.At(13), 13, 50},
			{"absolute at a batch", client.At(20), 20, 50},
			{"from beginning", client.FromBeginning(7), 7, 50},
			{"from end", client.FromEnd(5), 45, 50},
			{"from end beyond start", client.FromEnd(500), 0, 50},
			// The batch holding the time starts at offset 30.
			{"at time", client.AtTime(base.Add(35 * time.Millisecond)), 30, 50},
		}
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		produceN(t, c, "t", 50, 10, base)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cons, err := c.Consume(testContext(t), "t", client.WithStart(tt.start), client.WithEndOffset(50))
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Close()
				checkRange(t, consumeAll(t, cons), tt.from, tt.to)
			})
		}
	})
}

func TestConsumeEndOffset(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		produceN(t, c, "t", 30, 10, time.Now())
		tests := []struct {
			name     string
			opts     []client.ConsumeOption
			from, to int64
		}{
			{"inside a batch", []client.ConsumeOption{client.WithEndOffset(15)}, 0, 15},
			{"at the start", []client.ConsumeOption{client.WithStart(client.At(5)), client.WithEndOffset(5)}, 5, 5},
			{"small responses", []client.ConsumeOption{client.WithEndOffset(30), client.WithMaxBytes(1)}, 0, 30},
			{"stop at end", []client.ConsumeOption{client.WithStopAtEnd()}, 0, 30},
			{"end offset at the beginning", []client.ConsumeOption{client.WithEndOffset(0)}, 0, 0},
			{"stop at end from the end", []client.ConsumeOption{client.WithStopAtEnd(), client.WithStart(client.End())}, 30, 30},
			{"stop at end and end offset", []client.ConsumeOption{client.WithStopAtEnd(), client.WithEndOffset(12)}, 0, 12},
			{"end offset beyond the end", []client.ConsumeOption{client.WithStopAtEnd(), client.WithEndOffset(1000)}, 0, 30},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cons, err := c.Consume(testContext(t), "t", tt.opts...)
				if err != nil {
					t.Fatal(err)
				}
				defer cons.Close()
				checkRange(t, consumeAll(t, cons), tt.from, tt.to)
				if _, err := cons.Next(testContext(t)); err != io.EOF {
					t.Errorf("Next after the end: %v, want io.EOF", err)
				}
			})
		}
	})
}

// TestConsumeResume cuts the consume stream in several ways; the consumer
// must resume from where it was, losing and repeating nothing.
func TestConsumeResume(t *testing.T) {
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("SPU restarting"))
	tests := []struct {
		name  string
		cut   error // how the SPU ends the stream after each response
		start client.Offset
		from  int64
	}{
		// Starting inside a batch, each resumption asks for an offset
		// inside a batch too.
		{"unavailable", unavailable, client.At(3), 3},
		{"stream reset", errAbort, client.At(3), 3},
		{"clean end before the end offset", nil, client.At(3), 3},
		{"from the beginning", unavailable, client.Beginning(), 0},
		{"from the end", unavailable, client.FromEnd(50), 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spu := newFakeSPU(t, "t", 1)
			c := newClient(t, spu.URL())
			produceN(t, c, "t", 100, 7, time.Now())
			cuts := 0
			spu.onConsume = func(sent int, _ *dataplanev1.ConsumeResponse) error {
				if sent == 1 { // let one response through per stream
					cuts++
					if tt.cut == nil {
						return errCleanEnd
					}
					return tt.cut
				}
				return nil
			}
			cons, err := c.Consume(testContext(t), "t", client.WithStart(tt.start), client.WithEndOffset(100), client.WithMaxBytes(1))
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			checkRange(t, consumeAll(t, cons), tt.from, 100)
			if cuts < 5 {
				t.Errorf("the stream was cut %d times; the test cut too little", cuts)
			}
		})
	}
}

func TestConsumePermanentError(t *testing.T) {
	spu := newFakeSPU(t, "t", 1)
	c := newClient(t, spu.URL())
	produceN(t, c, "t", 10, 10, time.Now())
	spu.onConsume = func(int, *dataplanev1.ConsumeResponse) error {
		return connect.NewError(connect.CodePermissionDenied, errors.New("not yours"))
	}
	cons, err := c.Consume(testContext(t), "t")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	_, err = cons.Next(testContext(t))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("error %v, want permission_denied", err)
	}
	if _, err2 := cons.Next(testContext(t)); connect.CodeOf(err2) != connect.CodePermissionDenied {
		t.Errorf("second Next: %v, want the same error", err2)
	}
}

func TestConsumeOutOfRange(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		produceN(t, c, "t", 10, 10, time.Now())
		cons, err := c.Consume(testContext(t), "t", client.WithStart(client.At(1000)))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		if _, err := cons.Next(testContext(t)); !client.IsOutOfRange(err) {
			t.Fatalf("error %v, want out of range", err)
		}
	})
}

func TestConsumeLive(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 3)
		c := newClient(t, url)
		cons, err := c.Consume(ctx, "t", client.WithStart(client.End()))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		p := newProducer(t, c, "t")
		sent := map[string]bool{}
		for i := range 30 {
			k := fmt.Sprintf("k%d", i)
			sent[k] = true
			p.Produce(ctx, client.Record{Key: []byte(k), Value: []byte("v")}, nil)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		next := map[int32]int64{}
		for len(sent) > 0 {
			recs, err := cons.NextBatch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if !sent[string(r.Key)] {
					t.Fatalf("unexpected or repeated record %q", r.Key)
				}
				delete(sent, string(r.Key))
				if r.Offset != next[r.Partition] {
					t.Errorf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
				}
				next[r.Partition] = r.Offset + 1
			}
		}
	})
}

func TestConsumePartitions(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		ctx := testContext(t)
		url := newSPU(t, "t", 3)
		c := newClient(t, url)
		p := newProducer(t, c, "t", client.WithPartitioner(client.ManualPartitioner()))
		for part := range int32(3) {
			if _, err := p.ProduceSync(ctx, client.Record{Partition: part, Value: []byte("v")}); err != nil {
				t.Fatal(err)
			}
		}
		cons, err := c.Consume(ctx, "t", client.WithPartitions(2, 0), client.WithEndOffset(1))
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		seen := map[int32]int{}
		for _, r := range consumeAll(t, cons) {
			seen[r.Partition]++
		}
		if len(seen) != 2 || seen[0] != 1 || seen[2] != 1 {
			t.Errorf("records per partition %v, want one each from 0 and 2", seen)
		}

		if _, err := c.Consume(ctx, "t", client.WithPartitions(5)); !client.IsNotFound(err) {
			t.Errorf("missing partition: %v, want NotFound", err)
		}
		if _, err := c.Consume(ctx, "nope"); !client.IsNotFound(err) {
			t.Errorf("missing topic: %v, want NotFound", err)
		}
	})
}

func TestConsumerClose(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		cons, err := c.Consume(testContext(t), "t")
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := cons.Next(context.Background())
			errc <- err
		}()
		time.Sleep(50 * time.Millisecond)
		if err := cons.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, client.ErrClosed) {
			t.Errorf("Next during Close: %v, want ErrClosed", err)
		}
		if _, err := cons.Next(context.Background()); !errors.Is(err, client.ErrClosed) {
			t.Errorf("Next after Close: %v, want ErrClosed", err)
		}
	})
}

func TestConsumeNextContext(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 1)
		c := newClient(t, url)
		cons, err := c.Consume(testContext(t), "t")
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := cons.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next: %v, want deadline exceeded", err)
		}
		// The consumer lives on.
		produceN(t, c, "t", 1, 1, time.Now())
		if r, err := cons.Next(testContext(t)); err != nil || r.Offset != 0 {
			t.Fatalf("Next after a timeout: %v, %v", r, err)
		}
	})
}

func TestConsumeEmptyStopAtEnd(t *testing.T) {
	forEachSPU(t, func(t *testing.T, newSPU spuFunc) {
		url := newSPU(t, "t", 2)
		c := newClient(t, url)
		cons, err := c.Consume(testContext(t), "t", client.WithStopAtEnd())
		if err != nil {
			t.Fatal(err)
		}
		defer cons.Close()
		if _, err := cons.Next(testContext(t)); err != io.EOF {
			t.Fatalf("Next: %v, want io.EOF", err)
		}
	})
}
