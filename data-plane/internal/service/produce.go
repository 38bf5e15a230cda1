package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/data-plane/internal/authz"
	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/modules"
	"github.com/spatehq/spate/data-plane/internal/replica"
)

// MaxInFlight is how many produce requests of one stream may be written but
// not yet acknowledged (waiting for fsync or for the network). When it is
// reached the SPU stops reading the stream, and HTTP/2 flow control pushes
// back on the producer: memory stays bounded.
const MaxInFlight = 256

// Produce implements dataplanev1connect.ProduceServiceHandler.
type Produce struct {
	Replicas *replica.Manager
	Metrics  *Metrics
	Logger   *slog.Logger
	// Authz checks each request of a Produce stream (ProduceOne is checked
	// by its interceptor); nil allows everything.
	Authz *authz.Authorizer
	// SmartModules runs the SmartModules a request names (smartmodule.go);
	// nil refuses such requests.
	SmartModules *modules.Resolver
}

var _ dataplanev1connect.ProduceServiceHandler = (*Produce)(nil)

// pending is a written request waiting to be acknowledged.
type pending struct {
	resp     *dataplanev1.ProduceResponse
	log      *commitlog.Log // set when the ack waits for fsync
	received time.Time
}

// Produce reads requests as fast as the client sends them, writes each to
// its partition's log, and hands it to a sender goroutine that waits for
// fsync when asked and answers in order. Bad input fails that request only.
func (p *Produce) Produce(ctx context.Context, stream *connect.BidiStream[dataplanev1.ProduceRequest, dataplanev1.ProduceResponse]) error {
	g, ctx := errgroup.WithContext(ctx)
	acks := make(chan pending, MaxInFlight)
	g.Go(func() error {
		for a := range acks {
			if a.log != nil {
				if err := a.log.Sync(ctx, a.resp.LastOffset); err != nil {
					a.resp.ErrorCode, a.resp.ErrorMessage = p.fail(err)
				}
			}
			if err := stream.Send(a.resp); err != nil {
				return err
			}
			p.Metrics.produceLatency.Observe(time.Since(a.received).Seconds())
		}
		return nil
	})
	g.Go(func() error {
		defer close(acks)
		sm := p.smartModules() // SmartModules: smartmodule.go
		defer sm.close()
		for {
			req, err := stream.Receive()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			a := pending{resp: &dataplanev1.ProduceResponse{RequestId: req.RequestId}, received: time.Now()}
			var base, last int64
			var l *commitlog.Log
			err = p.Authz.Allow(ctx, access.Produce, req.Topic)
			if err == nil {
				base, last, l, err = sm.write(ctx, req)
			}
			if err != nil {
				a.resp.ErrorCode, a.resp.ErrorMessage = p.fail(err)
			} else {
				a.resp.BaseOffset, a.resp.LastOffset, a.log = base, last, l
			}
			select {
			case acks <- a:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	})
	return g.Wait()
}

// ProduceOne writes batches in a single call.
func (p *Produce) ProduceOne(ctx context.Context, req *connect.Request[dataplanev1.ProduceOneRequest]) (*connect.Response[dataplanev1.ProduceOneResponse], error) {
	start := time.Now()
	base, last, l, err := p.writeOne(ctx, req.Msg)
	if err == nil && l != nil {
		err = l.Sync(ctx, last)
	}
	if err != nil {
		p.fail(err)
		return nil, toConnect(err)
	}
	p.Metrics.produceLatency.Observe(time.Since(start).Seconds())
	return connect.NewResponse(&dataplanev1.ProduceOneResponse{BaseOffset: base, LastOffset: last}), nil
}

// write appends the batches to the partition's log. It returns the log when
// the acknowledgement must wait for fsync.
func (p *Produce) write(topic string, partition int32, batches []byte, acks dataplanev1.Acks) (base, last int64, syncLog *commitlog.Log, err error) {
	if len(batches) == 0 {
		return 0, 0, nil, invalidArgument("produce to %s/%d: no batches in the request", topic, partition)
	}
	r, err := p.Replicas.Get(topic, partition)
	if err != nil {
		return 0, 0, nil, err
	}
	if err := r.CheckLeader(); err != nil {
		return 0, 0, nil, err
	}
	base, last, err = r.Log.Append(batches)
	if err != nil {
		return 0, 0, nil, err
	}
	r.BytesIn.Add(float64(len(batches)))
	r.RecordsIn.Add(float64(last - base + 1))
	switch acks {
	case dataplanev1.Acks_ACKS_FSYNC:
		syncLog = r.Log
	case dataplanev1.Acks_ACKS_UNSPECIFIED:
		if r.Log.Config().Durability == commitlog.Fsync {
			syncLog = r.Log
		}
	}
	return base, last, syncLog, nil
}

// fail counts and logs a refused request and returns what the client sees.
func (p *Produce) fail(err error) (uint32, string) {
	ce := toConnect(err)
	p.Metrics.produceErrors.WithLabelValues(ce.Code().String()).Inc()
	if ce.Code() == connect.CodeInternal || ce.Code() == connect.CodeResourceExhausted {
		p.Logger.Error("produce failed", "err", err)
	} else {
		p.Logger.Debug("produce refused", "err", err)
	}
	return uint32(ce.Code()), ce.Message()
}
