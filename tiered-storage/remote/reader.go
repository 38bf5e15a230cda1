package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
)

// Defaults of the options.
const (
	// DefaultCacheBytes is the default bound of the cache: 256 MiB.
	DefaultCacheBytes = 256 << 20
	// DefaultChunkBytes is the default size of the ranged GETs of .log
	// objects: 8 MiB (S3 servers have a per-request cost: fewer, larger
	// ranges reach their raw throughput).
	DefaultChunkBytes = 8 << 20
	// DefaultReadAhead is the default number of chunks fetched ahead.
	DefaultReadAhead = 2
	// DefaultMaxReadAheads is the default bound on read-ahead GETs in
	// flight, over all partitions.
	DefaultMaxReadAheads = 8
	// DefaultIndexTTL is the default age after which a partition's remote
	// index is listed again in full.
	DefaultIndexTTL = 30 * time.Second
	// relistInterval is the shortest time between two listings of a
	// partition asked for by offsets past the remote end, after one that
	// found nothing new.
	relistInterval = time.Second
	// readAheadTimeout bounds one read-ahead GET.
	readAheadTimeout = time.Minute
)

// Option configures a Reader.
type Option func(*options)

type options struct {
	cacheBytes    int64
	chunkBytes    int64
	readAhead     int
	maxReadAheads int
	indexTTL      time.Duration
	reg           prometheus.Registerer
	logger        *slog.Logger
	tiered        func(topic string, partition int32) bool
}

// WithCacheBytes bounds the bytes of chunks and indexes the Reader keeps in
// memory (default DefaultCacheBytes). A chunk larger than the bound is
// served but not kept; a chunk that a sequential read has read to its end
// is dropped at once (see the package documentation).
func WithCacheBytes(n int64) Option { return func(o *options) { o.cacheBytes = n } }

// WithChunkBytes sets the size of the ranged GETs of .log objects (default
// DefaultChunkBytes): larger chunks mean fewer requests, smaller ones a
// faster first record.
func WithChunkBytes(n int64) Option { return func(o *options) { o.chunkBytes = n } }

// WithReadAhead sets how many chunks past the last one read are fetched in
// the background (default DefaultReadAhead; 0 turns read-ahead off), and how
// many such GETs may be in flight over all partitions (default
// DefaultMaxReadAheads).
func WithReadAhead(chunks, maxInFlight int) Option {
	return func(o *options) { o.readAhead, o.maxReadAheads = chunks, maxInFlight }
}

// WithIndexTTL sets the age after which a partition's listing is taken
// again in full (default DefaultIndexTTL).
func WithIndexTTL(d time.Duration) Option { return func(o *options) { o.indexTTL = d } }

// WithRegisterer registers the Reader's metrics (spate_remote_*) with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithTiered tells the Reader which partitions have a remote tier: for the
// others, it answers as for a partition with nothing remote, without any
// request to the store. By default every partition may have one.
func WithTiered(f func(topic string, partition int32) bool) Option {
	return func(o *options) { o.tiered = f }
}

// Reader reads the remote tier of every partition of an SPU from one object
// store (opened with the cluster's prefix). It is safe for concurrent use.
// Close it to stop its read-aheads.
type Reader struct {
	store objstore.Store
	opts  options
	cache *cache
	bufs  *bufferPool // of the chunks
	hints *cache      // hintKey -> int64 byte position, counted 1 each
	m     *metrics

	mu      sync.Mutex // guards parts, flights and closed
	parts   map[partKey]*partState
	flights map[string]*flight
	closed  bool

	ctx    context.Context // of the read-aheads; canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the read-ahead goroutines
	sem    chan struct{}  // bounds read-aheads in flight
}

type partKey struct {
	topic     string
	partition int32
}

// flight is a fetch in progress that readers of the same key wait for.
type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int // guarded by Reader.mu: the callers waiting, each given a reference to a shared val
}

