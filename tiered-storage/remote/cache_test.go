package remote

import (
	"encoding/binary"
	"testing"
)

func TestCacheEvictsLeastRecentlyUsedWithinItsBound(t *testing.T) {
	c := newCache(100)
	c.add("a", 1, 40)
	c.add("b", 2, 40)
	c.get("a") // b is now the least recently used
	c.add("c", 3, 40)
	if c.contains("b") || !c.contains("a") || !c.contains("c") {
		t.Fatalf("after eviction: a %v b %v c %v, want a and c", c.contains("a"), c.contains("b"), c.contains("c"))
	}
	if c.bytes() != 80 {
		t.Fatalf("bytes %d, want 80", c.bytes())
	}
	c.add("huge", 4, 101)
	if c.contains("huge") || c.bytes() != 80 {
		t.Fatal("a value larger than the bound was kept")
	}
	c.add("a", 5, 40) // already there: kept, not counted twice
	if v, _ := c.get("a"); v != 1 || c.bytes() != 80 {
		t.Fatalf("re-adding a key: value %v, bytes %d", v, c.bytes())
	}
}

func TestIndexDecodingChecksEntries(t *testing.T) {
	entry := func(rel, pos uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, rel), pos)
	}
	good := append(entry(3, 100), entry(9, 700)...)
	es, err := decodeOffsetIndex(good, 1000, 20)
	if err != nil || len(es) != 2 {
		t.Fatalf("decode = %v, %v", es, err)
	}
	if rel, pos := lookupOffset(es, 8); rel != 3 || pos != 100 {
		t.Fatalf("lookup(8) = %d %d", rel, pos)
	}
	if rel, pos := lookupOffset(es, 2); rel != 0 || pos != 0 {
		t.Fatalf("lookup(2) = %d %d", rel, pos)
	}
	for name, b := range map[string][]byte{
		"partial entry":      good[:11],
		"out of order":       append(entry(9, 700), entry(3, 100)...),
		"position past size": entry(3, 1000),
		"offset past last":   entry(20, 10),
	} {
		if _, err := decodeOffsetIndex(b, 1000, 20); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	tentry := func(ts int64, rel uint32) []byte {
		return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, uint64(ts)), rel)
	}
	times, err := decodeTimeIndex(append(tentry(50, 0), tentry(80, 5)...), 10)
	if err != nil {
		t.Fatal(err)
	}
	if lookupTime(times, 60) != 0 || lookupTime(times, 81) != 5 || lookupTime(times, 10) != 0 {
		t.Fatal("lookupTime")
	}
	if _, err := decodeTimeIndex(append(tentry(80, 0), tentry(50, 5)...), 10); err == nil {
		t.Fatal("decoded a time index with a falling timestamp")
	}
}

// FuzzIndexDecoding checks that no .index or .timeindex object, however
// damaged, makes the decoders panic or accept entries outside the segment.
func FuzzIndexDecoding(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 9}, int64(100), int64(10))
	f.Add(make([]byte, 24), int64(1), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, size, offsets int64) {
		if es, err := decodeOffsetIndex(b, size, offsets); err == nil {
			for _, e := range es {
				if int64(e.pos) >= size || int64(e.rel) >= offsets {
					t.Fatalf("accepted %+v for a segment of %d bytes, %d offsets", e, size, offsets)
				}
			}
		}
		if es, err := decodeTimeIndex(b, offsets); err == nil {
			for _, e := range es {
				if int64(e.rel) >= offsets {
					t.Fatalf("accepted %+v for %d offsets", e, offsets)
				}
			}
		}
	})
}

// A pooled chunk buffer goes back to its pool only once the cache has let
// go of it and every reader using it has released it.
func TestCacheHoldsReferencesToSharedValues(t *testing.T) {
	p := newBufferPool(1024)
	c := newCache(2048)
	a := p.get(1000) // one reference: ours
	a.retain()       // the cache's
	c.add("a", a, a.memory())
	v, ok := c.get("a") // a reader's
	if !ok || v.(*buffer) != a || a.refs.Load() != 3 {
		t.Fatalf("get: %v %v, %d references, want 3", v, ok, a.refs.Load())
	}
	a.release() // ours
	c.add("b", p.get(1000), 1024)
	c.add("c", p.get(1000), 1024) // evicts a
	if c.contains("a") || a.refs.Load() != 1 {
		t.Fatalf("after eviction: cached %v, %d references, want 1 (the reader's)", c.contains("a"), a.refs.Load())
	}
	a.release()
	if n := a.refs.Load(); n != 0 {
		t.Fatalf("%d references left", n)
	}
	dup := p.get(1000)
	c.add("b", dup, 1024) // already cached: the cache drops the new value's reference
	if n := dup.refs.Load(); n != 0 {
		t.Fatalf("a value not stored keeps %d references", n)
	}
	small := p.get(100) // a tail chunk: not pooled, counted at its size
	if small.pool != nil || small.memory() != 100 {
		t.Fatalf("a 100-byte chunk: pooled %v, memory %d", small.pool != nil, small.memory())
	}
	c.purge()
	if c.bytes() != 0 {
		t.Fatalf("after purge: %d bytes", c.bytes())
	}
}
