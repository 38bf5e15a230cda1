package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/internal/batch"
)

// Producer writes records to the partitions of one topic. It gathers the
// records of each partition into batches, sends each batch when it is full
// or its linger ends, and pipelines the batches on one stream per SPU
// without waiting for the answers. A Producer is safe for concurrent use.
//
// Delivery is at most once per Produce: when a connection breaks, the
// records of the batches that were sent and not yet acknowledged fail with
// ErrConnectionLost (they may or may not have been written) and the
// producer reconnects for later batches; it never resends a batch by
// itself. Records of one partition are written in the order of the Produce
// calls that returned, except that a failed batch leaves a gap.
//
// Memory is bounded by WithMaxBufferedBytes: Produce blocks while that many
// bytes of records wait for their acknowledgement.
type Producer struct {
	// Lock order: a partition's mu, then a produceStream's mu. Callbacks
	// run with no lock held.

	topic       string
	cfg         producerConfig
	logger      *slog.Logger
	sealer      batchSealer // the partitioner, when it wants to know; or nil
	maxRecord   int         // the largest encodedSize that fits in a batch
	acks        dataplanev1.Acks
	ids         []int32              // the topic's partition numbers, sorted
	dense       []*partition         // by number, when sparse is nil
	sparse      map[int32]*partition // by number, when numbers are large
	partitions  []*partition
	streams     []*produceStream
	cancel      context.CancelFunc // stops the streams
	wg          sync.WaitGroup     // the streams' and the clock's goroutines
	pendingPool sync.Pool          // of *[]pendingRecord, reused across batches
	bufs        chan []byte        // batch buffers, reused once sent
	clock       *clock             // for records without a timestamp

	// buffered counts the encoded bytes of records from Produce until
	// their batch completes; batches counts sealed batches until their
	// callbacks have returned. Flush waits for both to be zero; Produce
	// waits while buffered is at the limit. changed is notified when
	// either falls.
	buffered atomic.Int64
	batches  atomic.Int64
	changed  broadcast
	flushing atomic.Int32 // Flush calls under way; batches seal at once
	closed   atomic.Bool

	closeOnce sync.Once
	closeErr  error

	failMu   sync.Mutex // guards failed and firstErr
	failed   int64      // records without a callback that failed since the last Flush
	firstErr error      // the first of their errors
}

type producerConfig struct {
	linger           time.Duration
	batchBytes       int
	compression      Compression
	acks             Acks
	partitioner      Partitioner
	maxBufferedBytes int64
	maxInFlight      int
	deliveryTimeout  time.Duration
	transforms       transforms // SmartModules for the SPU to run
}

func (c *producerConfig) validate() error {
	switch {
	case c.linger < 0:
		return fmt.Errorf("client: negative linger %v", c.linger)
	case c.batchBytes < batch.HeaderSize+recordOverhead:
		return fmt.Errorf("client: batch size %d is too small: use at least %d bytes", c.batchBytes, batch.HeaderSize+recordOverhead)
	case c.batchBytes > maxMessageBytes/2:
		return fmt.Errorf("client: batch size %d exceeds %d bytes", c.batchBytes, maxMessageBytes/2)
	case !batch.Compression(c.compression).Valid():
		return fmt.Errorf("client: unknown compression %d", c.compression)
	case c.acks < AcksTopicDefault || c.acks > AcksFsync:
		return fmt.Errorf("client: unknown acks %d", c.acks)
	case c.maxBufferedBytes < int64(c.batchBytes):
		return fmt.Errorf("client: max buffered bytes %d is less than the batch size %d", c.maxBufferedBytes, c.batchBytes)
	case c.maxInFlight < 1:
		return fmt.Errorf("client: max in flight %d: allow at least 1 request", c.maxInFlight)
	case c.deliveryTimeout <= 0:
		return fmt.Errorf("client: delivery timeout %v must be positive", c.deliveryTimeout)
	case c.transforms.err != nil:
		return c.transforms.err
	}
	return nil
}