// NewReader returns a Reader of the objects in store.
func NewReader(store objstore.Store, opts ...Option) *Reader {
	o := options{
		cacheBytes:    DefaultCacheBytes,
		chunkBytes:    DefaultChunkBytes,
		readAhead:     DefaultReadAhead,
		maxReadAheads: DefaultMaxReadAheads,
		indexTTL:      DefaultIndexTTL,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	o.chunkBytes = max(o.chunkBytes, batch.HeaderSize)
	o.maxReadAheads = max(o.maxReadAheads, 1)
	o.readAhead = max(o.readAhead, 0)
	c := newCache(max(o.cacheBytes, 0))
	ctx, cancel := context.WithCancel(context.Background())
	return &Reader{
		store:   store,
		opts:    o,
		cache:   c,
		bufs:    poolFor(o.chunkBytes),
		hints:   newCache(maxHints),
		m:       newMetrics(o.reg, c),
		parts:   map[partKey]*partState{},
		flights: map[string]*flight{},
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, o.maxReadAheads),
	}
}

// Close stops the read-aheads, waits for them and empties the cache. Later
// calls fail with ErrClosed. Close is idempotent.
func (r *Reader) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.cache.purge() // its chunks' buffers go back to the pool
	return nil
}

// CacheBytes returns the bytes the cache holds now.
func (r *Reader) CacheBytes() int64 { return r.cache.bytes() }

// Start returns the first offset the partition holds remotely, and false
// when it holds nothing remotely (or is not tiered). It lists the
// partition unless its listing is cached.
func (r *Reader) Start(ctx context.Context, topic string, partition int32) (int64, bool, error) {
	idx, err := r.index(ctx, topic, partition, func(x layout.Index) bool { return len(x.Segments) > 0 }, -1, false)
	if err != nil || len(idx.Segments) == 0 {
		return -1, false, err
	}
	return idx.Start(), true, nil
}

// Read returns whole batches of the partition, the bytes exactly as the
// leader stored them, starting with the batch that holds offset: as many as
// fit in maxBytes but always that first batch, all from one remote segment
// (and, but for a first batch that spans two, from one chunk of it), and the
// offset that follows them. The slice is the caller's: the Reader keeps no
// reference to it.
//
// It fails with an error wrapping ErrOffsetOutOfRange when offset is not
// held remotely (the error gives the remote range), with a *SegmentError
// wrapping ErrMissing or ErrCorrupt when an object is missing or damaged,
// and with one wrapping objstore.ErrUnavailable when the store could not be
// reached (retry later).
func (r *Reader) Read(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (batches []byte, next int64, err error) {
	next, err = r.read(ctx, topic, partition, offset, maxBytes, true, func(b []byte) error { batches = b; return nil })
	return batches, next, err
}

// ReadFunc is Read without the copy: it calls fn with the batches, a slice
// that may be part of the Reader's cache, valid only until fn returns (fn
// must neither modify nor keep it), and returns fn's error, if any. A
// consumer that sends the batches on from fn saves a copy of every byte.
func (r *Reader) ReadFunc(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, fn func(batches []byte) error) (next int64, err error) {
	return r.read(ctx, topic, partition, offset, maxBytes, false, fn)
}

// read serves Read (copyOut: fn gets a copy of the batches) and ReadFunc.
func (r *Reader) read(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, copyOut bool, fn func([]byte) error) (next int64, err error) {
	defer func() { r.count(err) }()
	if err := r.check(); err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		idx, err := r.index(ctx, topic, partition, func(x layout.Index) bool { _, ok := x.Find(offset); return ok }, offset, attempt > 0)
		if err != nil {
			return 0, err
		}
		i, err := segmentFor(topic, partition, idx, offset)
		if err != nil {
			return 0, err
		}
		seg := idx.Segments[i]
		pos, sequential := r.knownPosition(seg, offset)
		if sequential && attempt == 0 && r.fetching(chunkKey(seg.Key(layout.LogSuffix), pos/r.opts.chunkBytes)) {
			// A sequential consumer that caught up with the read-ahead:
			// read ahead of the chunk it waits for now, not once it has
			// it, so that the store always has ReadAhead+1 GETs of it in
			// flight. (A chunk that this read must fetch itself goes first,
			// alone: it is needed before the others.)
			r.readAhead(idx, i, pos/r.opts.chunkBytes+1)
		}
		chunks := r.chunks(seg)
		data, next, end, err := r.readSegment(ctx, chunks, offset, maxBytes, copyOut)
		if errors.Is(err, objstore.ErrNotFound) && attempt == 0 {
			// Remote retention or a new leader's upload may have replaced
			// the segment since the listing: list again and retry once.
			chunks.done()
			continue
		}
		if err != nil {
			chunks.done()
			return 0, segmentError(seg, err)
		}
		r.m.servedBytes.Add(float64(len(data)))
		if end < seg.Size {
			r.hints.add(hintKey(seg, next), end, 1)
		}
		r.readAheadFrom(idx, i, end)
		err = fn(data)
		chunks.done() // data may be part of them
		if sequential {
			r.dropBehind(seg, pos, end)
		}
		if err != nil {
			return 0, err
		}
		return next, nil
	}
}

