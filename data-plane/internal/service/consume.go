package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/batch"
)

// Limits of one consume response.
const (
	DefaultMaxBytes = 1 << 20
	MaxMaxBytes     = 16 << 20
)

// Consume implements dataplanev1connect.ConsumeServiceHandler.
type Consume struct {
	Replicas *replica.Manager
	Metrics  *Metrics
	Logger   *slog.Logger
}

var _ dataplanev1connect.ConsumeServiceHandler = (*Consume)(nil)

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
		start, err := resolveStart(r.Log, pc.Start)
		if err != nil {
			return toConnect(fmt.Errorf("partition %d: %w", pc.Partition, err))
		}
		j := job{r: r, start: start}
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
	g, ctx := errgroup.WithContext(ctx)
	for _, j := range jobs {
		g.Go(func() error {
			return c.stream(ctx, j.r, j.start, j.end, j.hasEnd, maxBytes, send)
		})
	}
	err := g.Wait()
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil // the client went away
	}
	return err
}

// stream sends one partition from next until end (when hasEnd) or until
// ctx ends.
func (c *Consume) stream(ctx context.Context, r *replica.Replica, next, end int64, hasEnd bool, maxBytes int, send func(*dataplanev1.ConsumeResponse) error) error {
	// The first response confirms the stream at once (a client waits for
	// the response headers) and tells where the partition starts.
	if err := send(&dataplanev1.ConsumeResponse{
		Partition: r.Partition, NextOffset: next,
		StartOffset: r.Log.StartOffset(), EndOffset: r.Log.EndOffset(),
	}); err != nil {
		return err
	}
	buf := make([]byte, 0, maxBytes)
	for {
		if hasEnd && next >= end {
			return send(&dataplanev1.ConsumeResponse{
				Partition: r.Partition, NextOffset: next, EndReached: true,
				StartOffset: r.Log.StartOffset(), EndOffset: r.Log.EndOffset(),
			})
		}
		changed := r.Log.Changed()
		data, err := r.Log.Read(next, maxBytes, buf[:0])
		if err != nil {
			if errors.Is(err, commitlog.ErrOffsetOutOfRange) && next < r.Log.StartOffset() {
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
		data, nextOff, records := trim(data, end, hasEnd)
		resp := &dataplanev1.ConsumeResponse{
			Partition:   r.Partition,
			Batches:     data,
			NextOffset:  nextOff,
			StartOffset: r.Log.StartOffset(),
			EndOffset:   r.Log.EndOffset(),
			EndReached:  hasEnd && nextOff >= end,
		}
		// Count before sending: a client that has the last response must
		// find it counted.
		r.BytesOut.Add(float64(len(data)))
		r.RecordsOut.Add(float64(records))
		if err := send(resp); err != nil {
			return err
		}
		if resp.EndReached {
			return nil
		}
		next = nextOff
	}
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

// resolveStart turns a requested start position into an absolute offset.
func resolveStart(l *commitlog.Log, o *dataplanev1.Offset) (int64, error) {
	start, end := l.StartOffset(), l.EndOffset()
	if o == nil {
		return start, nil
	}
	switch p := o.Position.(type) {
	case nil, *dataplanev1.Offset_Beginning:
		return start, nil
	case *dataplanev1.Offset_End:
		return end, nil
	case *dataplanev1.Offset_Absolute:
		if p.Absolute < start || p.Absolute > end {
			return 0, fmt.Errorf("%w: offset %d is outside the partition's offsets %d to %d", commitlog.ErrOffsetOutOfRange, p.Absolute, start, end)
		}
		return p.Absolute, nil
	case *dataplanev1.Offset_FromBeginning:
		if p.FromBeginning < 0 {
			return 0, invalidArgument("from_beginning %d is negative", p.FromBeginning)
		}
		return min(start+p.FromBeginning, end), nil
	case *dataplanev1.Offset_FromEnd:
		if p.FromEnd < 0 {
			return 0, invalidArgument("from_end %d is negative", p.FromEnd)
		}
		return max(end-p.FromEnd, start), nil
	case *dataplanev1.Offset_TimestampMs:
		return l.OffsetForTimestamp(p.TimestampMs)
	default:
		return 0, invalidArgument("unknown start position %T", p)
	}
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
			resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionOffsets{Partition: r.Partition, StartOffset: r.Log.StartOffset(), EndOffset: r.Log.EndOffset()})
		}
		return connect.NewResponse(resp), nil
	}
	for _, p := range req.Msg.Partitions {
		r, err := c.Replicas.Get(req.Msg.Topic, p)
		if err != nil {
			return nil, toConnect(err)
		}
		resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionOffsets{Partition: p, StartOffset: r.Log.StartOffset(), EndOffset: r.Log.EndOffset()})
	}
	return connect.NewResponse(resp), nil
}
