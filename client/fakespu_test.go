package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/internal/batch"
)

// fakeSPU is an in-memory SPU for tests that need fault injection: it
// keeps batches in memory, assigns offsets, and serves consumers, with
// hooks to fail requests and cut streams. Tests of ordinary behavior run
// against it and against the real SPU.
type fakeSPU struct {
	srv       *httptest.Server
	closeOnce sync.Once

	mu         sync.Mutex
	partitions map[partKey]*fakePartition
	changed    chan struct{} // closed and replaced when any partition grows
	requests   []fakeRequest // every produce request, in arrival order

	// discard makes Produce answer without storing, for benchmarks.
	discard bool
	// onProduce, if set, is called for each produce request before it is
	// stored; a non-nil error is sent as the request's error; drop ends
	// the stream abruptly without answering.
	onProduce func(n int, req *dataplanev1.ProduceRequest) (err *connect.Error, drop bool)
	// onConsume, if set, is called before each consume response is sent,
	// except the first one of each partition, which only confirms its start,
	// with how many the stream has sent; a non-nil error ends the stream
	// with it (errAbort resets the HTTP/2 stream).
	onConsume func(sent int, resp *dataplanev1.ConsumeResponse) error
}

// errAbort makes onConsume reset the stream rather than end it with an
// error; errCleanEnd makes it end the stream without an error.
var (
	errAbort    = errors.New("abort")
	errCleanEnd = errors.New("clean end")
)

type partKey struct {
	topic     string
	partition int32
}

type fakePartition struct {
	batches [][]byte // stored batches, base offsets stamped
	bases   []int64  // base offset of each batch
	start   int64
	end     int64
}

type fakeRequest struct {
	Partition int32
	Records   int
	Bytes     int
	Acks      dataplanev1.Acks
}

// newFakeSPU starts a fake SPU serving h2c on a loopback port, stopped at
// the end of the test. It holds the given partitions of topic.
func newFakeSPU(tb testing.TB, topic string, partitions int) *fakeSPU {
	tb.Helper()
	f := startFakeSPU()
	tb.Cleanup(f.Close)
	for i := range partitions {
		f.ensure(topic, int32(i))
	}
	return f
}

func startFakeSPU() *fakeSPU { return startFakeSPUOn(nil) }