// OffsetForTimestamp returns the base offset of the first remote batch whose
// max timestamp (Unix ms) is at least ts, and true; or the remote end offset
// (-1 when nothing is remote) and false when no remote batch is that new.
// It finds the segment from the listing alone (each key holds its newest
// timestamp) and the batch with the segment's .timeindex and .index.
func (r *Reader) OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset int64, found bool, err error) {
	defer func() { r.count(err) }()
	if err := r.check(); err != nil {
		return 0, false, err
	}
	idx, err := r.index(ctx, topic, partition, func(x layout.Index) bool { _, ok := x.FindTimestamp(ts); return ok }, -1, false)
	if err != nil {
		return 0, false, err
	}
	i, ok := idx.FindTimestamp(ts)
	for ; ok && i < len(idx.Segments); i++ {
		seg := idx.Segments[i]
		if seg.MaxTimestamp < ts {
			continue
		}
		off, err := r.segmentOffsetForTimestamp(ctx, seg, ts)
		if err != nil {
			return 0, false, segmentError(seg, err)
		}
		if off >= 0 {
			return off, true, nil
		}
	}
	return idx.End(), false, nil
}

func (r *Reader) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	return nil
}

// count counts a failed call by kind.
func (r *Reader) count(err error) {
	if err == nil {
		return
	}
	kind := "other"
	switch {
	case errors.Is(err, objstore.ErrUnavailable):
		kind = "unavailable"
	case errors.Is(err, ErrMissing):
		kind = "missing"
	case errors.Is(err, ErrCorrupt):
		kind = "corrupt"
	case errors.Is(err, ErrOffsetOutOfRange):
		kind = "out_of_range"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return
	}
	r.m.errors.WithLabelValues(kind).Inc()
}

// segmentError wraps an error reading seg, turning a missing object into
// ErrMissing.
func segmentError(seg layout.Segment, err error) error {
	var se *SegmentError
	if errors.As(err, &se) {
		return err
	}
	if errors.Is(err, objstore.ErrNotFound) {
		err = fmt.Errorf("%w: %w", ErrMissing, err)
	}
	return &SegmentError{Topic: seg.Topic, Partition: seg.Partition, Base: seg.Base, Last: seg.Last, Err: err}
}

// segmentFor returns the position in idx of the segment holding offset.
func segmentFor(topic string, partition int32, idx layout.Index, offset int64) (int, error) {
	switch {
	case len(idx.Segments) == 0:
		return 0, fmt.Errorf("%w: offset %d: topic %q partition %d holds nothing remotely", ErrOffsetOutOfRange, offset, topic, partition)
	case offset < idx.Start():
		return 0, fmt.Errorf("%w: offset %d is below the remote start of topic %q partition %d: it holds %d to %d", ErrOffsetOutOfRange, offset, topic, partition, idx.Start(), idx.End()-1)
	}
	i, ok := idx.Find(offset)
	if !ok {
		return 0, fmt.Errorf("%w: offset %d is past the remote end of topic %q partition %d: it holds %d to %d", ErrOffsetOutOfRange, offset, topic, partition, idx.Start(), idx.End()-1)
	}
	if s := idx.Segments[i]; s.Base > offset {
		prev := idx.Segments[i-1] // i > 0: offset >= Start
		return 0, &SegmentError{Topic: topic, Partition: partition, Base: prev.Last + 1, Last: s.Base - 1,
			Err: fmt.Errorf("%w: no remote segment holds these offsets (its .log object was deleted?)", ErrMissing)}
	}
	return i, nil
}

