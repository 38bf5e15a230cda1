package commitlog_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

// benchBatch returns a batch of about size bytes: records of 1 KiB values.
func benchBatch(b *testing.B, size int) []byte {
	bl := batch.NewBuilder(batch.None)
	value := make([]byte, 1000)
	for bl.Size()+len(value)+16 <= size || bl.Count() == 0 {
		bl.Append(batch.Record{Value: value, Timestamp: 1_700_000_000_000})
	}
	out, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// benchConfig keeps the disk use of long benchmarks bounded: 64 MiB
// segments, 256 MiB retained.
func benchConfig() commitlog.Config {
	cfg := commitlog.DefaultConfig()
	cfg.RetentionTime = 0
	cfg.SegmentBytes = 64 << 20
	cfg.RetentionBytes = 256 << 20
	return cfg
}

// BenchmarkAppend appends 64 KiB batches with Durability Write: no fsync.
func BenchmarkAppend(b *testing.B) {
	l, err := commitlog.Open(b.TempDir(), benchConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	in := benchBatch(b, 64<<10)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := l.Append(in); err != nil {
			b.Fatal(err)
		}
		if i++; i%1024 == 0 {
			if _, err := l.EnforceRetention(time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkAppendSync appends and then syncs each batch, from 1 and from 8
// concurrent appenders, whose Syncs share fsyncs.
func BenchmarkAppendSync(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		for _, appenders := range []int{1, 8} {
			b.Run(fmt.Sprintf("batch=%dKiB/appenders=%d", size>>10, appenders), func(b *testing.B) {
				l, err := commitlog.Open(b.TempDir(), benchConfig(), nil)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				in := benchBatch(b, size)
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				fsyncs := l.Info().Fsyncs
				var n atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range appenders {
					wg.Go(func() {
						in := slices.Clone(in) // Append stamps it
						for n.Add(1) <= int64(b.N) {
							_, last, err := l.Append(in)
							if err == nil {
								err = l.Sync(context.Background(), last)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(l.Info().Fsyncs-fsyncs)/float64(b.N), "fsyncs/op")
			})
		}
	}
}

// BenchmarkReadSequential reads a 64 MiB log from start to end in 1 MiB
// reads into one buffer, over and over.
func BenchmarkReadSequential(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			cfg := benchConfig()
			cfg.SegmentBytes = 16 << 20
			l, err := commitlog.Open(b.TempDir(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			in := benchBatch(b, size)
			for l.Info().Size < 64<<20 {
				if _, _, err := l.Append(in); err != nil {
					b.Fatal(err)
				}
			}
			const maxBytes = 1 << 20
			buf := make([]byte, 0, maxBytes+cfg.IndexIntervalBytes+batch.HeaderSize)
			off := l.StartOffset()
			read := func() int {
				if off == l.EndOffset() {
					off = l.StartOffset()
				}
				data, err := l.Read(off, maxBytes, buf)
				if err != nil {
					b.Fatal(err)
				}
				h, err := batch.ParseHeader(data[len(data)-len(in):])
				if err != nil {
					b.Fatal(err)
				}
				off = h.NextOffset()
				return len(data)
			}
			// One pass to measure the average read.
			reads, total := 0, 0
			for {
				total += read()
				reads++
				if off == l.EndOffset() {
					break
				}
			}
			b.SetBytes(int64(total / reads))
			b.ReportAllocs()
			for b.Loop() {
				read()
			}
		})
	}
}
