package local_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/spatehq/spate/tiered-storage/objstore/local"
	"github.com/spatehq/spate/tiered-storage/objstore/objstoretest"
)

// benchSize is the object size of the benchmarks: a large segment.
const benchSize = 64 << 20

func benchStore(b *testing.B) *local.Store {
	s, err := local.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkPut writes a 64 MiB object (with fsync) per iteration.
func BenchmarkPut(b *testing.B) {
	s := benchStore(b)
	data := objstoretest.Data(1, benchSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		if err := s.Put(b.Context(), "bench/object", bytes.NewReader(data), benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGet reads a 64 MiB object per iteration (from the page cache).
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	if err := s.Put(b.Context(), "bench/object", bytes.NewReader(objstoretest.Data(1, benchSize)), benchSize); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	for b.Loop() {
		rc, err := s.Get(b.Context(), "bench/object", 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyBuffer(io.Discard, rc, buf); err != nil || n != benchSize {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		rc.Close()
	}
}