// readSegment reads from seg the batches from the one holding offset, up to
// maxBytes (at least one), and returns them, the offset after them and the
// byte position after them in the .log object.
//
// With copyOut, the batches are a copy; without, they may be part of a chunk
// that chunks holds: valid until chunks.done.
func (r *Reader) readSegment(ctx context.Context, chunks *chunks, offset int64, maxBytes int, copyOut bool) ([]byte, int64, int64, error) {
	seg := chunks.seg
	var pos, expected int64
	var h batch.Header
	err := r.walk(ctx, chunks, uint32(offset-seg.Base), func(hh batch.Header, p int64) bool {
		if hh.NextOffset() > offset {
			h, pos = hh, p
			return true
		}
		return false
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if h.Length == 0 {
		return nil, 0, 0, fmt.Errorf("%w: the segment ends before offset %d", ErrCorrupt, offset)
	}
	// The batches are copied out of the chunk that holds them (for Read) in
	// one copy, and their CRCs are checked on the copy, while it is still
	// in the CPU's caches: a read stops before a batch that would cross into the next
	// chunk, unless it is the first, which readAt then copies.
	cs := r.opts.chunkBytes
	start := pos
	spans := false // the first batch spans chunks
	for {
		size := int64(h.Size())
		if pos+size > seg.Size {
			return nil, 0, 0, fmt.Errorf("%w: the batch at byte %d (offset %d) of %d bytes ends past the end of the object (%d bytes)", ErrCorrupt, pos, h.BaseOffset, size, seg.Size)
		}
		if h.LastOffset() > seg.Last {
			return nil, 0, 0, fmt.Errorf("%w: the batch at byte %d holds offsets %d to %d, past the segment's last offset", ErrCorrupt, pos, h.BaseOffset, h.LastOffset())
		}
		if pos == start && pos/cs != (pos+size-1)/cs {
			spans = true
		}
		pos += size
		expected = h.NextOffset()
		if pos == seg.Size {
			if expected != seg.Last+1 {
				return nil, 0, 0, fmt.Errorf("%w: the object ends at offset %d, its key says %d", ErrCorrupt, expected-1, seg.Last)
			}
			break
		}
		if pos+batch.HeaderSize > seg.Size {
			return nil, 0, 0, fmt.Errorf("%w: %d bytes after the batch at offset %d are not a batch", ErrCorrupt, seg.Size-pos, h.BaseOffset)
		}
		hb, err := chunks.readAt(ctx, pos, batch.HeaderSize)
		if err != nil {
			return nil, 0, 0, err
		}
		if h, err = batch.ParseHeader(hb); err != nil {
			return nil, 0, 0, fmt.Errorf("%w: batch header at byte %d: %w", ErrCorrupt, pos, err)
		}
		if h.BaseOffset != expected {
			return nil, 0, 0, fmt.Errorf("%w: the batch at byte %d has base offset %d, expected %d", ErrCorrupt, pos, h.BaseOffset, expected)
		}
		if spans || pos+int64(h.Size())-start > int64(maxBytes) || (pos+int64(h.Size())-1)/cs != start/cs {
			break
		}
	}
	out, err := chunks.readAt(ctx, start, pos-start)
	if err != nil {
		return nil, 0, 0, err
	}
	if copyOut {
		// out is part of a chunk, or of the span buffer, which both go
		// back to their pools. The caller of Read gets a copy (which
		// bytes.Clone does not zero before filling it).
		out = bytes.Clone(out)
	}
	// Every batch returned is checked, once per read; their headers were
	// checked above.
	for p, rest := start, out; len(rest) > 0; {
		first, h, next, err := batch.Next(rest)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%w: the batch of offsets %d to %d at byte %d: %w", ErrCorrupt, h.BaseOffset, h.LastOffset(), p, err)
		}
		p, rest = p+int64(len(first)), next
	}
	return out, expected, pos, nil
}

// segmentOffsetForTimestamp returns the base offset of the first batch of
// seg whose max timestamp is at least ts, or -1.
func (r *Reader) segmentOffsetForTimestamp(ctx context.Context, seg layout.Segment, ts int64) (int64, error) {
	times, err := r.timeIndex(ctx, seg)
	if err != nil {
		return 0, err
	}
	found := int64(-1)
	chunks := r.chunks(seg)
	defer chunks.done()
	err = r.walk(ctx, chunks, lookupTime(times, ts), func(h batch.Header, _ int64) bool {
		if h.MaxTimestamp >= ts {
			found = h.BaseOffset
			return true
		}
		return false
	})
	return found, err
}

// walk calls fn with the header and position of each batch of seg from the
// indexed batch at or below relative offset rel, until fn returns true or
// the segment ends. It checks that the headers are sane and their offsets
// follow on; when the offset index does not match the object, it warns and
// walks again from byte 0.
func (r *Reader) walk(ctx context.Context, chunks *chunks, rel uint32, fn func(batch.Header, int64) bool) error {
	seg := chunks.seg
	// Where a sequential consumer goes on (a segment's first offset, or
	// where a previous read ended) the walk starts there: no index needed.
	hint, hinted := int64(0), rel == 0
	if !hinted {
		if v, ok := r.hints.get(hintKey(seg, seg.Base+int64(rel))); ok {
			hint, hinted = v.(int64), true
		}
	}
	var es []offsetEntry
	if !hinted {
		var err error
		if es, err = r.offsetIndex(ctx, seg, "read"); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		startRel, pos := lookupOffset(es, rel)
		if hinted && attempt == 0 {
			startRel, pos = rel, hint
		}
		expected := seg.Base + int64(startRel)
		fromStart := pos == 0
		var mismatch error
		for pos < seg.Size {
			if pos+batch.HeaderSize > seg.Size {
				return fmt.Errorf("%w: %d bytes at byte %d are not a batch", ErrCorrupt, seg.Size-pos, pos)
			}
			hb, err := chunks.readAt(ctx, pos, batch.HeaderSize)
			if err != nil {
				return err
			}
			h, err := batch.ParseHeader(hb)
			if err == nil && h.BaseOffset != expected {
				err = fmt.Errorf("base offset %d, expected %d", h.BaseOffset, expected)
			}
			if err != nil {
				if fromStart {
					return fmt.Errorf("%w: batch header at byte %d: %w", ErrCorrupt, pos, err)
				}
				mismatch = fmt.Errorf("batch header at byte %d: %w", pos, err)
				break
			}
			if fn(h, pos) {
				return nil
			}
			pos += int64(h.Size())
			expected = h.NextOffset()
		}
		if mismatch == nil {
			return nil
		}
		if attempt > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, mismatch)
		}
		r.opts.logger.Warn("remote offset index does not match its segment; walking from the start", "topic", seg.Topic, "partition", seg.Partition, "segment", seg.Base, "reason", mismatch)
		es, hinted = nil, false
	}
}

