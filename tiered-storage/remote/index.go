package remote

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// The segment indexes, in the commit log's on-disk formats (see package
// data-plane/internal/commitlog): the .index holds 8-byte entries (relative
// offset uint32, byte position uint32), the .timeindex 12-byte entries
// (timestamp int64, relative offset uint32), all big-endian.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// offsetEntry says that the batch of relative base offset rel starts at
// byte pos of the .log object.
type offsetEntry struct {
	rel uint32
	pos uint32
}

// timeEntry says that the segment's max timestamp grew to ts with the
// batch of relative base offset rel.
type timeEntry struct {
	ts  int64
	rel uint32
}

// decodeOffsetIndex decodes an .index object and checks it against its
// segment (size bytes, offsets offsets): entries strictly increasing and in
// range.
func decodeOffsetIndex(b []byte, size, offsets int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("offset index of %d bytes is not a whole number of entries", len(b))
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		p := b[i*offsetEntrySize:]
		e := offsetEntry{rel: binary.BigEndian.Uint32(p), pos: binary.BigEndian.Uint32(p[4:])}
		if int64(e.pos) >= size || int64(e.rel) >= offsets || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
			return nil, fmt.Errorf("offset index entry %d (offset +%d at byte %d) is out of order or out of range", i, e.rel, e.pos)
		}
		es[i] = e
	}
	return es, nil
}

// decodeTimeIndex decodes a .timeindex object and checks it against its
// segment: timestamps and offsets strictly increasing, offsets in range.
func decodeTimeIndex(b []byte, offsets int64) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("time index of %d bytes is not a whole number of entries", len(b))
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		p := b[i*timeEntrySize:]
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(p)), rel: binary.BigEndian.Uint32(p[8:])}
		if int64(e.rel) >= offsets || (i > 0 && (e.ts <= es[i-1].ts || e.rel <= es[i-1].rel)) {
			return nil, fmt.Errorf("time index entry %d (%d ms at offset +%d) is out of order or out of range", i, e.ts, e.rel)
		}
		es[i] = e
	}
	return es, nil
}

// lookupOffset returns the relative offset and position of the last entry
// at or below rel, or 0, 0: where to start walking batch headers.
func lookupOffset(es []offsetEntry, rel uint32) (uint32, int64) {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return 0, 0
	}
	return es[i-1].rel, int64(es[i-1].pos)
}

// lookupTime returns the relative offset from which to walk forward to find
// the first batch whose max timestamp is at least ts: every batch before it
// has a smaller one.
func lookupTime(es []timeEntry, ts int64) uint32 {
	i := sort.Search(len(es), func(i int) bool { return es[i].ts >= ts })
	if i == 0 {
		return 0
	}
	return es[i-1].rel
}
