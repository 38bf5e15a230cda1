package s3_test

import (
	"bytes"
	"io"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spatehq/spate/tiered-storage/objstore/objstoretest"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
)

// benchSize is the object size of the benchmarks: a large segment.
const benchSize = 64 << 20

// BenchmarkPut uploads a 64 MiB object per iteration to a local versitygw:
// through the Store (multipart, 16 MiB parts, 4 at a time) from an
// io.ReaderAt (a file or a bytes.Reader: parts read in place) and from a
// plain stream (parts copied into buffers), through the Store in one
// PutObject, and, as the server's raw baseline, in one plain PutObject of
// the SDK.
func BenchmarkPut(b *testing.B) {
	srv := s3test.Start(b)
	data := objstoretest.Data(1, benchSize)
	b.Run("store-multipart", func(b *testing.B) {
		s := newStore(b, srv.Config())
		b.SetBytes(benchSize)
		for b.Loop() {
			if err := s.Put(b.Context(), "bench", bytes.NewReader(data), benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-multipart-stream", func(b *testing.B) {
		s := newStore(b, srv.Config())
		b.SetBytes(benchSize)
		for b.Loop() {
			if err := s.Put(b.Context(), "bench", struct{ io.Reader }{bytes.NewReader(data)}, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store-single", func(b *testing.B) {
		cfg := srv.Config()
		cfg.PartSize = benchSize
		s := newStore(b, cfg)
		b.SetBytes(benchSize)
		for b.Loop() {
			if err := s.Put(b.Context(), "bench", bytes.NewReader(data), benchSize); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-putobject", func(b *testing.B) {
		client := srv.Client()
		b.SetBytes(benchSize)
		for b.Loop() {
			if _, err := client.PutObject(b.Context(), &s3api.PutObjectInput{
				Bucket: aws.String(s3test.Bucket), Key: aws.String("raw/bench"),
				Body: bytes.NewReader(data), ContentLength: aws.Int64(benchSize),
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet downloads a 64 MiB object per iteration from a local
// versitygw: through the Store, through a plain GetObject of the SDK (the
// raw baseline), and as 4 concurrent ranged Gets of 16 MiB (what read-ahead
// can reach).
func BenchmarkGet(b *testing.B) {
	srv := s3test.Start(b)
	s := newStore(b, srv.Config())
	if err := s.Put(b.Context(), "bench", bytes.NewReader(objstoretest.Data(1, benchSize)), benchSize); err != nil {
		b.Fatal(err)
	}
	read := func(b *testing.B, r io.ReadCloser, want int64) {
		defer r.Close()
		if n, err := io.CopyBuffer(io.Discard, r, make([]byte, 1<<20)); err != nil || n != want {
			b.Fatalf("read %d bytes, want %d: %v", n, want, err)
		}
	}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(benchSize)
		for b.Loop() {
			rc, err := s.Get(b.Context(), "bench", 0, -1)
			if err != nil {
				b.Fatal(err)
			}
			read(b, rc, benchSize)
		}
	})
	b.Run("raw-getobject", func(b *testing.B) {
		client := srv.Client()
		b.SetBytes(benchSize)
		for b.Loop() {
			out, err := client.GetObject(b.Context(), &s3api.GetObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String(s.BucketKey("bench"))})
			if err != nil {
				b.Fatal(err)
			}
			read(b, out.Body, benchSize)
		}
	})
	b.Run("store-4-ranges", func(b *testing.B) {
		const part = benchSize / 4
		b.SetBytes(benchSize)
		for b.Loop() {
			var wg sync.WaitGroup
			for i := range int64(4) {
				wg.Go(func() {
					rc, err := s.Get(b.Context(), "bench", i*part, part)
					if err != nil {
						b.Error(err)
						return
					}
					read(b, rc, part)
				})
			}
			wg.Wait()
		}
	})
}
