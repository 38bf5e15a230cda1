package commitlog_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
)

// leaderBatches appends count batches to a leader log at epoch 7 and returns
// them as stored, offsets and epochs stamped.
func leaderBatches(t *testing.T, count int) []appended {
	t.Helper()
	leader := open(t, t.TempDir(), testConfig())
	leader.SetLeaderEpoch(7)
	return fill(t, leader, count, 5, 100, 1000)
}

func TestAppendReplicatedKeepsOffsetsAndEpochs(t *testing.T) {
	want := leaderBatches(t, 40) // several segments of 4 KiB
	dir := t.TempDir()
	f := open(t, dir, testConfig())
	f.SetLeaderEpoch(3) // must not be stamped on replicated batches
	for i := 0; i < len(want); {
		// Two batches per call where possible, as a fetch response would.
		n := min(2, len(want)-i)
		var b []byte
		for _, a := range want[i : i+n] {
			b = append(b, a.bytes...)
		}
		last, err := f.AppendReplicated(b)
		if err != nil {
			t.Fatalf("AppendReplicated batch %d: %v", i, err)
		}
		if last != want[i+n-1].last {
			t.Fatalf("AppendReplicated returned last %d, want %d", last, want[i+n-1].last)
		}
		i += n
	}
	checkAll(t, f, want)
	if f.Info().Segments < 2 {
		t.Fatalf("the follower did not roll: %d segments", f.Info().Segments)
	}
	h, _ := batch.ParseHeader(want[0].bytes)
	if h.LeaderEpoch != 7 {
		t.Fatalf("leader epoch %d, want the leader's 7", h.LeaderEpoch)
	}

	// Recovery after reopen finds the same log, and it continues.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = open(t, dir, testConfig())
	checkAll(t, f, want)
	more := appendBatch(t, f, makeBatch(t, 99, 3, 10, 5000))
	if more.base != want[len(want)-1].last+1 {
		t.Fatalf("append after reopen at %d, want %d", more.base, want[len(want)-1].last+1)
	}
	checkAll(t, f, append(slices.Clone(want), more))
}

func TestAppendReplicatedRefusesGapsAndOverlaps(t *testing.T) {
	src := leaderBatches(t, 4) // offsets 0-4, 5-9, 10-14, 15-19
	for _, tc := range []struct {
		name  string
		have  int // batches already replicated
		batch []int
	}{
		{"gap at the start", 0, []int{1}},
		{"overlap at the start", 2, []int{1}},
		{"duplicate of the last batch", 2, []int{1, 2}},
		{"gap inside", 1, []int{1, 3}},
		{"overlap inside", 1, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t, t.TempDir(), testConfig())
			var done []appended
			for _, a := range src[:tc.have] {
				if _, err := f.AppendReplicated(slices.Clone(a.bytes)); err != nil {
					t.Fatal(err)
				}
				done = append(done, a)
			}
			var b []byte
			for _, i := range tc.batch {
				b = append(b, src[i].bytes...)
			}
			size := f.Info().Size
			if _, err := f.AppendReplicated(b); !errors.Is(err, commitlog.ErrNotContiguous) {
				t.Fatalf("AppendReplicated = %v, want ErrNotContiguous", err)
			}
			if f.Info().Size != size {
				t.Fatalf("a refused append changed the size from %d to %d", size, f.Info().Size)
			}
			checkAll(t, f, done)
		})
	}
}

func TestAppendReplicatedRefusesBadBatches(t *testing.T) {
	src := leaderBatches(t, 1)
	f := open(t, t.TempDir(), testConfig())
	bad := slices.Clone(src[0].bytes)
	bad[len(bad)-1] ^= 0xff
	if _, err := f.AppendReplicated(bad); !errors.Is(err, batch.ErrBadCRC) {
		t.Fatalf("AppendReplicated = %v, want ErrBadCRC", err)
	}
	if _, err := f.AppendReplicated(src[0].bytes[:20]); !errors.Is(err, batch.ErrTruncated) {
		t.Fatalf("AppendReplicated = %v, want ErrTruncated", err)
	}
	if f.EndOffset() != 0 {
		t.Fatalf("EndOffset = %d after refused appends", f.EndOffset())
	}
}
