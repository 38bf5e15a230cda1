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
// last, after the indexes). Objects for overlapping offsets can exist after
// a leader change (an upload by the old leader and one by the new, or a new
// leader's upload that begins inside a batch straddling the remote end);
// [NewIndex] resolves them deterministically into a chain without gaps or
// repeats, preferring higher epochs, and names the objects it does not
// need (Index.Shadowed), which the leader's uploader deletes.
package layout

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
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

// TopicPrefix is the key prefix of a topic's objects (all its partitions).
func TopicPrefix(topic string) string { return topic + "/" }

// PartitionPrefix is the key prefix of a partition's objects.
func PartitionPrefix(topic string, partition int32) string {
	return TopicPrefix(topic) + strconv.Itoa(int(partition)) + "/"
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

// Index is a partition's remote segments, from a listing, as readers use
// them: Segments is a chain ordered by base offset in which both the base
// and the last offsets strictly increase, and every offset of the listed
// segments is in the chain (a gap in the chain is a gap in the listing).
//
// Segments of a listing may overlap: after a leader change, the new
// leader's upload may begin inside a batch that straddles the remote end,
// or (objects of older versions, or a zombie leader) repeat offsets that
// are remote already. NewIndex resolves overlaps deterministically, the
// same way on every SPU whatever the order of its input:
//
//  1. Segments are taken in order of preference (higher epoch, then more
//     offsets, then lower base, then newer timestamp, then larger), and
//     each is kept when it holds an offset that no segment kept before
//     holds.
//  2. A kept segment whose offsets lie within another kept segment's is
//     dropped (a reader reads an object from an offset to its end, so it
//     would read the inner one's offsets from the outer one anyway).
//  3. While a segment is covered by its neighbours in the chain, the
//     least preferred such segment is dropped.
//
// Segments that are not in the chain are Shadowed: every one of their
// offsets is held by the chain, so no reader needs them, and the leader
// deletes them after a grace period. Where two segments of the chain
// overlap, a reader that reads the lower one to its end goes on in the
// next from the offset after it (in the batch holding that offset, whose
// records below it the consumer skips), so no offset is missing or
// repeated.
type Index struct {
	Segments []Segment
	// Shadowed are the listed segments that the chain does not use,
	// ordered by base offset then key.
	Shadowed []Segment
}

// prefer reports whether segment a is preferred to b where they overlap.
// It is a total order on distinct keys.
func prefer(a, b Segment) bool {
	if a.Epoch != b.Epoch {
		return a.Epoch > b.Epoch
	}
	if la, lb := a.Last-a.Base, b.Last-b.Base; la != lb {
		return la > lb
	}
	if a.Base != b.Base {
		return a.Base < b.Base
	}
	if a.MaxTimestamp != b.MaxTimestamp {
		return a.MaxTimestamp > b.MaxTimestamp
	}
	return a.Size > b.Size
}

// NewIndex builds the index of the .log objects among segs (other
// suffixes are ignored by the caller). It takes O(n log n) time.
func NewIndex(segs []Segment) Index {
	// The usual listing: in key order (by base) and without overlaps,
	// in linear time.
	if disjoint(segs) {
		return Index{Segments: slices.Clone(segs)}
	}
	sorted := slices.Clone(segs)
	slices.SortFunc(sorted, byBaseLongerFirst)
	if disjoint(sorted) {
		return Index{Segments: sorted}
	}

	// 1. Keep, in order of preference, the segments that add offsets.
	slices.SortFunc(sorted, func(a, b Segment) int {
		switch {
		case prefer(a, b):
			return -1
		case prefer(b, a):
			return 1
		}
		return 0
	})
	var cov coverage
	kept := make([]Segment, 0, len(sorted))
	var shadowed []Segment
	for _, s := range sorted {
		if cov.add(s.Base, s.Last) {
			kept = append(kept, s)
		} else {
			shadowed = append(shadowed, s)
		}
	}
	// 2. Drop the kept segments that lie within another kept one: in
	// order of base, the longer first, a segment is within an earlier
	// one exactly when its last offset is not past every earlier one's.
	slices.SortFunc(kept, byBaseLongerFirst)
	chain := make([]Segment, 0, len(kept))
	for _, s := range kept {
		if len(chain) > 0 && s.Last <= chain[len(chain)-1].Last {
			shadowed = append(shadowed, s)
			continue
		}
		chain = append(chain, s)
	}
	// 3. Drop the segments of the chain that their neighbours cover,
	// the least preferred first.
	chain, shadowed = dropCovered(chain, shadowed)
	slices.SortFunc(shadowed, func(a, b Segment) int { // key order
		return cmp.Or(cmp.Compare(a.Base, b.Base), cmp.Compare(a.Last, b.Last), cmp.Compare(a.Epoch, b.Epoch), cmp.Compare(a.MaxTimestamp, b.MaxTimestamp))
	})
	return Index{Segments: chain, Shadowed: shadowed}
}

// disjoint reports whether segs are ordered by base offset without
// overlaps.
func disjoint(segs []Segment) bool {
	for i := 1; i < len(segs); i++ {
		if segs[i].Base <= segs[i-1].Last {
			return false
		}
	}
	return true
}

// byBaseLongerFirst orders segments by base offset, then the longer first.
func byBaseLongerFirst(a, b Segment) int {
	return cmp.Or(cmp.Compare(a.Base, b.Base), cmp.Compare(b.Last, a.Last))
}

// dropCovered drops from chain, one at a time, the least preferred of the
// segments whose neighbours in the chain cover them, until none is left,
// and appends them to shadowed.
func dropCovered(chain, shadowed []Segment) ([]Segment, []Segment) {
	n := len(chain)
	prev, next := make([]int, n), make([]int, n)
	for i := range chain {
		prev[i], next[i] = i-1, i+1
	}
	gone := make([]bool, n)
	covered := func(i int) bool {
		return !gone[i] && prev[i] >= 0 && next[i] < n && chain[prev[i]].Last+1 >= chain[next[i]].Base
	}
	h := &dropHeap{chain: chain}
	for i := range chain {
		if covered(i) {
			h.idx = append(h.idx, i)
		}
	}
	if len(h.idx) == 0 {
		return chain, shadowed
	}
	heap.Init(h)
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		if !covered(i) {
			continue // a neighbour went since it was pushed
		}
		gone[i] = true
		shadowed = append(shadowed, chain[i])
		p, q := prev[i], next[i]
		next[p], prev[q] = q, p
		for _, j := range []int{p, q} {
			if covered(j) {
				heap.Push(h, j)
			}
		}
	}
	kept := make([]Segment, 0, len(chain))
	for i, s := range chain {
		if !gone[i] {
			kept = append(kept, s)
		}
	}
	return kept, shadowed
}

