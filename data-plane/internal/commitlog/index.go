package commitlog

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"sync/atomic"

	"github.com/spatehq/spate/internal/batch"
)

// offsetEntrySize is the size of an entry of the .index file.
const offsetEntrySize = 8

// offsetEntry is an entry of the sparse offset index: the batch whose base
// offset is the segment's base plus rel starts at byte pos of the log file.
type offsetEntry struct {
	rel uint32
	pos uint32
}

func (e offsetEntry) put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], e.rel)
	binary.BigEndian.PutUint32(b[4:], e.pos)
}

func decodeOffsetEntry(b []byte) offsetEntry {
	return offsetEntry{rel: binary.BigEndian.Uint32(b[0:]), pos: binary.BigEndian.Uint32(b[4:])}
}

// decodeOffsetIndex decodes the contents of an .index file and checks it
// against its segment: entries sorted, and within the segment's size and
// offset range.
func decodeOffsetIndex(b []byte, size, offsets int64) ([]offsetEntry, error) {
	if len(b)%offsetEntrySize != 0 {
		return nil, fmt.Errorf("index of %d bytes is not a whole number of entries", len(b))
	}
	es := make([]offsetEntry, len(b)/offsetEntrySize)
	for i := range es {
		e := decodeOffsetEntry(b[i*offsetEntrySize:])
		if int64(e.pos) >= size || int64(e.rel) >= offsets || (i > 0 && (e.rel <= es[i-1].rel || e.pos <= es[i-1].pos)) {
			return nil, fmt.Errorf("index entry %d (offset +%d at %d) is out of order or out of range", i, e.rel, e.pos)
		}
		es[i] = e
	}
	return es, nil
}

// checkIndexTail checks that the offset index of the segment in f (of size
// bytes) is not short: that no batch after its last entry lies interval or
// more bytes after it, which would have had an entry. It reads the headers
// of at most interval bytes.
func checkIndexTail(f *os.File, index []offsetEntry, size, interval int64) error {
	last := int64(0)
	if len(index) > 0 {
		last = int64(index[len(index)-1].pos)
	}
	w := window{f: f, limit: size, chunk: int(min(interval+batch.HeaderSize, 64<<10))}
	for pos := last; pos < size; {
		if pos-last >= interval {
			return fmt.Errorf("index is short: no entry for the batch at %d", pos)
		}
		hb, err := w.peek(pos, batch.HeaderSize)
		if err != nil {
			return err
		}
		h, err := batch.ParseHeader(hb)
		if err != nil {
			return fmt.Errorf("no batch at %d after the last index entry: %w", pos, err)
		}
		pos += int64(h.Size())
	}
	return nil
}

// lookupOffset returns the relative base offset and the position of the last
// indexed batch whose relative base offset is at most rel, or 0, 0, the
// start of the segment.
func lookupOffset(es []offsetEntry, rel uint32) (uint32, int64) {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return 0, 0
	}
	return es[i-1].rel, int64(es[i-1].pos)
}

// entries is a growable slice that one writer appends to while readers load
// it without locks: the writer fills the spare capacity of the current buffer
// and then publishes the new length, or publishes a grown copy. A nil buffer
// means "not loaded" (closed segments load their indexes lazily).
type entries[T any] struct {
	p atomic.Pointer[entryBuf[T]]
}

type entryBuf[T any] struct {
	e []T // len(e) is the capacity; e[:n] is published
	n atomic.Int64
}

// load returns the published entries and whether any are loaded.
func (s *entries[T]) load() ([]T, bool) {
	b := s.p.Load()
	if b == nil {
		return nil, false
	}
	return b.e[:b.n.Load()], true
}

// set publishes es as the whole content.
func (s *entries[T]) set(es []T) {
	b := &entryBuf[T]{e: es}
	b.n.Store(int64(len(es)))
	s.p.Store(b)
}

// drop unloads the entries; the next load reports none loaded.
func (s *entries[T]) drop() { s.p.Store(nil) }

// add appends v. Only one goroutine may add at a time; readers may load
// concurrently.
func (s *entries[T]) add(v T) {
	b := s.p.Load()
	if b == nil {
		b = &entryBuf[T]{e: make([]T, 64)}
		s.p.Store(b)
	}
	n := b.n.Load()
	if int(n) == len(b.e) {
		nb := &entryBuf[T]{e: make([]T, max(2*len(b.e), 64))}
		copy(nb.e, b.e[:n])
		nb.n.Store(n)
		s.p.Store(nb)
		b = nb
	}
	b.e[n] = v
	b.n.Store(n + 1)
}
