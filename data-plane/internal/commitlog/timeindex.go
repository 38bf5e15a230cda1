package commitlog

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// timeEntrySize is the size of an entry of the .timeindex file.
const timeEntrySize = 12

// timeEntry is an entry of the time index: the segment's max timestamp grew
// to ts with the batch whose base offset is the segment's base plus rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

func (e timeEntry) put(b []byte) {
	binary.BigEndian.PutUint64(b[0:], uint64(e.ts))
	binary.BigEndian.PutUint32(b[8:], e.rel)
}

func decodeTimeEntry(b []byte) timeEntry {
	return timeEntry{ts: int64(binary.BigEndian.Uint64(b[0:])), rel: binary.BigEndian.Uint32(b[8:])}
}

// decodeTimeIndex decodes the contents of a .timeindex file and checks it
// against its segment: timestamps and offsets strictly increasing, offsets
// within the segment, and at least one entry if the segment is not empty.
func decodeTimeIndex(b []byte, offsets int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index of %d bytes is not a whole number of entries", len(b))
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		e := decodeTimeEntry(b[i*timeEntrySize:])
		if int64(e.rel) >= offsets || (i > 0 && (e.ts <= es[i-1].ts || e.rel <= es[i-1].rel)) {
			return nil, fmt.Errorf("time index entry %d (%d ms at offset +%d) is out of order or out of range", i, e.ts, e.rel)
		}
		es[i] = e
	}
	if len(es) == 0 && offsets > 0 {
		return nil, fmt.Errorf("time index of a segment of %d offsets is empty", offsets)
	}
	return es, nil
}

// lookupTime returns the relative offset of a batch from which to walk
// forward to find the first batch whose max timestamp is at least ts: every
// batch before it has a smaller max timestamp.
func lookupTime(es []timeEntry, ts int64) uint32 {
	// es[i] is the first entry at or above ts; es[i-1] is below ts, and so
	// is every batch up to es[i-1]'s batch.
	i := sort.Search(len(es), func(i int) bool { return es[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return es[i-1].rel
}