// chunks are the chunks of one segment's .log object that a read uses.
// The two used last are retained until the next one is needed or done is
// called: a slice that readAt returns is valid until then.
type chunks struct {
	r    *Reader
	seg  layout.Segment
	key  string       // of the .log object
	held [2]heldChunk // [0] used last
	span *[]byte      // recycled buffer of bytes that span chunks, or nil
}

type heldChunk struct {
	i   int64
	buf *buffer // nil: none
}

func (r *Reader) chunks(seg layout.Segment) *chunks {
	return &chunks{r: r, seg: seg, key: seg.Key(layout.LogSuffix)}
}

// get returns chunk i, retained until two other chunks have been used or
// done is called.
func (c *chunks) get(ctx context.Context, i int64) ([]byte, error) {
	if h := c.held[0]; h.buf != nil && h.i == i {
		return h.buf.b, nil
	}
	if h := c.held[1]; h.buf != nil && h.i == i {
		c.held[0], c.held[1] = h, c.held[0]
		return h.buf.b, nil
	}
	buf, err := c.r.chunk(ctx, c.seg, c.key, i, "read")
	if err != nil {
		return nil, err
	}
	if old := c.held[1].buf; old != nil {
		old.release()
	}
	c.held[0], c.held[1] = heldChunk{i: i, buf: buf}, c.held[0]
	return buf.b, nil
}

// done releases the chunks held and the span buffer.
func (c *chunks) done() {
	for i, h := range c.held {
		if h.buf != nil {
			h.buf.release()
		}
		c.held[i] = heldChunk{}
	}
	if c.span != nil {
		spanPool.Put(c.span)
		c.span = nil
	}
}

