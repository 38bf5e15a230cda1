package layout_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/spatehq/spate/tiered-storage/layout"
)

// readAll reads the index as a reader does: from its start, each segment
// from the offset asked for to its end, then the next offset from the
// segment that Find gives. It returns, for each offset served, the segment
// that served it, and fails on a gap that the listing does not have.
func readAll(t *testing.T, x layout.Index, listed []layout.Segment) map[int64]layout.Segment {
	t.Helper()
	served := map[int64]layout.Segment{}
	if len(x.Segments) == 0 {
		return served
	}
	for off := x.Start(); off < x.End(); {
		i, ok := x.Find(off)
		if !ok {
			t.Fatalf("Find(%d) found nothing below the end %d", off, x.End())
		}
		s := x.Segments[i]
		if s.Base > off {
			if held(listed, off) {
				t.Fatalf("offset %d is listed but the index has a gap there: %+v", off, x.Segments)
			}
			off = s.Base
			continue
		}
		for o := off; o <= s.Last; o++ {
			if _, dup := served[o]; dup {
				t.Fatalf("offset %d served twice", o)
			}
			served[o] = s
		}
		off = s.Last + 1
	}
	return served
}

func held(segs []layout.Segment, off int64) bool {
	for _, s := range segs {
		if s.Base <= off && off <= s.Last {
			return true
		}
	}
	return false
}

// checkIndex checks what every index must satisfy: a chain of strictly
// increasing bases and last offsets, every listed offset served once, and
// every listed segment either in the chain or shadowed (wholly held by
// the chain).
func checkIndex(t *testing.T, listed []layout.Segment) layout.Index {
	t.Helper()
	x := layout.NewIndex(listed)
	for i := 1; i < len(x.Segments); i++ {
		a, b := x.Segments[i-1], x.Segments[i]
		if b.Base <= a.Base || b.Last <= a.Last {
			t.Fatalf("not a chain at %d: %+v", i, x.Segments)
		}
	}
	served := readAll(t, x, listed)
	for _, s := range listed {
		for o := s.Base; o <= s.Last; o++ {
			if _, ok := served[o]; !ok {
				t.Fatalf("listed offset %d (segment %+v) is not served by %+v", o, s, x.Segments)
			}
		}
	}
	if len(x.Segments)+len(x.Shadowed) != len(listed) {
		t.Fatalf("%d in the chain + %d shadowed, %d listed", len(x.Segments), len(x.Shadowed), len(listed))
	}
	for _, s := range x.Shadowed {
		if slices.Contains(x.Segments, s) {
			t.Fatalf("%+v both in the chain and shadowed", s)
		}
	}
	return x
}

func ranges(segs []layout.Segment) string {
	out := ""
	for _, s := range segs {
		out += fmt.Sprintf("[%d-%d e%d]", s.Base, s.Last, s.Epoch)
	}
	return out
}