// startFakeSPUOn starts a fake SPU on ln, or on a new loopback port when
// ln is nil.
func startFakeSPUOn(ln net.Listener) *fakeSPU {
	f := &fakeSPU{partitions: make(map[partKey]*fakePartition), changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle(dataplanev1connect.NewProduceServiceHandler(f))
	mux.Handle(dataplanev1connect.NewConsumeServiceHandler(f))
	mux.Handle(dataplanev1connect.NewPartitionServiceHandler(f))
	mux.Handle(internalv1connect.NewReplicaServiceHandler(f))
	f.srv = httptest.NewUnstartedServer(mux)
	if ln != nil {
		f.srv.Listener.Close()
		f.srv.Listener = ln
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	f.srv.Config.Protocols = &p
	f.srv.Config.HTTP2 = &http.HTTP2Config{
		MaxReceiveBufferPerConnection: 64 << 20,
		MaxReceiveBufferPerStream:     16 << 20,
	}
	f.srv.Start()
	return f
}

func (f *fakeSPU) URL() string { return f.srv.URL }

func (f *fakeSPU) Close() {
	f.closeOnce.Do(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
}

func (f *fakeSPU) ensure(topic string, partition int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := partKey{topic, partition}
	if f.partitions[k] != nil {
		return false
	}
	f.partitions[k] = &fakePartition{}
	return true
}

// produceRequests returns a copy of the produce requests seen so far.
func (f *fakeSPU) produceRequests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.requests...)
}

// append stores the batches of one request and returns the base and last
// offsets, or a Connect error.
func (f *fakeSPU) append(topic string, partition int32, batches []byte, acks dataplanev1.Acks) (int64, int64, *connect.Error) {
	var records []int
	var sizes []int
	for rest := batches; len(rest) > 0; {
		first, h, r, err := batch.Next(rest)
		if err != nil {
			return 0, 0, connect.NewError(connect.CodeInvalidArgument, err)
		}
		records = append(records, int(h.RecordCount))
		sizes = append(sizes, len(first))
		rest = r
	}
	if len(records) == 0 {
		return 0, 0, connect.NewError(connect.CodeInvalidArgument, errors.New("no batches"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for _, n := range records {
		total += n
	}
	p := f.partitions[partKey{topic, partition}]
	if p == nil {
		return 0, 0, connect.NewError(connect.CodeNotFound, fmt.Errorf("no partition %d of topic %q", partition, topic))
	}
	base := p.end
	if f.discard {
		p.end += int64(total)
		return base, p.end - 1, nil
	}
	f.requests = append(f.requests, fakeRequest{Partition: partition, Records: total, Bytes: len(batches), Acks: acks})
	rest := batches
	for i, n := range records {
		b := append([]byte(nil), rest[:sizes[i]]...)
		rest = rest[sizes[i]:]
		batch.SetBaseOffset(b, p.end)
		p.batches = append(p.batches, b)
		p.bases = append(p.bases, p.end)
		p.end += int64(n)
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return base, p.end - 1, nil
}

func (f *fakeSPU) Produce(ctx context.Context, stream *connect.BidiStream[dataplanev1.ProduceRequest, dataplanev1.ProduceResponse]) error {
	n := 0
	for {
		req, err := stream.Receive()
		if err != nil {
			return nil // the client closed its side, or went away
		}
		n++
		resp := &dataplanev1.ProduceResponse{RequestId: req.GetRequestId()}
		var cerr *connect.Error
		if f.onProduce != nil {
			var drop bool
			cerr, drop = f.onProduce(n, req)
			if drop {
				panic(http.ErrAbortHandler)
			}
		}
		if cerr == nil {
			resp.BaseOffset, resp.LastOffset, cerr = f.append(req.GetTopic(), req.GetPartition(), req.GetBatches(), req.GetAcks())
		}
		if cerr != nil {
			resp.ErrorCode, resp.ErrorMessage = uint32(cerr.Code()), cerr.Message()
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

func (f *fakeSPU) ProduceOne(ctx context.Context, req *connect.Request[dataplanev1.ProduceOneRequest]) (*connect.Response[dataplanev1.ProduceOneResponse], error) {
	base, last, cerr := f.append(req.Msg.GetTopic(), req.Msg.GetPartition(), req.Msg.GetBatches(), req.Msg.GetAcks())
	if cerr != nil {
		return nil, cerr
	}
	return connect.NewResponse(&dataplanev1.ProduceOneResponse{BaseOffset: base, LastOffset: last}), nil
}

// position resolves a consume start against a partition. f.mu is held.
func (p *fakePartition) position(o *dataplanev1.Offset) (int64, error) {
	switch pos := o.GetPosition().(type) {
	case nil, *dataplanev1.Offset_Beginning:
		return p.start, nil
	case *dataplanev1.Offset_End:
		return p.end, nil
	case *dataplanev1.Offset_Absolute:
		if pos.Absolute < p.start || pos.Absolute > p.end {
			return 0, connect.NewError(connect.CodeOutOfRange, fmt.Errorf("offset %d outside [%d, %d]", pos.Absolute, p.start, p.end))
		}
		return pos.Absolute, nil
	case *dataplanev1.Offset_FromBeginning:
		return min(p.start+pos.FromBeginning, p.end), nil
	case *dataplanev1.Offset_FromEnd:
		return max(p.end-pos.FromEnd, p.start), nil
	case *dataplanev1.Offset_TimestampMs:
		for i, b := range p.batches {
			h, _ := batch.ParseHeader(b)
			if h.MaxTimestamp >= pos.TimestampMs {
				return p.bases[i], nil
			}
		}
		return p.end, nil
	}
	return 0, connect.NewError(connect.CodeInvalidArgument, errors.New("bad offset"))
}

// read returns whole batches from offset from, at most maxBytes (at least
// one batch). f.mu is held.
func (p *fakePartition) read(from int64, maxBytes int) (out []byte, next int64) {
	i := sort.Search(len(p.bases), func(i int) bool { return p.bases[i] > from }) - 1
	i = max(i, 0)
	next = from
	for ; i < len(p.batches); i++ {
		h, _ := batch.ParseHeader(p.batches[i])
		if h.NextOffset() <= from {
			continue
		}
		if len(out) > 0 && len(out)+len(p.batches[i]) > maxBytes {
			break
		}
		out = append(out, p.batches[i]...)
		next = h.NextOffset()
	}
	return out, next
}

func (f *fakeSPU) Consume(ctx context.Context, req *connect.Request[dataplanev1.ConsumeRequest], stream *connect.ServerStream[dataplanev1.ConsumeResponse]) error {
	type cur struct {
		partition int32
		next      int64
		end       int64 // -1 for none
		done      bool
	}
	maxBytes := int(req.Msg.GetMaxBytes())
	if maxBytes == 0 {
		maxBytes = 1 << 20
	}
	var curs []*cur
	f.mu.Lock()
	for _, pc := range req.Msg.GetPartitions() {
		p := f.partitions[partKey{req.Msg.GetTopic(), pc.GetPartition()}]
		if p == nil {
			f.mu.Unlock()
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("no partition %d", pc.GetPartition()))
		}
		pos, err := p.position(pc.GetStart())
		if err != nil {
			f.mu.Unlock()
			return err
		}
		c := &cur{partition: pc.GetPartition(), next: pos, end: -1}
		if pc.EndOffset != nil {
			c.end = pc.GetEndOffset()
		}
		curs = append(curs, c)
	}
	// Like the SPU, confirm each partition's start at once.
	var confirm []*dataplanev1.ConsumeResponse
	for _, c := range curs {
		p := f.partitions[partKey{req.Msg.GetTopic(), c.partition}]
		confirm = append(confirm, &dataplanev1.ConsumeResponse{Partition: c.partition, NextOffset: c.next, EndOffset: p.end, StartOffset: p.start})
	}
	f.mu.Unlock()
	for _, resp := range confirm {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}

	sent := 0 // data responses
	for {
		var out []*dataplanev1.ConsumeResponse
		f.mu.Lock()
		changed := f.changed
		live := 0
		for _, c := range curs {
			if c.done {
				continue
			}
			p := f.partitions[partKey{req.Msg.GetTopic(), c.partition}]
			if c.end >= 0 && c.next >= c.end {
				c.done = true
				out = append(out, &dataplanev1.ConsumeResponse{Partition: c.partition, NextOffset: c.next, EndOffset: p.end, StartOffset: p.start, EndReached: true})
				continue
			}
			live++
			if c.next >= p.end {
				continue
			}
			data, next := p.read(c.next, maxBytes)
			c.next = next
			resp := &dataplanev1.ConsumeResponse{Partition: c.partition, Batches: data, NextOffset: next, EndOffset: p.end, StartOffset: p.start}
			if c.end >= 0 && c.next >= c.end {
				c.done = true
				resp.EndReached = true
				live--
			}
			out = append(out, resp)
		}
		f.mu.Unlock()
		for _, resp := range out {
			if f.onConsume != nil {
				if err := f.onConsume(sent, resp); err != nil {
					switch err {
					case errAbort:
						panic(http.ErrAbortHandler)
					case errCleanEnd:
						return nil
					}
					return err
				}
			}
			if err := stream.Send(resp); err != nil {
				return err
			}
			sent++
		}
		if live == 0 {
			return nil
		}
		if len(out) == 0 {
			select {
			case <-changed:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (f *fakeSPU) Offsets(ctx context.Context, req *connect.Request[dataplanev1.OffsetsRequest]) (*connect.Response[dataplanev1.OffsetsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &dataplanev1.OffsetsResponse{}
	for k, p := range f.partitions {
		if k.topic != req.Msg.GetTopic() {
			continue
		}
		if len(req.Msg.GetPartitions()) > 0 && !contains(req.Msg.GetPartitions(), k.partition) {
			continue
		}
		resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionOffsets{Partition: k.partition, StartOffset: p.start, EndOffset: p.end})
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeSPU) ListPartitions(ctx context.Context, req *connect.Request[dataplanev1.ListPartitionsRequest]) (*connect.Response[dataplanev1.ListPartitionsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &dataplanev1.ListPartitionsResponse{}
	for k, p := range f.partitions {
		if req.Msg.GetTopic() != "" && k.topic != req.Msg.GetTopic() {
			continue
		}
		resp.Partitions = append(resp.Partitions, &dataplanev1.PartitionStatus{
			Topic: k.topic, Partition: k.partition, StartOffset: p.start, EndOffset: p.end, Segments: 1,
		})
	}
	return connect.NewResponse(resp), nil
}

func (f *fakeSPU) EnsureReplica(ctx context.Context, req *connect.Request[internalv1.EnsureReplicaRequest]) (*connect.Response[internalv1.EnsureReplicaResponse], error) {
	created := f.ensure(req.Msg.GetTopic(), req.Msg.GetPartition())
	return connect.NewResponse(&internalv1.EnsureReplicaResponse{Created: created}), nil
}

func (f *fakeSPU) RemoveReplica(ctx context.Context, req *connect.Request[internalv1.RemoveReplicaRequest]) (*connect.Response[internalv1.RemoveReplicaResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := partKey{req.Msg.GetTopic(), req.Msg.GetPartition()}
	_, ok := f.partitions[k]
	delete(f.partitions, k)
	return connect.NewResponse(&internalv1.RemoveReplicaResponse{Removed: ok}), nil
}

func contains(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
