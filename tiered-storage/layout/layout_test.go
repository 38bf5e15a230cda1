package layout_test

import (
	"sort"
	"testing"

	"github.com/spatehq/spate/tiered-storage/layout"
)

func TestKeysParseBackAndSortInOffsetOrder(t *testing.T) {
	segs := []layout.Segment{
		{Topic: "events", Partition: 3, Base: 0, Last: 999, Epoch: 1, MaxTimestamp: 1_700_000_000_000},
		{Topic: "events", Partition: 3, Base: 1000, Last: 1999, Epoch: 1, MaxTimestamp: 1_700_000_100_000},
		{Topic: "events", Partition: 3, Base: 10_000_000_000, Last: 10_000_000_999, Epoch: 12, MaxTimestamp: 1_800_000_000_000},
	}
	var keys []string
	for _, s := range segs {
		for _, suf := range []string{layout.LogSuffix, layout.IndexSuffix, layout.TimeIndexSuffix} {
			k := s.Key(suf)
			got, gotSuf, ok := layout.Parse(k)
			if !ok || got != s || gotSuf != suf {
				t.Fatalf("Parse(%q) = %+v %q %v, want %+v %q", k, got, gotSuf, ok, s, suf)
			}
		}
		keys = append(keys, s.Key(layout.LogSuffix))
	}
	if !sort.StringsAreSorted(keys) {
		t.Fatalf("keys are not in offset order: %v", keys)
	}
}

func TestParseSkipsForeignKeys(t *testing.T) {
	for _, k := range []string{
		"", "events", "events/3/readme.txt", "events/x/00000000000000000000-00000000000000000009-0000000001-0000000000000001.log",
		"events/3/0-9-1-1.log", "events/3/00000000000000000009-00000000000000000000-0000000001-0000000000000001.log",
	} {
		if s, _, ok := layout.Parse(k); ok {
			t.Errorf("Parse(%q) = %+v, want not a segment", k, s)
		}
	}
}

func TestIndexPrefersTheHigherEpochWhereSegmentsOverlap(t *testing.T) {
	x := layout.NewIndex([]layout.Segment{
		{Base: 0, Last: 99, Epoch: 1, MaxTimestamp: 10},
		{Base: 100, Last: 199, Epoch: 1, MaxTimestamp: 20}, // the old leader's
		{Base: 100, Last: 149, Epoch: 2, MaxTimestamp: 15}, // the new leader's, after failover
		{Base: 150, Last: 249, Epoch: 2, MaxTimestamp: 30},
	})
	want := []int64{0, 100, 150}
	if len(x.Segments) != len(want) {
		t.Fatalf("index %+v", x.Segments)
	}
	for i, s := range x.Segments {
		if s.Base != want[i] {
			t.Fatalf("index %+v, want bases %v", x.Segments, want)
		}
	}
	if x.Start() != 0 || x.End() != 250 {
		t.Fatalf("start %d end %d", x.Start(), x.End())
	}
	if i, ok := x.Find(120); !ok || x.Segments[i].Base != 100 {
		t.Fatalf("Find(120) = %d %v", i, ok)
	}
	if _, ok := x.Find(250); ok {
		t.Fatal("Find past the end found a segment")
	}
	if i, ok := x.FindTimestamp(16); !ok || x.Segments[i].Base != 150 {
		t.Fatalf("FindTimestamp(16) = %d %v", i, ok)
	}
}