func TestIndexResolvesOverlapsWithoutGapsOrRepeats(t *testing.T) {
	for _, tc := range []struct {
		name           string
		listed         []layout.Segment
		chain, shadows string
	}{
		{
			name:   "disjoint",
			listed: []layout.Segment{{Base: 100, Last: 199, Epoch: 1}, {Base: 0, Last: 99, Epoch: 1}},
			chain:  "[0-99 e1][100-199 e1]",
		},
		{
			// A new leader's tail upload begins inside the batch
			// (195-204) that straddles the remote end 200.
			name:   "a tail from a batch straddling the remote end",
			listed: []layout.Segment{{Base: 0, Last: 99, Epoch: 1}, {Base: 100, Last: 199, Epoch: 1}, {Base: 195, Last: 300, Epoch: 2}},
			chain:  "[0-99 e1][100-199 e1][195-300 e2]",
		},
		{
			// The same, uploaded as a whole segment of the new leader
			// (what uploaders did before tails could start inside a
			// batch): the higher epoch used to drop 100-199 and leave a
			// gap at 100-149.
			name:    "a whole segment over the remote end",
			listed:  []layout.Segment{{Base: 0, Last: 99, Epoch: 1}, {Base: 100, Last: 199, Epoch: 1}, {Base: 150, Last: 300, Epoch: 2}},
			chain:   "[0-99 e1][100-199 e1][150-300 e2]",
			shadows: "",
		},
		{
			name:    "the same offsets under a lower epoch",
			listed:  []layout.Segment{{Base: 0, Last: 99, Epoch: 1}, {Base: 100, Last: 199, Epoch: 1}, {Base: 100, Last: 149, Epoch: 2}, {Base: 150, Last: 249, Epoch: 2}},
			chain:   "[0-99 e1][100-149 e2][150-249 e2]",
			shadows: "[100-199 e1]",
		},
		{
			name:    "wholly covered by others of the same epoch",
			listed:  []layout.Segment{{Base: 0, Last: 99, Epoch: 1}, {Base: 50, Last: 149, Epoch: 1}, {Base: 100, Last: 199, Epoch: 1}},
			chain:   "[0-99 e1][100-199 e1]",
			shadows: "[50-149 e1]",
		},
		{
			// A higher epoch inside a longer lower-epoch segment that is
			// needed for its other offsets: a reader reads the outer one
			// to its end, so the inner one is not used.
			name:    "inside a needed segment",
			listed:  []layout.Segment{{Base: 0, Last: 199, Epoch: 1}, {Base: 50, Last: 99, Epoch: 2}},
			chain:   "[0-199 e1]",
			shadows: "[50-99 e2]",
		},
		{
			name:   "a gap stays a gap",
			listed: []layout.Segment{{Base: 0, Last: 99, Epoch: 1}, {Base: 90, Last: 120, Epoch: 2}, {Base: 300, Last: 399, Epoch: 2}},
			chain:  "[0-99 e1][90-120 e2][300-399 e2]",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := checkIndex(t, tc.listed)
			if got := ranges(x.Segments); got != tc.chain {
				t.Errorf("chain %s, want %s", got, tc.chain)
			}
			if got := ranges(x.Shadowed); got != tc.shadows {
				t.Errorf("shadowed %s, want %s", got, tc.shadows)
			}
		})
	}
}

func TestIndexOfRandomListingsIsAGaplessChainWhateverTheOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for round := range 2000 {
		n := 1 + rng.IntN(12)
		listed := make([]layout.Segment, 0, n)
		seen := map[string]bool{}
		for range n {
			base := rng.Int64N(200)
			s := layout.Segment{Base: base, Last: base + rng.Int64N(60), Epoch: rng.Int32N(4), MaxTimestamp: rng.Int64N(3)}
			if k := s.Key(layout.LogSuffix); !seen[k] { // a listing has distinct keys
				seen[k] = true
				listed = append(listed, s)
			}
		}
		x := checkIndex(t, listed)
		for range 3 {
			rng.Shuffle(len(listed), func(i, j int) { listed[i], listed[j] = listed[j], listed[i] })
			y := layout.NewIndex(listed)
			if !slices.Equal(x.Segments, y.Segments) || !slices.Equal(x.Shadowed, y.Shadowed) {
				t.Fatalf("round %d: the index depends on the order of the listing:\n%s / %s\n%s / %s", round,
					ranges(x.Segments), ranges(x.Shadowed), ranges(y.Segments), ranges(y.Shadowed))
			}
		}
	}
}

// BenchmarkNewIndex builds the index of a partition of 10,000 segments,
// without overlaps and with one overlapping upload every 100 segments (a
// leader change each time).
func BenchmarkNewIndex(b *testing.B) {
	for _, overlaps := range []bool{false, true} {
		var segs []layout.Segment
		for i := range int64(10_000) {
			segs = append(segs, layout.Segment{Base: i * 100, Last: i*100 + 99, Epoch: int32(i / 100)})
			if overlaps && i%100 == 99 {
				segs = append(segs, layout.Segment{Base: i*100 + 95, Last: i*100 + 150, Epoch: int32(i/100) + 1})
			}
		}
		b.Run(fmt.Sprintf("overlaps=%v", overlaps), func(b *testing.B) {
			for b.Loop() {
				layout.NewIndex(segs)
			}
		})
	}
}
