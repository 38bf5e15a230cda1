package remote_test

import (
	"testing"
	"time"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
	"github.com/spatehq/spate/tiered-storage/remote"
)

// yearSegments is the number of remote segments of the year-back
// benchmark: one every 3 hours for 375 days.
const yearSegments = 3000

// BenchmarkYearBack measures the time to the first record of a consume
// that starts a year back, by timestamp, in a partition of 3000 remote
// segments (tiny objects: the cost is in the requests, not the bytes), on
// a local folder and on versitygw: "cold" with a new Reader (listing the
// partition included), "listed" with the listing cached and nothing else.
// The cold replay benchmark (records/s and MB/s against raw GETs) is
// BenchmarkRemoteColdReplay in data-plane/internal/service.
func BenchmarkYearBack(b *testing.B) {
	b.Run("local", func(b *testing.B) { benchYearBack(b, newLocal(b)) })
	b.Run("s3", func(b *testing.B) {
		srv := s3test.Start(b)
		s, err := s3.New(b.Context(), srv.Config())
		if err != nil {
			b.Fatal(err)
		}
		benchYearBack(b, s)
	})
}

func benchYearBack(b *testing.B, store objstore.Store) {
	now := time.Now()
	step := 3 * time.Hour
	ts0 := now.Add(-yearSegments * step).UnixMilli()
	putTiny(b, store, "t", yearSegments, 10, ts0, step.Milliseconds())
	yearAgo := now.AddDate(-1, 0, 0).UnixMilli()
	first := func(r *remote.Reader) {
		off, found, err := r.OffsetForTimestamp(b.Context(), "t", 0, yearAgo)
		if err != nil || !found {
			b.Fatalf("OffsetForTimestamp = %d %v %v", off, found, err)
		}
		data, _, err := r.Read(b.Context(), "t", 0, off, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := batch.DecodeAll(data, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			r := remote.NewReader(store)
			first(r)
			b.StopTimer()
			r.Close()
			b.StartTimer()
		}
	})
	b.Run("listed", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			r := remote.NewReader(store)
			if _, _, err := r.Start(b.Context(), "t", 0); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			first(r)
			b.StopTimer()
			r.Close()
			b.StartTimer()
		}
	})
}