// dropHeap orders positions of chain least preferred first.
type dropHeap struct {
	chain []Segment
	idx   []int
}

func (h *dropHeap) Len() int           { return len(h.idx) }
func (h *dropHeap) Less(a, b int) bool { return prefer(h.chain[h.idx[b]], h.chain[h.idx[a]]) }
func (h *dropHeap) Swap(a, b int)      { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *dropHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *dropHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

// coverage is a set of offsets: disjoint, non-adjacent ranges ordered by
// their first offset.
type coverage struct{ r [][2]int64 }

// add adds the offsets base to last and reports whether any of them was
// not in the set.
func (c *coverage) add(base, last int64) bool {
	// i: the first range that ends at or after base-1 (adjacent or
	// overlapping ranges merge).
	i := sort.Search(len(c.r), func(i int) bool { return c.r[i][1] >= base-1 })
	if i < len(c.r) && c.r[i][0] <= base && c.r[i][1] >= last {
		return false
	}
	// Merge every range that overlaps or touches [base, last].
	j := i
	lo, hi := base, last
	for j < len(c.r) && c.r[j][0] <= last+1 {
		lo, hi = min(lo, c.r[j][0]), max(hi, c.r[j][1])
		j++
	}
	if j == i {
		c.r = slices.Insert(c.r, i, [2]int64{lo, hi})
	} else {
		c.r[i] = [2]int64{lo, hi}
		c.r = slices.Delete(c.r, i+1, j)
	}
	return true
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
