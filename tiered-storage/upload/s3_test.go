package upload_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
	"github.com/spatehq/spate/tiered-storage/upload"
)

func s3Store(t testing.TB, srv *s3test.Server) *s3.Store {
	t.Helper()
	cfg := srv.Config()
	cfg.MaxAttempts = 2
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestS3StoppedUnderLoad stops the S3 server while segments keep closing
// and local retention deletes whatever the uploader allows: nothing that was
// not uploaded is deleted, uploads resume by themselves once the server is
// back, and in the end the remote index holds every segment exactly once.
func TestS3StoppedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and stops an S3 server: not in -short")
	}
	srv := s3test.Start(t)
	store := s3Store(t, srv)
	m := newManager(t, store, func(c *upload.Config) { c.MaxBackoff = 300 * time.Millisecond })
	log := newFakeLog(t)
	u, err := m.Add("load", 1, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex // guards all
		all     []upload.Segment
		deleted []upload.Segment // deleted locally
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // the producer: a 50 KB segment every 10 ms
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			s := log.roll(t, 500, time.Now())
			mu.Lock()
			all = append(all, s)
			mu.Unlock()
		}
	})
	wg.Go(func() { // local retention keeping nothing it may delete
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			for _, s := range log.Segments() {
				if !u.Uploaded(s.Base, s.Last) {
					break
				}
				log.deleteBefore(s.Last + 1)
				mu.Lock()
				deleted = append(deleted, s)
				mu.Unlock()
			}
		}
	})

	waitFor(t, 20*time.Second, "some uploads", func() bool { return u.Status().RemoteSegments >= 5 })
	srv.Stop()
	waitFor(t, 20*time.Second, "the outage in the status", func() bool { return u.Status().Err != nil })
	time.Sleep(time.Second) // producing goes on
	st := u.Status()
	if st.UploadLagSegments < 10 || st.Err == nil {
		t.Fatalf("status during the outage: %+v", st)
	}
	t.Logf("during the outage: %d segments (%d bytes) waiting, error: %v", st.UploadLagSegments, st.UploadLagBytes, st.Err)
	srv.Restart(t)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	waitUploaded(t, u, 60*time.Second)

	mu.Lock()
	defer mu.Unlock()
	checkRemote(t, store, "load", 1, all)
	deleted = append(deleted, log.Segments()...)
	next := int64(0)
	for _, s := range deleted {
		if s.Base != next {
			t.Fatalf("local log lost offsets %d to %d", next, s.Base-1)
		}
		next = s.Last + 1
	}
}

// TestS3RestartOfTheSPUInTheMiddleOfUploads closes the uploader (the SPU
// stops) while uploads are in flight, and starts a new one.
func TestS3RestartOfTheSPUInTheMiddleOfUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server: not in -short")
	}
	srv := s3test.Start(t)
	store := s3Store(t, srv)
	log := newFakeLog(t)
	var all []upload.Segment
	for range 20 {
		all = append(all, log.roll(t, 20_000, time.Now())) // 2 MB each
	}
	m1, err := upload.New(upload.Config{Store: store, Logger: testLogger(t), BytesPerSecond: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	u, err := m1.Add("mid", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a few uploads", func() bool { return u.Status().RemoteSegments >= 3 })
	m1.Close() // cancels the upload in flight
	first := u.Status().RemoteSegments

	m2 := newManager(t, store, nil)
	u, err = m2.Add("mid", 0, log, upload.Policy{}, true)
	if err != nil {
		t.Fatal(err)
	}
	waitUploaded(t, u, 60*time.Second)
	if first == len(all) {
		t.Log("the first run finished every upload before it was closed")
	}
	checkRemote(t, store, "mid", 0, all)
}

// BenchmarkUpload uploads 64 MiB segments to a local versitygw through the
// Uploader (index, time index, then the segment file, read in place), and,
// as the baseline, Puts the same file through the same Store.
func BenchmarkUpload(b *testing.B) {
	const size = 64 << 20
	srv := s3test.Start(b)
	store := s3Store(b, srv)
	var runs int32
	b.Run("uploader", func(b *testing.B) {
		m := newManager(b, store, func(c *upload.Config) { c.Logger = nil })
		log := newFakeLog(b)
		runs++ // each run uploads to a partition of its own
		u, err := m.Add("bench", runs, log, upload.Policy{}, true)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size / recordBytes * recordBytes)
		for range b.N {
			b.StopTimer()
			s := log.roll(b, size/recordBytes, time.Now())
			b.StartTimer()
			waitFor(b, time.Minute, "the upload", func() bool { return u.Uploaded(s.Base, s.Last) })
			b.StopTimer()
			log.deleteBefore(s.Last + 1)
			b.StartTimer()
		}
	})
	b.Run("raw-put", func(b *testing.B) {
		log := newFakeLog(b)
		s := log.roll(b, size/recordBytes, time.Now())
		f, err := os.Open(log.path(s.Base))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(s.Size)
		for range b.N {
			if _, err := f.Seek(0, 0); err != nil {
				b.Fatal(err)
			}
			if err := store.Put(b.Context(), "raw/bench", f, s.Size); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestS3PurgeTopic purges a topic of more than one listing page from a real
// S3 server, and leaves a topic whose name it prefixes alone.
func TestS3PurgeTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server: not in -short")
	}
	srv := s3test.Start(t)
	store := s3Store(t, srv)
	want := putSegments(t, store, "gone", 2, 180) // 1080 objects: two pages
	keep := putSegments(t, store, "gone-not", 1, 3)
	n, err := upload.PurgeTopic(context.Background(), store, "gone")
	if err != nil || n != want {
		t.Fatalf("PurgeTopic = %d, %v; want %d, nil", n, err, want)
	}
	if left := countUnder(t, store, ""); left != keep {
		t.Fatalf("%d objects left, want the other topic's %d", left, keep)
	}
	if n, err := upload.PurgeTopic(context.Background(), store, "gone"); n != 0 || err != nil {
		t.Fatalf("second PurgeTopic = %d, %v; want 0, nil", n, err)
	}
}
