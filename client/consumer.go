package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/internal/batch"
)

// Consumer reads the records of one topic, from one or more partitions, as
// the SPUs push them. Records of each partition come in offset order, each
// once: when a stream breaks with a transient error, the consumer
// reconnects, with a backoff, from the next offset of each partition.
// Records of different partitions interleave in no particular order.
//
// Next and NextBatch must be called from one goroutine at a time; Close may
// be called from any.
type Consumer struct {
	topic   string
	cfg     consumeConfig
	logger  *slog.Logger
	client  *Client
	watcher leaderWatcher   // nil for a static SPU
	ctx     context.Context // the consumer's life; canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup   // the streams' goroutines
	items   chan consumeItem // from the streams to Next
	closed  chan struct{}    // closed by Close
	once    sync.Once        // closes closed

	// live counts the streams that have not ended: incremented before a
	// stream's goroutine starts (by Consume or by a stream that hands
	// partitions to a new leader), decremented by Next when the stream's
	// last item arrives.
	live atomic.Int32

	// The caller's side, touched only by Next and NextBatch.
	recs    []Record       // records of the last response, reused
	pos     int            // the next of recs to return
	scratch []batch.Record // decoded records, reused
	err     error          // the error that ended the consumer, for good
}

type consumeConfig struct {
	partitions []int32
	start      Offset
	end        int64
	hasEnd     bool
	stopAtEnd  bool
	maxBytes   int32
	transforms transforms // SmartModules for the SPU to run
}

// consumeItem is what a stream hands to the caller: a response with the
// offset below which to skip records, the stream's final error, or, when
// both are nil, the news that all its partitions reached the end offset.
type consumeItem struct {
	resp *dataplanev1.ConsumeResponse
	from int64 // skip records below; -1 skips none
	end  int64 // skip records at or after; -1 skips none
	err  error
}

// cursor is where a stream is in one partition.
type cursor struct {
	partition int32
	next      int64 // the next offset to ask for; -1 until known
	end       int64 // the offset to stop at (exclusive); -1 for none
	done      bool  // the end offset is reached
}