// NewProducer returns a Producer of records to topic. It looks up the
// topic's partitions, within ctx, and fails with an error for which
// IsNotFound is true when the topic has none. ctx bounds only that lookup:
// the producer lives until Close.
func (c *Client) NewProducer(ctx context.Context, topic string, opts ...ProducerOption) (*Producer, error) {
	cfg := producerConfig{
		linger:           DefaultLinger,
		batchBytes:       DefaultBatchBytes,
		maxBufferedBytes: DefaultMaxBufferedBytes,
		maxInFlight:      DefaultMaxInFlight,
		deliveryTimeout:  DefaultDeliveryTimeout,
	}
	for _, o := range opts {
		o.applyToProducer(&cfg)
	}
	if cfg.partitioner == nil {
		cfg.partitioner = HashPartitioner()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	leaders, err := c.topicPartitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	p := &Producer{
		topic:     topic,
		cfg:       cfg,
		logger:    c.logger.With("topic", topic),
		maxRecord: cfg.batchBytes - batch.HeaderSize,
		acks:      cfg.acks.proto(),
		bufs:      make(chan []byte, 8),
		clock:     newClock(),
	}
	p.sealer, _ = cfg.partitioner.(batchSealer)
	// With a control plane, each partition gets its own stream, which
	// follows the partition's leader; streams to one SPU share its HTTP/2
	// connection. With one SPU, one stream carries every partition.
	watcher, _ := c.resolver.(leaderWatcher)
	streams := make(map[string]*produceStream)
	maxID := leaders[len(leaders)-1].partition
	if maxID < 1<<12 {
		p.dense = make([]*partition, maxID+1)
	} else {
		p.sparse = make(map[int32]*partition, len(leaders))
	}
	for _, l := range leaders {
		key := l.leader
		if watcher != nil {
			key = fmt.Sprint(l.partition)
		}
		s := streams[key]
		if s == nil {
			s = &produceStream{
				p:         p,
				client:    c,
				watcher:   watcher,
				partition: l.partition,
				conn:      c.spu(l.leader),
				inflight:  make(map[uint64]*sealedBatch),
				wake:      make(chan struct{}, 1),
			}
			streams[key] = s
			p.streams = append(p.streams, s)
		}
		pt := &partition{p: p, id: l.partition, stream: s, b: batch.NewBuilder(batch.Compression(cfg.compression))}
		pt.timer = time.AfterFunc(time.Hour, pt.lingerEnded)
		pt.timer.Stop()
		p.ids = append(p.ids, l.partition)
		p.partitions = append(p.partitions, pt)
		if p.sparse != nil {
			p.sparse[l.partition] = pt
		} else {
			p.dense[l.partition] = pt
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for _, s := range p.streams {
		p.wg.Add(1)
		go s.run(runCtx)
	}
	p.wg.Go(func() { p.clock.run(runCtx, func() bool { return p.buffered.Load() > 0 }) })
	return p, nil
}

// Topic returns the topic the producer writes to.
func (p *Producer) Topic() string { return p.topic }

// Partitions returns the partition numbers of the topic, as the producer
// saw them when it was made.
func (p *Producer) Partitions() []int32 { return slices.Clone(p.ids) }

// Produce adds r to the open batch of its partition and returns without
// waiting for it to be sent. It copies r's key, value and headers, so the
// caller may reuse them once Produce returns. Produce blocks only while the
// producer's buffer is full (see WithMaxBufferedBytes), until ctx is done.
//
// done, if not nil, is called exactly once: with r, its Partition, Offset
// and Timestamp filled in, when the SPU has acknowledged the record's
// batch; or with r and an error when the record failed, in which case
// Offset is -1. A record that the producer refuses at once (too large, an
// unknown partition, a closed producer, ctx done while waiting for buffer
// space) gets done called before Produce returns, on the caller's
// goroutine. Otherwise done runs on the goroutine that reads the SPU's
// answers, in offset order within a partition. It must be quick and must not
// wait for other records: calling Flush, ProduceSync or Close from done
// deadlocks, and calling Produce from done can block that goroutine while
// the buffer is full. Flush reports the failures of records produced with a
// nil done.
func (p *Producer) Produce(ctx context.Context, r Record, done func(Record, error)) {
	size := encodedSize(&r)
	if size > p.maxRecord {
		p.refuse(r, done, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"%w: %d bytes do not fit in a batch of %d bytes: produce smaller records or raise WithBatchBytes (up to the topic's maximum batch size)",
			ErrRecordTooLarge, size, p.cfg.batchBytes)))
		return
	}
	if p.closed.Load() {
		p.refuse(r, done, errProducerClosed)
		return
	}
	id := p.cfg.partitioner.Partition(r, p.ids)
	pt := p.partition(id)
	if pt == nil {
		p.refuse(r, done, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(
			"%w: partition %d of topic %q: the topic has partitions %v", ErrUnknownPartition, id, p.topic, p.ids)))
		return
	}
	var ts int64
	if r.Timestamp.IsZero() {
		ts = p.clock.nowMilli()
		r.Timestamp = time.UnixMilli(ts)
	} else {
		ts = r.Timestamp.UnixMilli()
	}
	if err := p.acquire(ctx, int64(size)); err != nil {
		p.refuse(r, done, err)
		return
	}

	pt.mu.Lock()
	if p.closed.Load() {
		pt.mu.Unlock()
		p.release(int64(size))
		p.refuse(r, done, errProducerClosed)
		return
	}
	if pt.b.Count() > 0 && pt.b.Size()+size > p.cfg.batchBytes {
		pt.sealLocked()
	}
	if pt.b.Count() == 0 {
		pt.startLinger()
	}
	if done != nil {
		pt.pending = append(pt.pending, pendingRecord{index: int32(pt.b.Count()), rec: r, done: done})
	}
	pt.b.Append(batch.Record{
		Timestamp: ts,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   toBatchHeaders(r.Headers),
	})
	pt.bytes += int64(size)
	if pt.b.Size()+recordOverhead > p.cfg.batchBytes {
		pt.sealLocked() // full: no record fits any more
	}
	pt.mu.Unlock()
}

