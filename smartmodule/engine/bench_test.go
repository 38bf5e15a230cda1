package engine_test

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/engine"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// cpuTime returns the CPU time the process has used: on a shared machine
// it tells what the work costs, where wall time also counts the waits for a
// core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRecords returns n records of about 100 bytes: JSON objects whose
// level is "error" for one record in 100.
func benchRecords(n int) []batch.Record {
	recs := make([]batch.Record, n)
	for i := range recs {
		level := "info"
		if i%100 == 0 {
			level = "error"
		}
		v := fmt.Appendf(nil, `{"level":%q,"n":%d,"msg":"request served","path":"/api/v1/items"}`, level, i)
		for len(v) < 100 {
			v = append(v[:len(v)-1], ` ,}`[1:]...)
			v[len(v)-2] = ' '
		}
		recs[i] = batch.Record{Offset: int64(i), Timestamp: 1_700_000_000_000 + int64(i), Value: v[:100]}
	}
	return recs
}

// benchSpec returns the Spec of a filter the benchmarks run: the engine's
// raw test filters (blindfilter reads no record: what is left is the
// host's cost; fastfilter decodes the records by hand; filter uses
// abi.RecordReader), and the SDK's examples.
func benchSpec(b *testing.B, e *engine.Engine, name string) engine.Spec {
	b.Helper()
	var wasm []byte
	var sp engine.Spec
	switch name {
	case "raw-keep1pct":
		wasm = guest(b, "filter")
		sp.Params = append(sp.Params, abiParam("every", "100"))
	case "raw-fast1pct":
		wasm = guest(b, "fastfilter")
	case "raw-blind1pct":
		wasm = guest(b, "blindfilter")
	case "sdk-keepall":
		wasm = smtest.Example(b, "keepall")
	case "sdk-keep1pct":
		wasm = smtest.Example(b, "keep1pct")
	case "sdk-jsonfilter":
		wasm = smtest.Example(b, "jsonfilter")
		sp.Params = append(sp.Params, abiParam("field", "level"), abiParam("equals", "error"))
	default:
		b.Fatalf("no bench module %s", name)
	}
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	sp.Module, sp.Name = m, name
	return sp
}

// BenchmarkProcess measures a filter over batches of 1,000 records of 100
// bytes: ns/record is the cost per record of crossing into the module and
// back, decoding its result, and the module's own work.
func BenchmarkProcess(b *testing.B) {
	e := shared(b)
	in := benchRecords(1000)
	for _, name := range []string{"raw-blind1pct", "raw-fast1pct", "raw-keep1pct", "sdk-keepall", "sdk-keep1pct", "sdk-jsonfilter"} {
		b.Run(name, func(b *testing.B) {
			c, err := e.NewChain(ctx, benchSpec(b, e, name))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			out := make([]batch.Record, 0, len(in))
			b.SetBytes(100 * int64(len(in)))
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				if out, err = c.Process(ctx, in, out[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*len(in)), "cpu-ns/record")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/record")
			b.ReportMetric(float64(len(out))/float64(len(in)), "kept")
		})
	}
}

// BenchmarkTransformConsume measures the consume path: stored batches of
// 1,000 records (uncompressed and zstd) decoded, filtered to 1% and built
// into derived batches.
func BenchmarkTransformConsume(b *testing.B) {
	e := shared(b)
	for _, codec := range []batch.Compression{batch.None, batch.Zstd} {
		bld := batch.NewBuilder(codec)
		for _, r := range benchRecords(1000) {
			bld.Append(r)
		}
		stored, err := bld.Build()
		if err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"raw-fast1pct", "sdk-keep1pct", "sdk-jsonfilter"} {
			b.Run(codec.String()+"/"+name, func(b *testing.B) {
				c, err := e.NewChain(ctx, benchSpec(b, e, name))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close(ctx)
				var out []byte
				b.SetBytes(100 * 1000)
				b.ReportAllocs()
				cpu := cpuTime()
				for b.Loop() {
					if out, err = c.TransformConsume(ctx, out[:0], stored, 0); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N*1000), "cpu-ns/record")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/record")
				b.ReportMetric(float64(len(out)), "out-bytes")
			})
		}
	}
}

// BenchmarkNewChain measures starting a stream's chain of one module from a
// compiled module (instantiation, _initialize, init) and what each chain
// holds: its linear memory, and the Go heap it takes in all (linear memory
// included).
func BenchmarkNewChain(b *testing.B) {
	e := shared(b)
	for _, name := range []string{"raw-keep1pct", "sdk-jsonfilter"} {
		b.Run(name, func(b *testing.B) {
			sp := benchSpec(b, e, name)
			var chains []*engine.Chain
			defer func() {
				for _, c := range chains {
					c.Close(ctx)
				}
			}()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var linear int64
			cpu := cpuTime()
			for b.Loop() {
				c, err := e.NewChain(ctx, sp)
				if err != nil {
					b.Fatal(err)
				}
				linear += c.MemoryBytes()
				// Keep up to 100 alive to measure what they hold.
				if len(chains) < 100 {
					chains = append(chains, c)
				} else {
					c.Close(ctx)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(linear)/float64(b.N), "linear-B/instance")
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(len(chains)), "heap-B/instance")
		})
	}
}
