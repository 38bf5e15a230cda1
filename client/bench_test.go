package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// BenchmarkProduce measures the producer's hot path: 100-byte records to
// one partition, through HTTP/2 on loopback, to a fake SPU that checks
// each batch's CRC and discards it. It reports records/s and MB/s of
// record values.
func BenchmarkProduce(b *testing.B) {
	benchmarks := []struct {
		name     string
		callback bool
		opts     []client.ProducerOption
	}{
		{"no callback", false, nil},
		{"callback", true, nil},
		{"batch 64KiB", false, []client.ProducerOption{client.WithBatchBytes(64 << 10)}},
		{"batch 1MiB", false, []client.ProducerOption{client.WithBatchBytes(1 << 20)}},
		{"lz4", false, []client.ProducerOption{client.WithCompression(client.CompressionLZ4)}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			spu := newFakeSPU(b, "t", 1)
			spu.discard = true
			benchmarkProduce(b, spu.URL(), "t", bm.callback, bm.opts...)
		})
	}
}

// BenchmarkProduceSPU is BenchmarkProduce against a real SPU running
// in-process, writing to its log (acknowledged after write, not fsync).
func BenchmarkProduceSPU(b *testing.B) {
	benchmarks := []struct {
		name     string
		callback bool
		opts     []client.ProducerOption
	}{
		{"no callback", false, nil},
		{"callback", true, nil},
		{"batch 64KiB", false, []client.ProducerOption{client.WithBatchBytes(64 << 10)}},
		{"batch 1MiB", false, []client.ProducerOption{client.WithBatchBytes(1 << 20)}},
		{"fsync", false, []client.ProducerOption{client.WithAcks(client.AcksFsync)}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			benchmarkProduce(b, newRealSPU(b, "t", 1), "t", bm.callback, bm.opts...)
		})
	}
	b.Run("now", func(b *testing.B) {
		benchmarkProduceTS(b, newRealSPU(b, "t", 1), "t", false, time.Time{})
	})
	// The SPU as a separate process (`spate spu serve`, built on first
	// use unless $SPATE_BIN names it), as users run it.
	b.Run("process", func(b *testing.B) {
		p := sputest.StartProcess(b, b.TempDir())
		createTopic(b, p.URL, "t", 1)
		benchmarkProduceTS(b, p.URL, "t", false, time.Time{})
	})
}

// benchmarkProduce produces b.N 100-byte records to topic on the SPU at
// url and flushes.
//
// Records carry a timestamp set once, as a producer at high rates should
// (see Record.Timestamp); the "now" variants leave it zero, so that the
// producer reads the clock for each record.
func benchmarkProduce(b *testing.B, url, topic string, callback bool, opts ...client.ProducerOption) {
	benchmarkProduceTS(b, url, topic, callback, time.Now(), opts...)
}

func benchmarkProduceTS(b *testing.B, url, topic string, callback bool, ts time.Time, opts ...client.ProducerOption) {
	ctx := context.Background()
	c := newClient(b, url)
	p := newProducer(b, c, topic, opts...)
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var done func(client.Record, error)
	if callback {
		done = func(_ client.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		}
	}
	// Warm up: connect, grow the buffers.
	for range 10000 {
		p.Produce(ctx, client.Record{Value: value}, done)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		p.Produce(ctx, client.Record{Value: value, Timestamp: ts}, done)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkConsume measures reading 100-byte records from one partition,
// with Next and NextBatch, from the fake SPU (which serves them from
// memory) and from a real SPU (from its log, in the page cache).
func BenchmarkConsume(b *testing.B) {
	for _, backend := range []struct {
		name   string
		newSPU spuFunc
	}{
		{"fake", func(tb testing.TB, topic string, partitions int) string {
			return newFakeSPU(tb, topic, partitions).URL()
		}},
		{"spu", newRealSPU},
	} {
		b.Run(backend.name, func(b *testing.B) {
			benchmarkConsume(b, backend.newSPU(b, "t", 1))
		})
	}
}

func benchmarkConsume(b *testing.B, url string) {
	const stored = 1_000_000
	c := newClient(b, url)
	p := newProducer(b, c, "t")
	value := make([]byte, 100)
	ctx := context.Background()
	for range stored {
		p.Produce(ctx, client.Record{Value: value}, nil)
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	for _, batched := range []bool{false, true} {
		name := "Next"
		if batched {
			name = "NextBatch"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			start := time.Now()
			read := 0
			for read < b.N {
				n := min(b.N-read, stored)
				cons, err := c.Consume(ctx, "t", client.WithEndOffset(int64(n)))
				if err != nil {
					b.Fatal(err)
				}
				for got := 0; got < n; {
					if batched {
						recs, err := cons.NextBatch(ctx)
						if err != nil {
							b.Fatal(err)
						}
						got += len(recs)
					} else {
						if _, err := cons.Next(ctx); err != nil {
							b.Fatal(err)
						}
						got++
					}
				}
				cons.Close()
				read += n
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
