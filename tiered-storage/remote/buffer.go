package remote

import (
	"sync"
	"sync/atomic"
)

// buffer holds one chunk of a .log object. Chunks of about ChunkBytes come
// from a pool and go back to it when their last reference is released, so
// that a replay neither zeroes nor faults in fresh memory for each chunk:
// the bytes are read straight from the response into a recycled buffer.
// The cache holds one reference while the chunk is cached, and every read
// using it holds one until it is done, so a buffer is never recycled while
// anything can still see it. Nothing outside the Reader ever sees a
// buffer: Read returns a copy of the batches.
type buffer struct {
	b    []byte
	refs atomic.Int32
	pool *bufferPool // nil: not pooled, left to the garbage collector
}

// retain adds a reference.
func (b *buffer) retain() { b.refs.Add(1) }

// release drops a reference; the last one returns the buffer to its pool.
func (b *buffer) release() {
	switch n := b.refs.Add(-1); {
	case n == 0 && b.pool != nil:
		b.pool.put(b)
	case n < 0:
		panic("remote: chunk buffer released more often than retained")
	}
}

// shared is a cached value with references: the cache retains it for
// whoever gets it and releases it when it evicts it.
type shared interface {
	retain()
	release()
	// inUse reports whether more than one reference is held (the cache's
	// and someone else's).
	inUse() bool
}

func (b *buffer) inUse() bool { return b.refs.Load() > 1 }

var _ shared = (*buffer)(nil)

// bufferPool recycles chunk buffers of one size (ChunkBytes). Chunks of at
// most half that size (the tails of objects) are allocated to measure, so
// that a small object does not pin a whole chunk's memory.
type bufferPool struct {
	size int64
	pool sync.Pool // *buffer with cap(b) == size
}

// pools are the buffer pools by chunk size, shared by the Readers of the
// process (a new Reader starts with warm buffers).
var pools sync.Map // int64 -> *bufferPool

// poolFor returns the pool of buffers of size bytes.
func poolFor(size int64) *bufferPool {
	if p, ok := pools.Load(size); ok {
		return p.(*bufferPool)
	}
	p, _ := pools.LoadOrStore(size, newBufferPool(size))
	return p.(*bufferPool)
}

func newBufferPool(size int64) *bufferPool {
	p := &bufferPool{size: size}
	p.pool.New = func() any { return &buffer{b: make([]byte, size), pool: p} }
	return p
}

// get returns a buffer of n bytes, of unspecified content, with one
// reference.
func (p *bufferPool) get(n int64) *buffer {
	var b *buffer
	if n > p.size/2 && n <= p.size {
		b = p.pool.Get().(*buffer)
		b.b = b.b[:n]
	} else {
		b = &buffer{b: make([]byte, n)}
	}
	b.refs.Store(1)
	return b
}

func (p *bufferPool) put(b *buffer) {
	b.b = b.b[:cap(b.b)]
	p.pool.Put(b)
}

// memory is the memory b holds, what the cache counts.
func (b *buffer) memory() int64 { return int64(cap(b.b)) }