// errProducerClosed is what records produced after Close fail with.
var errProducerClosed = connect.NewError(connect.CodeFailedPrecondition,
	fmt.Errorf("%w: producer closed: the record was not written", ErrClosed))

// ProduceSync produces records and waits until the SPU has acknowledged
// all of them, or until ctx is done. It returns the records with their
// Partition, Offset and Timestamp filled in, in the order given. When some
// fail, the error names the first of them and how many failed; the others
// may have been written: see the returned records, whose Offset is -1 for
// failed ones. When ctx ends first, it returns nil and ctx's error; the
// records may still be written.
//
// ProduceSync sends the open batches at once rather than waiting for their
// linger. For throughput, prefer Produce.
func (p *Producer) ProduceSync(ctx context.Context, records ...Record) ([]Record, error) {
	if len(records) == 0 {
		return nil, nil
	}
	out := make([]Record, len(records))
	errs := make([]error, len(records))
	var remaining atomic.Int64
	remaining.Store(int64(len(records)))
	allDone := make(chan struct{})
	for i := range records {
		p.Produce(ctx, records[i], func(r Record, err error) {
			out[i], errs[i] = r, err
			if remaining.Add(-1) == 0 {
				close(allDone)
			}
		})
	}
	p.sealAll()
	select {
	case <-allDone:
	case <-ctx.Done():
		return nil, fmt.Errorf("client: produce: waiting for acknowledgements: %w", ctx.Err())
	}
	failed, first := 0, -1
	for i, err := range errs {
		if err != nil {
			failed++
			if first < 0 {
				first = i
			}
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("client: produce: %d of %d records failed; the first, record %d: %w", failed, len(records), first, errs[first])
	}
	return out, nil
}

// Flush sends every open batch at once and waits until every record
// produced before and during the call is acknowledged or failed, and its
// callback has returned, or until ctx is done. It returns an error when
// records produced with a nil done callback failed since the previous
// Flush, saying how many and the first error; the failures of records with
// a callback go to their callbacks only.
func (p *Producer) Flush(ctx context.Context) error {
	p.flushing.Add(1)
	defer p.flushing.Add(-1)
	p.sealAll()
	for {
		ch := p.changed.register()
		if p.buffered.Load() == 0 && p.batches.Load() == 0 {
			p.changed.unregister()
			break
		}
		select {
		case <-ch:
			p.changed.unregister()
		case <-ctx.Done():
			p.changed.unregister()
			return fmt.Errorf("client: flush: %w", ctx.Err())
		}
	}
	p.failMu.Lock()
	defer p.failMu.Unlock()
	if p.failed == 0 {
		return nil
	}
	err := fmt.Errorf("client: %d records produced without a callback failed; the first error: %w", p.failed, p.firstErr)
	p.failed, p.firstErr = 0, nil
	return err
}

// Close flushes the producer, as Flush does, waiting at most about the
// delivery timeout, then stops its streams and waits for its goroutines.
// Records not acknowledged by then fail with ErrClosed. Produce after
// Close fails with ErrClosed. Close returns Flush's error; calling it again
// returns the same.
func (p *Producer) Close() error {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.deliveryTimeout+5*time.Second)
		p.closeErr = p.Flush(ctx)
		cancel()
		p.cancel()
		p.wg.Wait()
		for _, pt := range p.partitions {
			pt.timer.Stop()
		}
		p.sealAll() // only when Flush gave up
		for _, s := range p.streams {
			s.failAll(errProducerClosed)
		}
	})
	return p.closeErr
}