// Consume starts reading topic and returns the Consumer. It looks up the
// topic's partitions and, for End, FromEnd and FromBeginning, resolves the
// start to an absolute offset, so that a reconnection resumes exactly
// where the consumer was. ctx bounds the whole consumer: when it is done,
// the streams stop and Next returns its error.
func (c *Client) Consume(ctx context.Context, topic string, opts ...ConsumeOption) (*Consumer, error) {
	var cfg consumeConfig
	for _, o := range opts {
		o.applyToConsumer(&cfg)
	}
	if err := cfg.start.validate(); err != nil {
		return nil, err
	}
	if cfg.hasEnd && cfg.end < 0 {
		return nil, fmt.Errorf("client: negative end offset %d", cfg.end)
	}
	if cfg.maxBytes < 0 {
		return nil, fmt.Errorf("client: negative max bytes %d", cfg.maxBytes)
	}
	if cfg.transforms.err != nil {
		return nil, cfg.transforms.err
	}
	leaders, err := c.topicPartitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	if len(cfg.partitions) > 0 {
		all := make([]int32, len(leaders))
		for i, l := range leaders {
			all[i] = l.partition
		}
		var chosen []partitionLeader
		for _, p := range cfg.partitions {
			i, ok := slices.BinarySearch(all, p)
			if !ok {
				return nil, connect.NewError(connect.CodeNotFound,
					fmt.Errorf("client: topic %q has no partition %d: it has partitions %v", topic, p, all))
			}
			if !slices.ContainsFunc(chosen, func(l partitionLeader) bool { return l.partition == p }) {
				chosen = append(chosen, leaders[i])
			}
		}
		leaders = chosen
	}

	// Group the partitions by leader: one stream per SPU.
	groups := make(map[string][]*cursor)
	var urls []string
	for _, l := range leaders {
		if _, ok := groups[l.leader]; !ok {
			urls = append(urls, l.leader)
		}
		cur := &cursor{partition: l.partition, next: -1, end: -1}
		if cfg.hasEnd {
			cur.end = cfg.end
		}
		groups[l.leader] = append(groups[l.leader], cur)
	}
	for _, url := range urls {
		if err := c.resolveStartRetry(ctx, url, topic, cfg, groups[url]); err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithCancel(ctx)
	watcher, _ := c.resolver.(leaderWatcher)
	cons := &Consumer{
		topic:   topic,
		cfg:     cfg,
		client:  c,
		watcher: watcher,
		logger:  c.logger.With("topic", topic),
		ctx:     runCtx,
		cancel:  cancel,
		items:   make(chan consumeItem, 2),
		closed:  make(chan struct{}),
	}
	for _, url := range urls {
		cursors := groups[url]
		for _, cur := range cursors {
			cur.done = cur.end >= 0 && cur.next >= cur.end
		}
		cons.live.Add(1)
		cons.wg.Add(1)
		go cons.run(runCtx, c.spu(url), cursors)
	}
	return cons, nil
}

// replicaWait bounds how long, with a control plane, the client waits for a
// partition's leader to create the replica the metadata says it leads.
const replicaWait = 10 * time.Second

// resolveStartRetry is resolveStart, retried for a while with a control
// plane when the leader does not hold the partition yet: a topic just
// created is placed before its replicas exist.
func (c *Client) resolveStartRetry(ctx context.Context, url, topic string, cfg consumeConfig, cursors []*cursor) error {
	if _, ok := c.resolver.(leaderWatcher); !ok {
		return c.resolveStart(ctx, url, topic, cfg, cursors)
	}
	deadline := time.Now().Add(replicaWait)
	bo := backoff{min: 50 * time.Millisecond, max: time.Second}
	for {
		err := c.resolveStart(ctx, url, topic, cfg, cursors)
		if err == nil || !IsNotFound(err) || time.Now().After(deadline) {
			return err
		}
		if !bo.wait(ctx) {
			return err
		}
	}
}

// resolveStart sets the cursors' next offsets for cfg.start: the absolute
// offset for At, End, FromEnd and FromBeginning, and -1 (unknown until the
// first response) for Beginning and AtTime, which mean the same when asked
// again after a reconnection. With WithStopAtEnd, it sets their end offsets
// too.
func (c *Client) resolveStart(ctx context.Context, url, topic string, cfg consumeConfig, cursors []*cursor) error {
	start := cfg.start
	if start.kind == offsetAbsolute {
		for _, cur := range cursors {
			cur.next = start.n
		}
	}
	if !cfg.stopAtEnd && (start.kind == offsetAbsolute || start.kind == offsetBeginning || start.kind == offsetTime) {
		return nil
	}
	parts := make([]int32, len(cursors))
	for i, cur := range cursors {
		parts[i] = cur.partition
	}
	offs, err := c.offsetsAt(ctx, url, topic, parts)
	if err != nil {
		return err
	}
	for _, cur := range cursors {
		o, ok := offs[cur.partition]
		if !ok {
			return connect.NewError(connect.CodeNotFound,
				fmt.Errorf("client: the SPU at %s has no partition %d of topic %q", url, cur.partition, topic))
		}
		switch start.kind {
		case offsetEnd:
			cur.next = o.End
		case offsetFromEnd:
			cur.next = max(o.End-start.n, o.Start)
		case offsetFromBeginning:
			cur.next = o.Start + min(start.n, o.End-o.Start)
		}
		if cfg.stopAtEnd && (cur.end < 0 || o.End < cur.end) {
			cur.end = o.End
		}
	}
	return nil
}

// run streams the cursors' partitions from one SPU until they all reach
// the end offset, a permanent error, or ctx is done.
func (cons *Consumer) run(ctx context.Context, conn *spuConn, cursors []*cursor) {
	defer cons.wg.Done()
	byID := make(map[int32]*cursor, len(cursors))
	for _, cur := range cursors {
		byID[cur.partition] = cur
	}
	bo := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	failures := 0 // streams in a row that ended without a response
	for {
		if cons.watcher != nil {
			conn, cursors = cons.follow(ctx, conn, cursors)
			clear(byID)
			for _, cur := range cursors {
				byID[cur.partition] = cur
			}
		}
		req := cons.request(cursors)
		if len(req.GetPartitions()) == 0 {
			cons.deliver(ctx, consumeItem{})
			return
		}
		progressed, err := cons.streamFollowing(ctx, conn, req, byID, cursors)
		if ctx.Err() != nil {
			return
		}
		if !slices.ContainsFunc(cursors, func(c *cursor) bool { return !c.done }) {
			cons.deliver(ctx, consumeItem{})
			return
		}
		if progressed {
			bo.reset()
			failures = 0
		}
		failures++
		// With a control plane, a leader may not hold a new partition
		// yet: NotFound is worth a few more tries.
		notYet := cons.watcher != nil && IsNotFound(err) && failures <= maxUnknownFailures
		if err != nil && !shouldResume(err, failures) && !notYet && !cons.awaitMove(ctx, conn.url, cursors) {
			cons.deliver(ctx, consumeItem{err: fmt.Errorf("client: consume topic %q from %s: %w", cons.topic, conn.url, err)})
			return
		}
		if err == nil {
			err = errors.New("the SPU ended the stream before the end offset")
		}
		cons.logger.Warn("consume stream broke; resuming", "spu", conn.url, "err", err)
		if !bo.wait(ctx) {
			return
		}
	}
}

// follow moves the cursors whose partitions' leaders moved away from conn:
// it keeps the cursors still led by conn's SPU and starts a stream for each
// other leader, resuming at the cursors' offsets. When none stay, it
// returns one of the moved groups to be streamed by the caller.
func (cons *Consumer) follow(ctx context.Context, conn *spuConn, cursors []*cursor) (*spuConn, []*cursor) {
	var stay []*cursor
	moved := make(map[string][]*cursor)
	var urls []string
	for _, cur := range cursors {
		url := cons.watcher.currentLeader(cons.topic, cur.partition)
		if cur.done || url == "" || url == conn.url {
			stay = append(stay, cur)
			continue
		}
		if _, ok := moved[url]; !ok {
			urls = append(urls, url)
		}
		moved[url] = append(moved[url], cur)
	}
	if len(urls) == 0 {
		return conn, cursors
	}
	if !slices.ContainsFunc(stay, func(c *cursor) bool { return !c.done }) {
		// Take the first moved group over; the done cursors are dropped.
		conn, stay = cons.client.spu(urls[0]), moved[urls[0]]
		urls = urls[1:]
	}
	for _, url := range urls {
		cons.logger.Info("partition leaders moved; following", "spu", url, "partitions", len(moved[url]))
		cons.live.Add(1)
		cons.wg.Add(1)
		go cons.run(ctx, cons.client.spu(url), moved[url])
	}
	return conn, stay
}

// streamFollowing runs stream, and with a leaderWatcher ends it when the
// leader of one of the cursors' partitions moves away from conn's SPU.
func (cons *Consumer) streamFollowing(ctx context.Context, conn *spuConn, req *dataplanev1.ConsumeRequest, byID map[int32]*cursor, cursors []*cursor) (bool, error) {
	if cons.watcher == nil {
		return cons.stream(ctx, conn, req, byID)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		ch := cons.watcher.changes()
		for {
			select {
			case <-ch:
				ch = cons.watcher.changes()
				if cons.movedAway(conn.url, cursors) {
					cancel(errStreamLeaderMoved)
					return
				}
			case <-stop:
				return
			}
		}
	})
	progressed, err := cons.stream(sctx, conn, req, byID)
	if ctx.Err() == nil && errors.Is(context.Cause(sctx), errStreamLeaderMoved) {
		return progressed, connect.NewError(connect.CodeUnavailable, errStreamLeaderMoved)
	}
	return progressed, err
}

