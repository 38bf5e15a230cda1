// Package layout names the objects of the remote tier. The names are the
// index: every uploaded segment is an immutable object whose key says which
// partition it belongs to, which offsets and leader epoch it holds and how
// new its newest record is, so listing a partition's prefix is reading its
// remote index. There is no mutable manifest to corrupt or to lose.
//
// # Keys
//
// The object store of a cluster is opened with the prefix
// "<tenant>/<cluster>/" (package objstore's Prefix), so no cluster can name
// another's objects. Below it:
//
//	<topic>/<partition>/<base>-<last>-<epoch>-<maxts>.log        the segment's batches, as on disk
//	<topic>/<partition>/<base>-<last>-<epoch>-<maxts>.index      its sparse offset index
//	<topic>/<partition>/<base>-<last>-<epoch>-<maxts>.timeindex  its time index
//
// base and last are the first and last offsets of the segment, 20 decimal
// digits with leading zeros so that the byte order of keys is offset order;
// epoch is the leader epoch of the segment's last batch (10 digits);
// maxts is the largest record timestamp in the segment, in Unix
// milliseconds (13+ digits, leading zeros to 16), so that a consume by
// timestamp finds its segment from the listing alone. partition is decimal
// without padding (a partition's objects share one prefix).
//
// A segment counts as remote once its .log object exists (it is uploaded
// last, after the indexes). Two objects for overlapping offsets can exist
// after a leader change (an upload by the old leader and one by the new);
// Index keeps, for each offset, the object of the highest epoch.
package layout

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Suffixes of a segment's objects.
const (
	LogSuffix       = ".log"
	IndexSuffix     = ".index"
	TimeIndexSuffix = ".timeindex"
)

// Segment is one uploaded segment of a partition.
type Segment struct {
	Topic     string
	Partition int32
	// Base and Last are the first and last offsets in the segment.
	Base, Last int64
	// Epoch is the leader epoch of the segment's last batch.
	Epoch int32
	// MaxTimestamp is the largest record timestamp, Unix milliseconds.
	MaxTimestamp int64
	// Size is the .log object's size in bytes (from the listing; zero
	// when the Segment was made, not listed).
	Size int64
}

// PartitionPrefix is the key prefix of a partition's objects.
func PartitionPrefix(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition)) + "/"
}

// stem is the key without its suffix.
func (s Segment) stem() string {
	return fmt.Sprintf("%s%020d-%020d-%010d-%016d", PartitionPrefix(s.Topic, s.Partition), s.Base, s.Last, s.Epoch, s.MaxTimestamp)
}

// Key returns the key of the segment's object with the given suffix.
func (s Segment) Key(suffix string) string { return s.stem() + suffix }

// Parse reads a key made by Key. ok is false for a key that is not a
// segment object of this layout (which callers skip, so that other tools'
// objects under the prefix do no harm).
func Parse(key string) (s Segment, suffix string, ok bool) {
	for _, suf := range []string{LogSuffix, IndexSuffix, TimeIndexSuffix} {
		if strings.HasSuffix(key, suf) {
			suffix = suf
			break
		}
	}
	if suffix == "" {
		return Segment{}, "", false
	}
	rest := strings.TrimSuffix(key, suffix)
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Segment{}, "", false
	}
	dir, name := rest[:i], rest[i+1:]
	j := strings.LastIndexByte(dir, '/')
	if j < 0 {
		return Segment{}, "", false
	}
	s.Topic = dir[:j]
	p, err := strconv.ParseInt(dir[j+1:], 10, 32)
	if err != nil || p < 0 || s.Topic == "" {
		return Segment{}, "", false
	}
	s.Partition = int32(p)
	f := strings.Split(name, "-")
	if len(f) != 4 || len(f[0]) != 20 || len(f[1]) != 20 || len(f[2]) != 10 || len(f[3]) != 16 {
		return Segment{}, "", false
	}
	var errs [4]error
	s.Base, errs[0] = strconv.ParseInt(f[0], 10, 64)
	s.Last, errs[1] = strconv.ParseInt(f[1], 10, 64)
	e, err2 := strconv.ParseInt(f[2], 10, 32)
	errs[2] = err2
	s.MaxTimestamp, errs[3] = strconv.ParseInt(f[3], 10, 64)
	for _, err := range errs {
		if err != nil {
			return Segment{}, "", false
		}
	}
	s.Epoch = int32(e)
	if s.Base < 0 || s.Last < s.Base || s.Epoch < 0 {
		return Segment{}, "", false
	}
	return s, suffix, true
}

// Index is a partition's remote segments, from a listing: ordered by base
// offset, without overlaps (of overlapping segments the one of the higher
// epoch wins, then the longer one).
type Index struct {
	Segments []Segment
}

// NewIndex builds the index of the .log objects among segs (other
// suffixes are ignored by the caller).
func NewIndex(segs []Segment) Index {
	sorted := append([]Segment(nil), segs...)
	sort.Slice(sorted, func(a, b int) bool {
		x, y := sorted[a], sorted[b]
		if x.Epoch != y.Epoch {
			return x.Epoch > y.Epoch
		}
		return x.Last-x.Base > y.Last-y.Base
	})
	// Keep a segment only where no preferred one covers it.
	var kept []Segment
	for _, s := range sorted {
		overlaps := false
		for _, k := range kept {
			if s.Base <= k.Last && k.Base <= s.Last {
				overlaps = true
				break
			}
		}
		if !overlaps {
			kept = append(kept, s)
		}
	}
	sort.Slice(kept, func(a, b int) bool { return kept[a].Base < kept[b].Base })
	return Index{Segments: kept}
}

// Start is the first offset held remotely, or -1 when nothing is.
func (x Index) Start() int64 {
	if len(x.Segments) == 0 {
		return -1
	}
	return x.Segments[0].Base
}

// End is one past the last offset held remotely, or -1 when nothing is.
func (x Index) End() int64 {
	if len(x.Segments) == 0 {
		return -1
	}
	return x.Segments[len(x.Segments)-1].Last + 1
}

// Find returns the position of the segment holding offset, or of the first
// segment after it (a gap), and whether there is one.
func (x Index) Find(offset int64) (int, bool) {
	i := sort.Search(len(x.Segments), func(i int) bool { return x.Segments[i].Last >= offset })
	return i, i < len(x.Segments)
}

// FindTimestamp returns the position of the first segment whose newest
// record is at or after ts (Unix ms), and whether there is one.
func (x Index) FindTimestamp(ts int64) (int, bool) {
	for i, s := range x.Segments {
		if s.MaxTimestamp >= ts {
			return i, true
		}
	}
	return len(x.Segments), false
}

// Size is the bytes of the remote .log objects.
func (x Index) Size() int64 {
	var n int64
	for _, s := range x.Segments {
		n += s.Size
	}
	return n
}