// spanBuffer returns an empty slice with room for n bytes, for bytes that
// span chunks: a large one is recycled (a batch that spans chunks is as
// large as the batches, every ChunkBytes of a replay), valid until the next
// call or done.
func (c *chunks) spanBuffer(n int64) []byte {
	if n < minSpanBuffer {
		return make([]byte, 0, n)
	}
	if c.span == nil {
		c.span, _ = spanPool.Get().(*[]byte)
		if c.span == nil {
			c.span = new([]byte)
		}
	}
	if int64(cap(*c.span)) < n {
		*c.span = make([]byte, 0, (n+minSpanBuffer-1)/minSpanBuffer*minSpanBuffer)
	}
	return (*c.span)[:0]
}

// minSpanBuffer is the smallest span buffer recycled (and the unit of their
// sizes).
const minSpanBuffer = 64 << 10

// spanPool recycles the span buffers of every Reader.
var spanPool sync.Pool // *[]byte

// readAt returns n bytes at pos of the .log object, from its chunks. The
// slice may be part of a chunk: the caller must not change it, nor use it
// after the next call or done.
func (c *chunks) readAt(ctx context.Context, pos, n int64) ([]byte, error) {
	cs := c.r.opts.chunkBytes
	first, last := pos/cs, (pos+n-1)/cs
	if first == last {
		b, err := c.get(ctx, first)
		if err != nil {
			return nil, err
		}
		off := pos - first*cs
		if off+n > int64(len(b)) {
			return nil, fmt.Errorf("%w: the object is shorter than its listed size", ErrCorrupt)
		}
		return b[off : off+n : off+n], nil
	}
	out := c.spanBuffer(n)
	for i := first; i <= last; i++ {
		b, err := c.get(ctx, i)
		if err != nil {
			return nil, err
		}
		lo := max(pos-i*cs, 0)
		hi := min(pos+n-i*cs, int64(len(b)))
		if lo > hi || (i < last && hi != int64(len(b))) {
			return nil, fmt.Errorf("%w: the object is shorter than its listed size", ErrCorrupt)
		}
		out = append(out, b[lo:hi]...)
	}
	if int64(len(out)) != n {
		return nil, fmt.Errorf("%w: the object is shorter than its listed size", ErrCorrupt)
	}
	return out, nil
}

// chunk returns chunk i of seg's .log object (whose key is key): bytes
// [i*C, (i+1)*C) or up to the end of the object, with a reference that the
// caller must release.
func (r *Reader) chunk(ctx context.Context, seg layout.Segment, key string, i int64, reason string) (*buffer, error) {
	v, err := r.load(ctx, chunkKey(key, i), reason, r.fetchChunk(seg, key, i, reason))
	if err != nil {
		return nil, err
	}
	return v.(*buffer), nil
}

// fetchChunk returns the fetch of chunk i of seg's .log object, for load.
func (r *Reader) fetchChunk(seg layout.Segment, key string, i int64, reason string) func(context.Context) (any, int64, error) {
	return func(ctx context.Context) (any, int64, error) {
		off := i * r.opts.chunkBytes
		n := min(r.opts.chunkBytes, seg.Size-off)
		b, err := r.getChunk(ctx, key, reason, off, n)
		if err != nil {
			return nil, 0, err
		}
		return b, b.memory(), nil
	}
}

func chunkKey(key string, i int64) string { return key + "#" + strconv.FormatInt(i, 10) }

// hintKey names the byte position in seg's .log object of the batch that
// starts at offset, where a read ended.
func hintKey(seg layout.Segment, offset int64) string {
	return seg.Key(layout.LogSuffix) + "@" + strconv.FormatInt(offset, 10)
}

// maxHints is how many positions where reads ended are remembered.
const maxHints = 4096

// offsetIndex returns the decoded .index object of seg, fetched once. A
// missing or damaged one is logged and taken as empty (walks start at byte
// 0): it is derived data.
func (r *Reader) offsetIndex(ctx context.Context, seg layout.Segment, why string) ([]offsetEntry, error) {
	key := seg.Key(layout.IndexSuffix)
	v, err := r.load(ctx, key, why, func(ctx context.Context) (any, int64, error) {
		b, err := r.get(ctx, key, "index", why)
		var es []offsetEntry
		if err == nil {
			es, err = decodeOffsetIndex(b, seg.Size, seg.Last-seg.Base+1)
		}
		if err != nil && !errors.Is(err, objstore.ErrUnavailable) && ctx.Err() == nil {
			r.opts.logger.Warn("remote offset index unusable; walking the segment from its start", "topic", seg.Topic, "partition", seg.Partition, "segment", seg.Base, "err", err)
			return []offsetEntry{}, 64, nil
		}
		return es, int64(len(es))*offsetEntrySize + 64, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]offsetEntry), nil
}

