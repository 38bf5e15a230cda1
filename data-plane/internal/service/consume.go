package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/modules"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/remote"
)

// Limits of one consume response.
const (
	DefaultMaxBytes = 1 << 20
	MaxMaxBytes     = 16 << 20
)

// offsetsRemoteTimeout bounds the wait of Offsets for the remote start: past
// it, the local start is reported.
const offsetsRemoteTimeout = 2 * time.Second

// Consume implements dataplanev1connect.ConsumeServiceHandler.
type Consume struct {
	Replicas *replica.Manager
	Metrics  *Metrics
	Logger   *slog.Logger
	// Remote, when set, serves the offsets below a partition's local start
	// offset from the remote tier (tiered storage), through the same
	// stream: a consume that starts or falls behind below the local start
	// reads from it until it reaches the local start, then from the log.
	// Nil: only the local log is served, as without tiered storage.
	Remote RemoteReader
	// SmartModules runs the SmartModules a stream names (smartmodule.go);
	// nil refuses such streams.
	SmartModules *modules.Resolver
}

var _ dataplanev1connect.ConsumeServiceHandler = (*Consume)(nil)

// RemoteReader reads the remote tier of the SPU's partitions.
// *remote.Reader implements it; construct it over the cluster's object
// store with remote.NewReader. Its methods are safe for concurrent use, and
// fail with errors wrapping remote.ErrOffsetOutOfRange (offset not held
// remotely), remote.ErrMissing or remote.ErrCorrupt (a damaged remote
// segment, named by a *remote.SegmentError) or objstore.ErrUnavailable
// (retry later).
type RemoteReader interface {
	// Start returns the first offset held remotely, and false when the
	// partition holds nothing remotely or is not tiered.
	Start(ctx context.Context, topic string, partition int32) (offset int64, ok bool, err error)
	// Read returns whole batches from the one holding offset, up to
	// maxBytes but at least one, and the offset after them.
	Read(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (batches []byte, next int64, err error)
	// ReadFunc is Read without a copy: fn gets the batches, valid only
	// until it returns, and ReadFunc returns fn's error.
	ReadFunc(ctx context.Context, topic string, partition int32, offset int64, maxBytes int, fn func(batches []byte) error) (next int64, err error)
	// OffsetForTimestamp returns the base offset of the first remote
	// batch whose max timestamp is at least ts, and whether there is one.
	OffsetForTimestamp(ctx context.Context, topic string, partition int32, ts int64) (offset int64, found bool, err error)
}

var _ RemoteReader = (*remote.Reader)(nil)

// Consume streams every requested partition from one goroutine each. A
// goroutine holds one read buffer and blocks in Send while the client is
// slow (HTTP/2 flow control), so a consume stream holds at most one
// response per partition in memory. New batches wake the goroutines through
// the log's Changed channel: there is no polling.
func (c *Consume) Consume(ctx context.Context, req *connect.Request[dataplanev1.ConsumeRequest], stream *connect.ServerStream[dataplanev1.ConsumeResponse]) error {
	msg := req.Msg
	if len(msg.Partitions) == 0 {
		return invalidArgument("consume %q: name at least one partition", msg.Topic)
	}
	maxBytes := int(msg.MaxBytes)
	switch {
	case maxBytes == 0:
		maxBytes = DefaultMaxBytes
	case maxBytes < 0:
		return invalidArgument("max_bytes %d is negative", maxBytes)
	case maxBytes > MaxMaxBytes:
		maxBytes = MaxMaxBytes
	}
	type job struct {
		r          *replica.Replica
		start, end int64
		hasEnd     bool
		logStart   int64 // the partition's first offset, remote tier included when it was looked up
	}
	jobs := make([]job, 0, len(msg.Partitions))
	seen := map[int32]bool{}
	for _, pc := range msg.Partitions {
		if seen[pc.Partition] {
			return invalidArgument("partition %d is named twice", pc.Partition)
		}
		seen[pc.Partition] = true
		r, err := c.Replicas.Get(msg.Topic, pc.Partition)
		if err != nil {
			return toConnect(err)
		}
		start, logStart, err := c.resolveStart(ctx, r, pc.Start)
		if err != nil {
			if isRemoteError(err) {
				return c.remoteError(ctx, r, r.Log.StartOffset(), err)
			}
			return toConnect(fmt.Errorf("partition %d: %w", pc.Partition, err))
		}
		j := job{r: r, start: start, logStart: logStart}
		if pc.EndOffset != nil {
			j.end, j.hasEnd = *pc.EndOffset, true
		}
		jobs = append(jobs, j)
	}

	c.Metrics.consumeStreams.Inc()
	defer c.Metrics.consumeStreams.Dec()
	var sendMu sync.Mutex // serialises stream.Send, which is not safe for concurrent use
	send := func(resp *dataplanev1.ConsumeResponse) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(resp)
	}
	send, smErr := c.withSmartModules(ctx, msg, send) // SmartModules: smartmodule.go
	if smErr != nil {
		return smErr
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, j := range jobs {
		g.Go(func() error {
			return c.stream(ctx, j.r, j.logStart, j.start, j.end, j.hasEnd, maxBytes, send)
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // the client went away
	}
	return err
}

// stream sends one partition from next until end (when hasEnd) or until
// ctx ends. Offsets below the log's local start come from c.Remote;
// logStart is the partition's first offset in either tier when the stream
// began (if resolving its start needed the remote tier; else the local
// start), which responses report while it is below the local start.
func (c *Consume) stream(ctx context.Context, r *replica.Replica, logStart, next, end int64, hasEnd bool, maxBytes int, send func(*dataplanev1.ConsumeResponse) error) error {
	startOffset := func() int64 { return min(logStart, r.Log.StartOffset()) }
	// The first response confirms the stream at once (a client waits for
	// the response headers) and tells where the partition starts.
	if err := send(&dataplanev1.ConsumeResponse{
		Partition: r.Partition, NextOffset: next,
		StartOffset: startOffset(), EndOffset: r.Log.EndOffset(),
	}); err != nil {
		return err
	}
	buf := make([]byte, 0, maxBytes)
	// emit sends data as the next response and moves next on; done says
	// the stream reached its end offset. data is not kept: a response is
	// marshalled by the time send returns.
	emit := func(data []byte) (done bool, err error) {
		data, nextOff, records := trim(data, end, hasEnd)
		resp := &dataplanev1.ConsumeResponse{
			Partition:   r.Partition,
			Batches:     data,
			NextOffset:  nextOff,
			StartOffset: startOffset(),
			EndOffset:   r.Log.EndOffset(),
			EndReached:  hasEnd && nextOff >= end,
		}
		// Count before sending: a client that has the last response must
		// find it counted.
		r.BytesOut.Add(float64(len(data)))
		r.RecordsOut.Add(float64(records))
		if err := send(resp); err != nil {
			return false, err
		}
		next = nextOff
		return resp.EndReached, nil
	}
	for {
		if hasEnd && next >= end {
			return send(&dataplanev1.ConsumeResponse{
				Partition: r.Partition, NextOffset: next, EndReached: true,
				StartOffset: startOffset(), EndOffset: r.Log.EndOffset(),
			})
		}
		var data []byte
		var err error
		if localStart := r.Log.StartOffset(); c.Remote != nil && next < localStart {
			// The remote tier's batches are the bytes the log held, so
			// the stream goes on from the local log where they end.
			// From the remote tier's cache without a copy: the
			// response is sent from inside ReadFunc.
			var done bool
			var sendErr error
			at := next
			_, err = c.Remote.ReadFunc(ctx, r.Topic, r.Partition, next, maxBytes, func(b []byte) error {
				done, sendErr = emit(b)
				return sendErr
			})
			switch {
			case sendErr != nil:
				return sendErr
			case err != nil:
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return c.remoteError(ctx, r, at, err)
			case done:
				return nil
			}
			continue
		} else {
			changed := r.Log.Changed()
			data, err = r.Log.Read(next, maxBytes, buf[:0])
			if err != nil {
				if errors.Is(err, commitlog.ErrOffsetOutOfRange) && next < r.Log.StartOffset() {
					if c.Remote != nil {
						continue // retention moved the local start past next: read remotely
					}
					return connect.NewError(connect.CodeOutOfRange, fmt.Errorf(
						"partition %d: offset %d is no longer retained (the partition now starts at %d); resume from the beginning",
						r.Partition, next, r.Log.StartOffset()))
				}
				c.Logger.Error("consume read failed", "topic", r.Topic, "partition", r.Partition, "offset", next, "err", err)
				return toConnect(err)
			}
			if len(data) == 0 {
				select {
				case <-changed:
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if cap(data) > cap(buf) {
				buf = data // keep the larger buffer Read allocated for an oversized batch
			}
		}
		if done, err := emit(data); err != nil || done {
			return err
		}
	}
}

// isRemoteError reports whether err comes from the remote tier.
func isRemoteError(err error) bool {
	var se *remote.SegmentError
	return errors.As(err, &se) || errors.Is(err, remote.ErrOffsetOutOfRange) || errors.Is(err, remote.ErrMissing) ||
		errors.Is(err, remote.ErrCorrupt) || errors.Is(err, objstore.ErrUnavailable) || errors.Is(err, remote.ErrClosed)
}

// remoteError logs a failure of the remote tier at offset next of r and
// returns what the client may see: which offsets are affected and whether
// to retry, without the object store's names and addresses.
func (c *Consume) remoteError(ctx context.Context, r *replica.Replica, next int64, err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	log := func() {
		c.Logger.Error("remote read failed", "topic", r.Topic, "partition", r.Partition, "offset", next, "err", err)
	}
	var se *remote.SegmentError
	switch {
	case errors.Is(err, objstore.ErrUnavailable):
		c.Logger.Warn("remote tier unavailable", "topic", r.Topic, "partition", r.Partition, "offset", next, "err", err)
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"partition %d: offset %d is in the remote tier, and the object store is unavailable; retry later", r.Partition, next))
	case errors.As(err, &se) && (errors.Is(err, remote.ErrMissing) || errors.Is(err, remote.ErrCorrupt)):
		log()
		what := "missing from"
		if errors.Is(err, remote.ErrCorrupt) {
			what = "corrupt in"
		}
		return connect.NewError(connect.CodeDataLoss, fmt.Errorf(
			"partition %d: offsets %d to %d are %s the remote tier and cannot be read (the SPU logged the details); consume from offset %d to skip them",
			r.Partition, se.Base, se.Last, what, se.Last+1))
	case errors.Is(err, remote.ErrOffsetOutOfRange):
		// Below the remote start, remote retention deleted the offset.
		start, ok, serr := c.Remote.Start(ctx, r.Topic, r.Partition)
		if !ok {
			start = r.Log.StartOffset()
		}
		if serr == nil && next < start {
			return connect.NewError(connect.CodeOutOfRange, fmt.Errorf(
				"partition %d: offset %d is no longer retained (the partition now starts at %d); resume from the beginning",
				r.Partition, next, start))
		}
		// Past the remote end: the segment may have been uploaded after the
		// reader's listing (which it extends at most once a second), so
		// the client retries rather than skip.
		log()
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"partition %d: offset %d is below the SPU's start (%d) and not yet found in the remote tier; retry later",
			r.Partition, next, r.Log.StartOffset()))
	case errors.Is(err, remote.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("partition %d: the SPU is shutting down; retry", r.Partition))
	}
	log()
	return toConnect(err)
}

// logStart returns the first offset of r's partition in either tier: the
// remote start when c.Remote holds offsets below the local start, which
// needs the remote index (cached by the reader).
func (c *Consume) logStart(ctx context.Context, r *replica.Replica) (int64, error) {
	local := r.Log.StartOffset()
	if c.Remote == nil || local == 0 {
		return local, nil
	}
	start, ok, err := c.Remote.Start(ctx, r.Topic, r.Partition)
	if err != nil {
		return 0, err
	}
	if ok && start < local {
		return start, nil
	}
	return local, nil
}

// trim walks the headers of whole batches in data, drops the batches that
// begin at or after end (when hasEnd), and returns what is left, the offset
// after it and how many records it holds.
func trim(data []byte, end int64, hasEnd bool) ([]byte, int64, int64) {
	var next, records int64
	pos := 0
	for pos < len(data) {
		h, err := batch.ParseHeader(data[pos:])
		if err != nil || pos+h.Size() > len(data) {
			break // cannot happen for bytes from the log; stop at what is whole
		}
		if hasEnd && h.BaseOffset >= end {
			break
		}
		pos += h.Size()
		next = h.NextOffset()
		records += int64(h.RecordCount)
	}
	return data[:pos], next, records
}

// resolveStart turns a requested start position into an absolute offset,
// and returns the partition's first offset, which includes the remote tier
// when the position needed it. Positions that lie in the local log need no
// request to the object store, so consumers of recent data go on while it
// is unreachable.
func (c *Consume) resolveStart(ctx context.Context, r *replica.Replica, o *dataplanev1.Offset) (offset, logStart int64, err error) {
	l := r.Log
	local, end := l.StartOffset(), l.EndOffset()
	first := func() (int64, error) { return c.logStart(ctx, r) }
	if o == nil {
		o = &dataplanev1.Offset{}
	}
	switch p := o.Position.(type) {
	case nil, *dataplanev1.Offset_Beginning:
		start, err := first()
		return start, start, err
	case *dataplanev1.Offset_End:
		return end, local, nil
	case *dataplanev1.Offset_Absolute:
		if p.Absolute >= local && p.Absolute <= end {
			return p.Absolute, local, nil
		}
		start := local
		if p.Absolute < local {
			if start, err = first(); err != nil {
				return 0, 0, err
			}
		}
		if p.Absolute < start || p.Absolute > end {
			return 0, 0, fmt.Errorf("%w: offset %d is outside the partition's offsets %d to %d", commitlog.ErrOffsetOutOfRange, p.Absolute, start, end)
		}
		return p.Absolute, start, nil
	case *dataplanev1.Offset_FromBeginning:
		if p.FromBeginning < 0 {
			return 0, 0, invalidArgument("from_beginning %d is negative", p.FromBeginning)
		}
		start, err := first()
		return min(start+p.FromBeginning, end), start, err
	case *dataplanev1.Offset_FromEnd:
		if p.FromEnd < 0 {
			return 0, 0, invalidArgument("from_end %d is negative", p.FromEnd)
		}
		if end-p.FromEnd >= local {
			return end - p.FromEnd, local, nil
		}
		start, err := first()
		return max(end-p.FromEnd, start), start, err
	case *dataplanev1.Offset_TimestampMs:
		off, err := l.OffsetForTimestamp(p.TimestampMs)
		if err != nil || c.Remote == nil || local == 0 || off > local || !olderThanLocalStart(l, p.TimestampMs) {
			// Nothing below the local start, or the local start's batch
			// is older than the timestamp: the local answer holds.
			return off, local, err
		}
		roff, found, err := c.Remote.OffsetForTimestamp(ctx, r.Topic, r.Partition, p.TimestampMs)
		if err != nil {
			return 0, 0, err
		}
		start, err := first() // the listing is cached by now
		if err != nil {
			return 0, 0, err
		}
		if found && roff < off {
			return roff, start, nil
		}
		return off, start, nil
	default:
		return 0, 0, invalidArgument("unknown start position %T", p)
	}
}

// olderThanLocalStart reports whether ts is at or before the first
// timestamp of the log's first batch, so that older batches, in the remote
// tier, may hold it. (Timestamps need not grow with offsets; a record older
// than that in a later batch is found only from the local start on, as in
// a log without a remote tier.)
func olderThanLocalStart(l *commitlog.Log, ts int64) bool {
	data, err := l.Read(l.StartOffset(), 1, nil)
	if err != nil || len(data) == 0 {
		return true
	}
	h, err := batch.ParseHeader(data)
	return err != nil || ts <= h.FirstTimestamp
}

// Offsets returns the start and end offsets of partitions.
func (c *Consume) Offsets(ctx context.Context, req *connect.Request[dataplanev1.OffsetsRequest]) (*connect.Response[dataplanev1.OffsetsResponse], error) {
	resp := &dataplanev1.OffsetsResponse{}
	if len(req.Msg.Partitions) == 0 {
		rs := c.Replicas.List(req.Msg.Topic)
		if len(rs) == 0 {
			return nil, toConnect(replica.UnknownTopicError(req.Msg.Topic))
		}
		for _, r := range rs {
			resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionOffsets{Partition: r.Partition, StartOffset: c.offsetsStart(ctx, r), EndOffset: r.Log.EndOffset()})
		}
		return connect.NewResponse(resp), nil
	}
	for _, p := range req.Msg.Partitions {
		r, err := c.Replicas.Get(req.Msg.Topic, p)
		if err != nil {
			return nil, toConnect(err)
		}
		resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionOffsets{Partition: p, StartOffset: c.offsetsStart(ctx, r), EndOffset: r.Log.EndOffset()})
	}
	return connect.NewResponse(resp), nil
}

// offsetsStart is the start offset Offsets reports: the first offset in
// either tier, or the local start when the remote tier cannot be reached.
func (c *Consume) offsetsStart(ctx context.Context, r *replica.Replica) int64 {
	ctx, cancel := context.WithTimeout(ctx, offsetsRemoteTimeout)
	defer cancel()
	start, err := c.logStart(ctx, r)
	if err != nil {
		c.Logger.Warn("remote start offset unknown; reporting the local one", "topic", r.Topic, "partition", r.Partition, "err", err)
		return r.Log.StartOffset()
	}
	return start
}