// errStreamLeaderMoved ends a consume stream whose partitions' leader moved.
var errStreamLeaderMoved = errors.New("client: partition leader moved")

// movedAway reports whether a cursor's partition is now led by another SPU
// than the one at url.
func (cons *Consumer) movedAway(url string, cursors []*cursor) bool {
	for _, cur := range cursors {
		if l := cons.watcher.currentLeader(cons.topic, cur.partition); l != "" && l != url {
			return true
		}
	}
	return false
}

// awaitMove waits a little, after a stream failed for good, for metadata
// that moves one of the cursors' partitions away from the SPU at url: an SPU
// may drop a partition before the client hears that it moved. It reports
// whether one moved.
func (cons *Consumer) awaitMove(ctx context.Context, url string, cursors []*cursor) bool {
	if cons.watcher == nil {
		return false
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for {
		ch := cons.watcher.changes()
		if cons.movedAway(url, cursors) {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// request returns the ConsumeRequest that continues from the cursors.
func (cons *Consumer) request(cursors []*cursor) *dataplanev1.ConsumeRequest {
	req := &dataplanev1.ConsumeRequest{Topic: cons.topic, MaxBytes: cons.cfg.maxBytes, Smartmodules: cons.cfg.transforms.chain}
	for _, cur := range cursors {
		if cur.done {
			continue
		}
		pc := &dataplanev1.PartitionConsume{Partition: cur.partition, Start: cons.cfg.start.proto()}
		if cur.next >= 0 {
			pc.Start = At(cur.next).proto()
		}
		if cur.end >= 0 {
			pc.EndOffset = &cur.end
		}
		req.Partitions = append(req.Partitions, pc)
	}
	return req
}

// stream runs one Consume stream and hands its responses to the caller,
// advancing the cursors. It returns nil when the SPU ended the stream
// cleanly, and reports whether any records came.
func (cons *Consumer) stream(ctx context.Context, conn *spuConn, req *dataplanev1.ConsumeRequest, byID map[int32]*cursor) (progressed bool, err error) {
	stream, err := conn.consume.Consume(ctx, connect.NewRequest(req))
	if err != nil {
		return false, err
	}
	defer stream.Close()
	for stream.Receive() {
		resp := stream.Msg()
		cur := byID[resp.GetPartition()]
		if cur == nil {
			return progressed, connect.NewError(connect.CodeInternal,
				fmt.Errorf("client: the SPU sent records of partition %d, which the consumer did not ask for", resp.GetPartition()))
		}
		if cur.done {
			// The SPU says the end is reached after its first response
			// already showed it.
			continue
		}
		from := cur.next
		cur.next = max(cur.next, resp.GetNextOffset())
		if resp.GetEndReached() || cur.end >= 0 && cur.next >= cur.end {
			cur.done = true
		}
		if len(resp.GetBatches()) == 0 {
			continue // the SPU's first response, which confirms the stream
		}
		progressed = true
		if !cons.deliver(ctx, consumeItem{resp: resp, from: from, end: cur.end}) {
			return progressed, ctx.Err()
		}
	}
	return progressed, stream.Err()
}

// deliver hands it to the caller, unless ctx ends first.
func (cons *Consumer) deliver(ctx context.Context, it consumeItem) bool {
	select {
	case cons.items <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

// maxUnknownFailures is how many streams in a row may fail, without
// delivering anything, with an error that may or may not be transient
// before the consumer gives up.
const maxUnknownFailures = 10

// shouldResume reports whether a consume stream that ended with err, nil
// for a clean end before the end offset, is worth opening again, after
// failures streams in a row that delivered nothing. Transient errors are
// retried forever; internal and unknown ones, such as a reset HTTP/2
// stream, a few times; others, such as a missing partition or an offset out
// of range, not at all.
func shouldResume(err error, failures int) bool {
	switch {
	case err == nil || IsRetriable(err):
		return true
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnknown, connect.CodeInternal:
		return failures <= maxUnknownFailures
	}
	return false
}

// Next returns the next record, waiting for one until ctx is done. It
// returns io.EOF once every partition has reached its end offset (see
// WithEndOffset and WithStopAtEnd); any other error ends the consumer too, except ctx's own,
// after which Next may be called again.
//
// The record's Key, Value and Headers share memory with the response they
// came in. The consumer never writes to it, so they stay valid for as long
// as the caller keeps them.
func (cons *Consumer) Next(ctx context.Context) (Record, error) {
	for cons.pos >= len(cons.recs) {
		if err := cons.fill(ctx); err != nil {
			return Record{}, err
		}
	}
	r := cons.recs[cons.pos]
	cons.pos++
	return r, nil
}

// NextBatch returns the records of one response of the SPU (or those that
// Next has not yet returned), all from one partition, in offset order. It
// waits and fails as Next does. It is faster than Next for large volumes.
//
// The returned slice is reused by the next call to Next or NextBatch: copy
// the Record values to keep them. Their Key, Value and Headers stay valid,
// as with Next.
func (cons *Consumer) NextBatch(ctx context.Context) ([]Record, error) {
	for cons.pos >= len(cons.recs) {
		if err := cons.fill(ctx); err != nil {
			return nil, err
		}
	}
	out := cons.recs[cons.pos:]
	cons.pos = len(cons.recs)
	return out, nil
}

// errConsumerClosed is what Next returns after Close.
var errConsumerClosed = connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%w: consumer closed", ErrClosed))

// fill decodes the next response with records into cons.recs.
func (cons *Consumer) fill(ctx context.Context) error {
	if cons.err != nil {
		return cons.err
	}
	for {
		if cons.live.Load() == 0 {
			cons.err = io.EOF
			return cons.err
		}
		var it consumeItem
		select {
		case it = <-cons.items:
		case <-ctx.Done():
			return ctx.Err()
		case <-cons.closed:
			cons.err = errConsumerClosed
			return cons.err
		case <-cons.ctx.Done():
			select {
			case <-cons.closed:
				cons.err = errConsumerClosed
			default:
				cons.err = fmt.Errorf("client: consume topic %q: %w", cons.topic, context.Cause(cons.ctx))
			}
			return cons.err
		}
		if it.resp == nil {
			if it.err != nil {
				cons.err = it.err
				cons.cancel()
				return cons.err
			}
			cons.live.Add(-1)
			continue
		}
		if err := cons.decode(it); err != nil {
			cons.err = err
			cons.cancel()
			return err
		}
		if len(cons.recs) > 0 {
			return nil
		}
	}
}

// decode decodes the records of it into cons.recs, skipping those below
// it.from (the first batch may begin before the offset asked for) and at
// or after the end offset.
func (cons *Consumer) decode(it consumeItem) error {
	resp := it.resp
	var err error
	cons.scratch, err = batch.DecodeAll(resp.GetBatches(), cons.scratch[:0])
	if err != nil {
		return connect.NewError(connect.CodeDataLoss,
			fmt.Errorf("client: consume topic %q partition %d: %w", cons.topic, resp.GetPartition(), err))
	}
	cons.recs, cons.pos = cons.recs[:0], 0
	part := resp.GetPartition()
	for i := range cons.scratch {
		br := &cons.scratch[i]
		if br.Offset < it.from || it.end >= 0 && br.Offset >= it.end {
			continue
		}
		cons.recs = append(cons.recs, Record{
			Partition: part,
			Offset:    br.Offset,
			Timestamp: time.UnixMilli(br.Timestamp),
			Key:       br.Key,
			Value:     br.Value,
			Headers:   fromBatchHeaders(br.Headers),
		})
	}
	return nil
}

// Close stops the consumer's streams and waits for its goroutines. Next
// returns ErrClosed afterwards. Close returns nil; calling it again does
// nothing.
func (cons *Consumer) Close() error {
	cons.once.Do(func() {
		close(cons.closed)
		cons.cancel()
		cons.wg.Wait()
	})
	return nil
}