// timeIndex returns the decoded .timeindex object of seg, fetched once; a
// missing or damaged one is logged and taken as empty.
func (r *Reader) timeIndex(ctx context.Context, seg layout.Segment) ([]timeEntry, error) {
	key := seg.Key(layout.TimeIndexSuffix)
	v, err := r.load(ctx, key, "read", func(ctx context.Context) (any, int64, error) {
		b, err := r.get(ctx, key, "timeindex", "read")
		var es []timeEntry
		if err == nil {
			es, err = decodeTimeIndex(b, seg.Last-seg.Base+1)
		}
		if err != nil && !errors.Is(err, objstore.ErrUnavailable) && ctx.Err() == nil {
			r.opts.logger.Warn("remote time index unusable; walking the segment from its start", "topic", seg.Topic, "partition", seg.Partition, "segment", seg.Base, "err", err)
			return []timeEntry{}, 64, nil
		}
		return es, int64(len(es))*timeEntrySize + 64, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]timeEntry), nil
}

// get downloads the whole object.
func (r *Reader) get(ctx context.Context, key, object, reason string) ([]byte, error) {
	r.m.gets.WithLabelValues(object, reason).Inc()
	rc, err := r.store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	r.m.fetchedBytes.Add(float64(len(b)))
	if err != nil {
		return nil, r.readError(ctx, key, err)
	}
	return b, nil
}

// getChunk downloads the n bytes at off of the .log object key, straight
// into a pooled buffer, which it returns with one reference.
func (r *Reader) getChunk(ctx context.Context, key, reason string, off, n int64) (*buffer, error) {
	r.m.gets.WithLabelValues("log", reason).Inc()
	rc, err := r.store.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := r.bufs.get(n)
	m, err := io.ReadFull(rc, b.b)
	r.m.fetchedBytes.Add(float64(m))
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		b.release()
		return nil, fmt.Errorf("%w: %s is %d bytes, shorter than its listed size", ErrCorrupt, key, off+int64(m))
	}
	if err != nil {
		b.release()
		return nil, r.readError(ctx, key, err)
	}
	return b, nil
}

// readError is the error of a response body that could not be read.
func (r *Reader) readError(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The connection broke mid-object: the store is not answering.
	return fmt.Errorf("remote: read %s: %w: %w", key, objstore.ErrUnavailable, err)
}

// load returns the cached value under key, or fetches it, sharing one fetch
// among concurrent callers, and caches it. A shared value (a chunk's
// buffer) comes with a reference for the caller, who must release it.
func (r *Reader) load(ctx context.Context, key, reason string, fetch func(context.Context) (any, int64, error)) (any, error) {
	for {
		if v, ok := r.cache.get(key); ok {
			if reason == "read" {
				r.m.hits.Inc()
			}
			return v, nil
		}
		r.mu.Lock()
		if v, ok := r.cache.get(key); ok { // added while we took the lock
			r.mu.Unlock()
			if reason == "read" {
				r.m.hits.Inc()
			}
			return v, nil
		}
		if f, ok := r.flights[key]; ok {
			f.waiters++
			r.mu.Unlock()
			if reason == "read" {
				r.m.hits.Inc()
			}
			select {
			case <-f.done:
			case <-ctx.Done():
				r.mu.Lock()
				if r.flights[key] == f { // not counted yet: no reference for us
					f.waiters--
					r.mu.Unlock()
				} else {
					r.mu.Unlock()
					<-f.done // closed right after the count
					releaseShared(f.val)
				}
				return nil, ctx.Err()
			}
			if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue // the fetcher's context ended, not ours: fetch again
			}
			return f.val, f.err
		}
		f := &flight{done: make(chan struct{})}
		r.flights[key] = f
		r.mu.Unlock()
		if reason == "read" {
			r.m.misses.Inc()
		}
		r.fly(ctx, key, f, fetch)
		return f.val, f.err
	}
}

