package batch_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/spatehq/spate/internal/batch"
)

const (
	benchRecords   = 1000
	benchValueSize = 100
)

// benchValues returns n log-line-like values of size bytes: partly
// repetitive text and partly random digits, so that they compress about as
// much as real records do.
func benchValues(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	values := make([][]byte, n)
	for i := range values {
		v := fmt.Appendf(nil, `{"level":"info","ts":%d,"user":%d,"msg":"request served","latency_us":%d}`,
			ts0+int64(i), rng.IntN(1_000_000), rng.IntN(100_000))
		for len(v) < size {
			v = append(v, byte('a'+rng.IntN(26)))
		}
		values[i] = v[:size]
	}
	return values
}

// BenchmarkBuild measures a producer: appending 1000 records of 100 bytes
// to a reused Builder and building the batch. Bytes are the uncompressed
// batch's. The sub-benchmarks vary how: "Build" allocates each batch,
// "AppendTo" builds into a reused buffer, and "time.Now" leaves timestamps
// to Append, which reads the clock for each record.
func BenchmarkBuild(b *testing.B) {
	values := benchValues(benchRecords, benchValueSize)
	for _, c := range codecs {
		for _, mode := range []string{"Build", "AppendTo", "time.Now"} {
			if mode == "time.Now" && c != batch.None {
				continue // the clock costs the same under every codec
			}
			b.Run(c.String()+"/"+mode, func(b *testing.B) {
				bld := batch.NewBuilder(c)
				var out []byte
				var err error
				b.ReportAllocs()
				for b.Loop() {
					bld.Reset()
					for i, v := range values {
						ts := ts0 + int64(i)
						if mode == "time.Now" {
							ts = 0
						}
						bld.Append(batch.Record{Timestamp: ts, Value: v})
					}
					if mode == "AppendTo" {
						out, err = bld.AppendTo(out[:0])
					} else {
						out, err = bld.Build()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(bld.Size()))
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
				b.ReportMetric(float64(len(out)), "batch-bytes")
			})
		}
	}
}

// BenchmarkDecode measures a consumer: decoding the batch BenchmarkBuild
// builds into a reused slice of records. Bytes are the uncompressed batch's.
func BenchmarkDecode(b *testing.B) {
	values := benchValues(benchRecords, benchValueSize)
	for _, c := range codecs {
		b.Run(c.String(), func(b *testing.B) {
			bld := batch.NewBuilder(c)
			for i, v := range values {
				bld.Append(batch.Record{Timestamp: ts0 + int64(i), Value: v})
			}
			raw, err := bld.Build()
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]batch.Record, 0, benchRecords)
			b.SetBytes(int64(bld.Size()))
			b.ReportAllocs()
			for b.Loop() {
				if recs, err = batch.Decode(raw, recs[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchRecords), "ns/record")
			b.ReportMetric(float64(len(raw)), "batch-bytes")
		})
	}
}

// BenchmarkValidate measures the check the SPU runs on every produced batch,
// on a batch of 1 MiB.
func BenchmarkValidate(b *testing.B) {
	bld := batch.NewBuilder(batch.None)
	for i, v := range benchValues(1<<20/(benchValueSize+8), benchValueSize) {
		bld.Append(batch.Record{Timestamp: ts0 + int64(i), Value: v})
	}
	raw, err := bld.Build()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := batch.Validate(raw); err != nil {
			b.Fatal(err)
		}
	}
}