// partition returns the partition numbered id, or nil.
func (p *Producer) partition(id int32) *partition {
	if p.sparse != nil {
		return p.sparse[id]
	}
	if uint32(id) < uint32(len(p.dense)) {
		return p.dense[id]
	}
	return nil
}

// refuse fails a record that was never added to a batch.
func (p *Producer) refuse(r Record, done func(Record, error), err error) {
	r.Offset = -1
	if done != nil {
		done(r, err)
		return
	}
	p.noteFailures(1, err)
}

// noteFailures records the failure of n records without a callback, for
// Flush to report.
func (p *Producer) noteFailures(n int, err error) {
	p.failMu.Lock()
	if p.failed == 0 {
		p.firstErr = err
	}
	p.failed += int64(n)
	p.failMu.Unlock()
	p.logger.Debug("records failed", "records", n, "err", err)
}

// acquire takes n bytes of buffer space, waiting while there is none. A
// record always gets space when the buffer is empty, so that one larger
// than the buffer cannot wait forever.
func (p *Producer) acquire(ctx context.Context, n int64) error {
	for {
		cur := p.buffered.Load()
		if cur+n > p.cfg.maxBufferedBytes && cur > 0 {
			return p.acquireSlow(ctx, n)
		}
		if p.buffered.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

func (p *Producer) acquireSlow(ctx context.Context, n int64) error {
	for {
		ch := p.changed.register()
		cur := p.buffered.Load()
		if cur+n <= p.cfg.maxBufferedBytes || cur == 0 {
			ok := p.buffered.CompareAndSwap(cur, cur+n)
			p.changed.unregister()
			if ok {
				return nil
			}
			continue
		}
		select {
		case <-ch:
			p.changed.unregister()
		case <-ctx.Done():
			p.changed.unregister()
			return fmt.Errorf("client: produce: waiting for buffer space (the producer holds %d bytes, WithMaxBufferedBytes): %w", cur, ctx.Err())
		}
	}
}

// release returns n bytes of buffer space.
func (p *Producer) release(n int64) {
	p.buffered.Add(-n)
	p.changed.notify()
}

// sealAll seals the open batch of every partition.
func (p *Producer) sealAll() {
	for _, pt := range p.partitions {
		pt.mu.Lock()
		if pt.b.Count() > 0 {
			pt.sealLocked()
		}
		pt.mu.Unlock()
	}
}

// complete ends a sealed batch: it returns its buffer space and calls its
// records' callbacks, with base as the offset of its first record when err
// is nil.
func (p *Producer) complete(sb *sealedBatch, base int64, err error) {
	p.release(sb.bytes)
	for i := range sb.pending {
		pr := &sb.pending[i]
		r := pr.rec
		r.Partition = sb.part.id
		r.Offset = -1
		if err == nil && p.cfg.transforms.chain == nil {
			r.Offset = base + int64(pr.index)
		}
		pr.done(r, err)
	}
	if n := sb.count - len(sb.pending); err != nil && n > 0 {
		p.noteFailures(n, err)
	}
	if sb.pending != nil {
		clear(sb.pending) // drop the references to the records and callbacks
		s := sb.pending[:0]
		p.pendingPool.Put(&s)
		sb.pending = nil
	}
	p.batches.Add(-1)
	p.changed.notify()
}

// partition is the producer's state for one partition: its open batch.
type partition struct {
	p      *Producer
	id     int32
	stream *produceStream // to the partition's leader
	timer  *time.Timer    // ends the linger of the open batch

	mu       sync.Mutex      // guards the fields below
	b        *batch.Builder  // the open batch, reused from batch to batch
	pending  []pendingRecord // the open batch's records that have a callback
	bytes    int64           // the buffer space its records hold
	deadline time.Time       // when its linger ends
}

// pendingRecord is a record with a callback, waiting for its batch.
type pendingRecord struct {
	index int32 // in the batch
	rec   Record
	done  func(Record, error)
}

// startLinger starts the linger of a new open batch. pt.mu is held.
func (pt *partition) startLinger() {
	d := pt.p.cfg.linger
	if pt.p.flushing.Load() > 0 {
		d = 0
	}
	pt.deadline = time.Now().Add(d)
	pt.timer.Reset(d)
}

// lingerEnded runs when the linger timer fires: it seals the open batch if
// its linger is over. The timer may belong to a batch already sealed by
// size; then the open batch, if any, gets the rest of its own linger.
func (pt *partition) lingerEnded() {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.b.Count() == 0 {
		return
	}
	if d := time.Until(pt.deadline); d > 0 && pt.p.flushing.Load() == 0 {
		pt.timer.Reset(d)
		return
	}
	pt.sealLocked()
}

// sealLocked builds the open batch and queues it for sending. pt.mu is held
// and the batch has records.
func (pt *partition) sealLocked() {
	p := pt.p
	sb := &sealedBatch{
		part:    pt,
		count:   pt.b.Count(),
		bytes:   pt.bytes,
		pending: pt.pending,
		sealed:  time.Now(),
	}
	var buf []byte
	select {
	case buf = <-p.bufs:
	default:
	}
	var err error
	if sb.data, err = pt.b.AppendTo(buf); err != nil {
		sb.err = connect.NewError(connect.CodeInternal, fmt.Errorf("client: build batch: %w", err))
	}
	pt.b.Reset()
	pt.bytes = 0
	pt.pending = nil
	if v, ok := p.pendingPool.Get().(*[]pendingRecord); ok {
		pt.pending = *v
	}
	p.batches.Add(1)
	if p.sealer != nil {
		p.sealer.batchSealed(pt.id, p.ids)
	}
	pt.stream.enqueue(sb)
}

// sealedBatch is a built batch on its way to the SPU.
type sealedBatch struct {
	part    *partition
	data    []byte // the batch; nil once sent
	err     error  // why it could not be built
	count   int    // records
	bytes   int64  // buffer space its records hold
	pending []pendingRecord
	sealed  time.Time
	id      uint64 // request id, once sent
}

// produceStream sends the batches of the partitions led by one SPU on one
// Produce stream at a time, reconnecting when the stream breaks.
type produceStream struct {
	p    *Producer
	wake chan struct{} // capacity 1: the queue grew, a request completed

	// With a leaderWatcher, the stream carries one partition and moves
	// to its leader at the start of each session; conn is touched only by
	// the stream's run goroutine.
	client    *Client
	watcher   leaderWatcher // nil for a static SPU
	partition int32
	conn      *spuConn
	confirmed string // the URL of the leader known to hold the replica

	mu       sync.Mutex              // guards the fields below
	queue    []*sealedBatch          // sealed, not sent; queue[head:] in order
	head     int                     // the first unsent in queue
	inflight map[uint64]*sealedBatch // sent, not answered, by request id
	nextID   uint64                  // the last request id used
}

// signal wakes the sender, if it waits.
func (s *produceStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a sealed batch for sending.
func (s *produceStream) enqueue(sb *sealedBatch) {
	s.mu.Lock()
	s.queue = append(s.queue, sb)
	s.mu.Unlock()
	s.signal()
}

// queued returns the number of batches waiting to be sent.
func (s *produceStream) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) - s.head
}

// next takes the next batch to send, if there is one and a free in-flight
// slot. A batch that failed to build is returned too; the caller completes
// it. A batch to send is registered as in flight under a new request id.
func (s *produceStream) next() *sealedBatch {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head == len(s.queue) || len(s.inflight) >= s.p.cfg.maxInFlight {
		return nil
	}
	sb := s.queue[s.head]
	s.queue[s.head] = nil
	s.head++
	switch {
	case s.head == len(s.queue):
		s.queue, s.head = s.queue[:0], 0
	case s.head >= 64 && 2*s.head >= len(s.queue):
		// Move the unsent batches to the front, so that a queue that
		// never drains does not grow forever.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	if sb.err == nil {
		s.nextID++
		sb.id = s.nextID
		s.inflight[sb.id] = sb
	}
	return sb
}

// run sends queued batches until ctx is done, one session (one stream) at a
// time, with a backoff between broken sessions.
func (s *produceStream) run(ctx context.Context) {
	defer s.p.wg.Done()
	bo := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	for {
		for s.queued() == 0 {
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			}
		}
		acked, err := s.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if acked {
			bo.reset()
		}
		if err != nil {
			s.p.logger.Warn("produce stream broke; reconnecting", "spu", s.conn.url, "err", err)
		}
		if !bo.wait(ctx) {
			return
		}
		s.expireQueued()
	}
}