// fly runs the fetch of flight f, registered under key, caches its value
// and hands it to the waiters. A shared value keeps the fetcher's
// reference.
func (r *Reader) fly(ctx context.Context, key string, f *flight, fetch func(context.Context) (any, int64, error)) {
	var size int64
	f.val, size, f.err = fetch(ctx) // a shared val has our reference
	if f.err == nil {
		retainShared(f.val, 1) // the cache's
		r.cache.add(key, f.val, size)
	}
	r.mu.Lock()
	delete(r.flights, key)
	waiters := f.waiters
	r.mu.Unlock()
	if f.err == nil {
		retainShared(f.val, waiters)
	}
	close(f.done)
}

func retainShared(v any, n int) {
	if s, ok := v.(shared); ok {
		for range n {
			s.retain()
		}
	}
}

func releaseShared(v any) {
	if s, ok := v.(shared); ok {
		s.release()
	}
}

// dropBehind removes from the cache the chunks of seg's .log object that a
// sequential read from byte from to byte end has passed: read to their end,
// they are not read again by this consumer, and a replay longer than the
// cache would otherwise push out what other reads use and cycle through
// the whole cache's worth of memory instead of the few buffers of its
// read-ahead. A chunk that another read is using now stays: a consumer
// replaying the same range alongside may need it again.
func (r *Reader) dropBehind(seg layout.Segment, from, end int64) {
	cs := r.opts.chunkBytes
	last := end / cs // chunks before it were read to their end
	if end == seg.Size {
		last = (end + cs - 1) / cs
	}
	key := seg.Key(layout.LogSuffix)
	for c := from / cs; c < last; c++ {
		r.cache.removeIdle(chunkKey(key, c))
	}
}

// knownPosition returns the byte position in seg's .log object of the
// batch holding offset when it is known without any I/O: offset is the
// segment's first, or a read ended there.
func (r *Reader) knownPosition(seg layout.Segment, offset int64) (int64, bool) {
	if offset == seg.Base {
		return 0, true
	}
	if v, ok := r.hints.get(hintKey(seg, offset)); ok {
		return v.(int64), true
	}
	return 0, false
}

// fetching reports whether the chunk under key is being fetched.
func (r *Reader) fetching(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.flights[key]
	return ok
}

// readAheadFrom starts the background fetch of the chunks that follow byte
// end of segment i of idx: the rest of the segment's chunks, then the
// next segments' first chunks, ReadAhead chunks in all.
func (r *Reader) readAheadFrom(idx layout.Index, i int, end int64) {
	cs := r.opts.chunkBytes
	c := end / cs // the chunk holding the next byte to read
	if end%cs != 0 {
		c++ // the chunk of end is already cached by this read
	}
	r.readAhead(idx, i, c)
}

// readAhead starts the background fetch of ReadAhead chunks from chunk c
// of segment i of idx on, going on into the next segments.
func (r *Reader) readAhead(idx layout.Index, i int, c int64) {
	n := r.opts.readAhead
	cs := r.opts.chunkBytes
	for n > 0 && i < len(idx.Segments) {
		seg := idx.Segments[i]
		if c*cs >= seg.Size {
			// A sequential reader enters the next segment at its first
			// offset, which needs no offset index.
			i, c = i+1, 0
			continue
		}
		key := seg.Key(layout.LogSuffix)
		r.prefetch(chunkKey(key, c), r.fetchChunk(seg, key, c, "readahead"))
		c++
		n--
	}
}

// prefetch runs fetch in the background unless key is cached or being
// fetched, or too many read-aheads are in flight. Its flight is
// registered before prefetch returns, so that a read of key from then on
// waits for it rather than fetch the same bytes again.
func (r *Reader) prefetch(key string, fetch func(context.Context) (any, int64, error)) {
	if r.cache.contains(key) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if _, ok := r.flights[key]; ok {
		return
	}
	if r.cache.contains(key) { // added while we took the lock
		return
	}
	select {
	case r.sem <- struct{}{}:
	default:
		r.m.skipped.Inc()
		return
	}
	f := &flight{done: make(chan struct{})}
	r.flights[key] = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.sem }()
		ctx, cancel := context.WithTimeout(r.ctx, readAheadTimeout)
		defer cancel()
		r.fly(ctx, key, f, fetch)
		if f.err == nil {
			releaseShared(f.val) // the fetcher's reference: the cache and the waiters hold theirs
		}
	}()
}