// errInflightTimeout ends a session whose oldest request has waited for its
// answer longer than the delivery timeout.
var errInflightTimeout = errors.New("no answer within the delivery timeout")

// errLeaderMoved ends a session whose partition's leader moved to another
// SPU.
var errLeaderMoved = errors.New("the partition's leader moved")

// session opens a Produce stream and sends batches on it until it breaks or
// ctx is done. It then fails the batches in flight, unless the stream
// never connected, in which case it queues them again. It reports whether
// the SPU acknowledged anything.
//
// Three goroutines share the stream: session sends, the receiver reads the
// answers, and a watchdog cancels the stream when an answer is overdue
// (which also unblocks a Send stuck on flow control). session waits for
// both before it returns.
func (s *produceStream) session(ctx context.Context) (acked bool, err error) {
	var changes <-chan struct{}
	if s.watcher != nil {
		changes = s.watcher.changes()
		if url := s.watcher.currentLeader(s.p.topic, s.partition); url != "" && url != s.conn.url {
			s.p.logger.Info("partition leader moved", "partition", s.partition, "from", s.conn.url, "to", url)
			s.conn = s.client.spu(url)
		}
		if s.confirmed != s.conn.url {
			// A new leader may not have created its replica yet; a batch
			// sent now would fail. Wait for it (run retries with a
			// backoff), so that batches are never refused out of order.
			offs, err := s.client.offsetsAt(ctx, s.conn.url, s.p.topic, []int32{s.partition})
			if err != nil {
				return false, err
			}
			if _, ok := offs[s.partition]; !ok {
				return false, connect.NewError(connect.CodeNotFound, fmt.Errorf("client: the SPU at %s has no partition %d of topic %q yet", s.conn.url, s.partition, s.p.topic))
			}
			s.confirmed = s.conn.url
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := s.conn.produce.Produce(sctx)
	var moved atomic.Bool

	var ackedAny atomic.Bool
	recvErr := make(chan error, 1)
	go func() {
		err := s.receive(stream, &ackedAny)
		// Closing the response aborts the HTTP/2 stream, which also
		// unblocks a Send waiting for flow control.
		_ = stream.CloseResponse()
		recvErr <- err
	}()
	receiving := true

	var timedOut atomic.Bool
	stopWatchdog, watchdogDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchdogDone)
		t := time.NewTicker(max(min(s.p.cfg.deliveryTimeout/4, time.Second), 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if s.oldestInflight() > s.p.cfg.deliveryTimeout {
					timedOut.Store(true)
					cancel()
					return
				}
			case <-changes:
				changes = s.watcher.changes()
				if url := s.watcher.currentLeader(s.p.topic, s.partition); url != "" && url != s.conn.url {
					moved.Store(true)
					cancel()
					return
				}
			case <-stopWatchdog:
				return
			}
		}
	}()

	// The stream's first request sets the SmartModules for the stream.
	req := &dataplanev1.ProduceRequest{Topic: s.p.topic, Acks: s.p.acks, Smartmodules: s.p.cfg.transforms.chain}
loop:
	for {
		sb := s.next()
		if sb == nil {
			select {
			case <-s.wake:
			case err = <-recvErr:
				receiving = false
				break loop
			case <-sctx.Done():
				err = sctx.Err()
				break loop
			}
			continue
		}
		if sb.err != nil {
			s.p.complete(sb, -1, sb.err)
			continue
		}
		req.RequestId, req.Partition, req.Batches = sb.id, sb.part.id, sb.data
		if err = stream.Send(req); err != nil {
			break
		}
		req.Smartmodules = nil
		// Send has copied the batch, which is never sent again: reuse
		// its memory. (A batch whose Send failed may be queued again,
		// if it reached nobody.)
		select {
		case s.p.bufs <- sb.data[:0]:
		default:
		}
		sb.data = nil
	}
	req.Batches = nil

	// Closing the request lets the transport see the cancellation of
	// sctx, or the SPU end the stream after its last answers.
	_ = stream.CloseRequest()
	if receiving {
		if sctx.Err() != nil {
			<-recvErr
		} else {
			// Send failed. It reports only io.EOF when the stream
			// fails; the receiver is about to get the cause.
			t := time.AfterFunc(time.Second, cancel)
			err = <-recvErr
			t.Stop()
		}
	}
	cancel()
	close(stopWatchdog)
	<-watchdogDone
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case timedOut.Load():
		err = errInflightTimeout
	case moved.Load():
		err = errLeaderMoved
	}
	s.failInflight(ctx, err)
	return ackedAny.Load(), err
}

// receive reads the SPU's answers and completes their batches, until the
// stream ends.
func (s *produceStream) receive(stream *connect.BidiStreamForClient[dataplanev1.ProduceRequest, dataplanev1.ProduceResponse], acked *atomic.Bool) error {
	for {
		resp, err := stream.Receive()
		if err != nil {
			return err
		}
		id := resp.GetRequestId()
		s.mu.Lock()
		sb := s.inflight[id]
		delete(s.inflight, id)
		s.mu.Unlock()
		if sb == nil {
			return connect.NewError(connect.CodeInternal, fmt.Errorf("client: the SPU answered request %d, which is not in flight", id))
		}
		s.signal() // an in-flight slot is free
		acked.Store(true)
		if code := resp.GetErrorCode(); code != 0 {
			s.p.complete(sb, -1, wireError(code, resp.GetErrorMessage()))
			continue
		}
		if n := resp.GetLastOffset() - resp.GetBaseOffset() + 1; n != int64(sb.count) && s.p.cfg.transforms.chain == nil {
			s.p.logger.Warn("SPU acknowledged a different number of records than the batch holds",
				"partition", sb.part.id, "records", sb.count, "base_offset", resp.GetBaseOffset(), "last_offset", resp.GetLastOffset())
		}
		s.p.complete(sb, resp.GetBaseOffset(), nil)
	}
}

// oldestInflight returns how long ago the oldest batch in flight was sealed.
func (s *produceStream) oldestInflight() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest time.Time
	for _, sb := range s.inflight {
		if oldest.IsZero() || sb.sealed.Before(oldest) {
			oldest = sb.sealed
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return time.Since(oldest)
}

// failInflight ends the batches in flight after a session ended with err.
// When the connection was never made, they reached nobody and go back to
// the front of the queue; otherwise they fail, as their outcome is unknown.
func (s *produceStream) failInflight(ctx context.Context, cause error) {
	s.mu.Lock()
	list := make([]*sealedBatch, 0, len(s.inflight))
	for _, sb := range s.inflight {
		list = append(list, sb)
	}
	clear(s.inflight)
	slices.SortFunc(list, func(a, b *sealedBatch) int { return cmp.Compare(a.id, b.id) })
	if len(list) > 0 && ctx.Err() == nil && isDialError(cause) {
		s.queue = append(list, s.queue[s.head:]...)
		s.head = 0
		list = nil
	}
	s.mu.Unlock()
	if len(list) == 0 {
		return
	}
	var err error
	switch {
	case ctx.Err() != nil:
		err = errProducerClosed
	case cause == errInflightTimeout:
		err = connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"%w: the SPU at %s did not answer within %v; the records may or may not have been written",
			ErrDeliveryTimeout, s.conn.url, s.p.cfg.deliveryTimeout))
	default:
		err = connect.NewError(connect.CodeUnavailable, fmt.Errorf("%w: %w", ErrConnectionLost, cause))
	}
	for _, sb := range list {
		s.p.complete(sb, -1, err)
	}
}

// expireQueued fails the queued batches sealed longer ago than the delivery
// timeout. They were never sent.
func (s *produceStream) expireQueued() {
	limit := time.Now().Add(-s.p.cfg.deliveryTimeout)
	s.mu.Lock()
	var expired []*sealedBatch
	keep := s.queue[:0]
	for _, sb := range s.queue[s.head:] {
		if sb.sealed.Before(limit) {
			expired = append(expired, sb)
		} else {
			keep = append(keep, sb)
		}
	}
	clear(s.queue[len(keep):])
	s.queue, s.head = keep, 0
	s.mu.Unlock()
	if len(expired) == 0 {
		return
	}
	err := connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
		"%w: the SPU at %s was unreachable for %v; the records were not written",
		ErrDeliveryTimeout, s.conn.url, s.p.cfg.deliveryTimeout))
	for _, sb := range expired {
		s.p.complete(sb, -1, err)
	}
}

// failAll fails every batch queued or in flight; the stream's goroutines
// have stopped.
func (s *produceStream) failAll(err error) {
	s.mu.Lock()
	list := slices.Clone(s.queue[s.head:])
	clear(s.queue)
	s.queue, s.head = nil, 0
	for _, sb := range s.inflight {
		list = append(list, sb)
	}
	clear(s.inflight)
	s.mu.Unlock()
	for _, sb := range list {
		s.p.complete(sb, -1, err)
	}
}

// broadcast wakes every goroutine waiting for a change of some atomic
// state. A waiter registers, checks the state, then waits on the channel;
// a notifier changes the state, then notifies. Notifying costs one atomic
// load when nobody waits.
type broadcast struct {
	waiters atomic.Int32
	mu      sync.Mutex    // guards ch
	ch      chan struct{} // closed by notify; nil when nobody waits on it
}

// register returns a channel closed at the next notify. Call unregister
// when done with it.
func (b *broadcast) register() <-chan struct{} {
	b.waiters.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) unregister() { b.waiters.Add(-1) }

// notify wakes the registered waiters.
func (b *broadcast) notify() {
	if b.waiters.Load() == 0 {
		return
	}
	b.mu.Lock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	b.mu.Unlock()
}
