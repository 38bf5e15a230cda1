package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// fakeControlPlane serves TopicService and MetadataService from memory. It
// places partition p of a topic on SPU p % len(spus) and creates the
// partitions on the real SPUs directly.
type fakeControlPlane struct {
	URL  string
	spus []string // SPU id i+1 is at spus[i]

	mu      sync.Mutex // guards the fields below
	topics  map[string]*controlplanev1.Topic
	place   map[string][]*controlplanev1.PartitionPlacement
	changed chan struct{} // closed and replaced on each change
}

var (
	_ controlplanev1connect.TopicServiceHandler    = (*fakeControlPlane)(nil)
	_ controlplanev1connect.MetadataServiceHandler = (*fakeControlPlane)(nil)
)

func newFakeControlPlane(tb testing.TB, spus ...string) *fakeControlPlane {
	tb.Helper()
	f := &fakeControlPlane{
		spus:    spus,
		topics:  make(map[string]*controlplanev1.Topic),
		place:   make(map[string][]*controlplanev1.PartitionPlacement),
		changed: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle(controlplanev1connect.NewTopicServiceHandler(f))
	mux.Handle(controlplanev1connect.NewMetadataServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *fakeControlPlane) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// setLeader moves a partition's leader to SPU id (1-based; -1 unplaces it).
func (f *fakeControlPlane) setLeader(topic string, partition, id int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.place[topic][partition]
	p.Leader = id
	p.Replicas = []int32{id}
	p.LeaderEpoch++
	f.notifyLocked()
}

func (f *fakeControlPlane) CreateTopic(ctx context.Context, req *connect.Request[controlplanev1.CreateTopicRequest]) (*connect.Response[controlplanev1.CreateTopicResponse], error) {
	spec := req.Msg.GetSpec()
	if spec.GetPartitions() < 1 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("partitions must be at least 1"))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[spec.GetName()]; ok {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("topic %q exists", spec.GetName()))
	}
	var place []*controlplanev1.PartitionPlacement
	for p := range spec.GetPartitions() {
		id := p%int32(len(f.spus)) + 1
		c, err := client.New(client.WithSPU(f.spus[id-1]))
		if err != nil {
			return nil, err
		}
		_, err = c.EnsurePartition(ctx, spec.GetName(), p, client.PartitionConfig{})
		c.Close()
		if err != nil {
			return nil, err
		}
		place = append(place, &controlplanev1.PartitionPlacement{Partition: p, Leader: id, Replicas: []int32{id}})
	}
	t := &controlplanev1.Topic{Spec: spec, State: controlplanev1.TopicState_TOPIC_STATE_READY, CreatedAtMs: time.Now().UnixMilli()}
	f.topics[spec.GetName()] = t
	f.place[spec.GetName()] = place
	f.notifyLocked()
	return connect.NewResponse(&controlplanev1.CreateTopicResponse{Topic: t}), nil
}

func (f *fakeControlPlane) ListTopics(context.Context, *connect.Request[controlplanev1.ListTopicsRequest]) (*connect.Response[controlplanev1.ListTopicsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &controlplanev1.ListTopicsResponse{}
	for _, t := range f.topics {
		resp.Topics = append(resp.Topics, t)
	}
	slices.SortFunc(resp.Topics, func(a, b *controlplanev1.Topic) int {
		return strings.Compare(a.GetSpec().GetName(), b.GetSpec().GetName())
	})
	return connect.NewResponse(resp), nil
}

func (f *fakeControlPlane) DescribeTopic(_ context.Context, req *connect.Request[controlplanev1.DescribeTopicRequest]) (*connect.Response[controlplanev1.DescribeTopicResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.topics[req.Msg.GetName()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("topic %q not found", req.Msg.GetName()))
	}
	return connect.NewResponse(&controlplanev1.DescribeTopicResponse{Topic: t}), nil
}

func (f *fakeControlPlane) UpdateTopic(context.Context, *connect.Request[controlplanev1.UpdateTopicRequest]) (*connect.Response[controlplanev1.UpdateTopicResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, nil)
}

func (f *fakeControlPlane) AddPartitions(context.Context, *connect.Request[controlplanev1.AddPartitionsRequest]) (*connect.Response[controlplanev1.AddPartitionsResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, nil)
}

func (f *fakeControlPlane) DeleteTopic(_ context.Context, req *connect.Request[controlplanev1.DeleteTopicRequest]) (*connect.Response[controlplanev1.DeleteTopicResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.topics[req.Msg.GetName()]; !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("topic %q not found", req.Msg.GetName()))
	}
	delete(f.topics, req.Msg.GetName())
	delete(f.place, req.Msg.GetName())
	f.notifyLocked()
	return connect.NewResponse(&controlplanev1.DeleteTopicResponse{}), nil
}

func (f *fakeControlPlane) snapshotLocked() *controlplanev1.WatchMetadataResponse {
	m := &controlplanev1.WatchMetadataResponse{Snapshot: true}
	for i, url := range f.spus {
		m.Spus = append(m.Spus, &controlplanev1.SPU{Id: int32(i + 1), Address: url, Online: true})
	}
	for name, parts := range f.place {
		tp := &controlplanev1.TopicPlacement{Name: name}
		for _, p := range parts {
			tp.Partitions = append(tp.Partitions, &controlplanev1.PartitionPlacement{
				Partition: p.GetPartition(), Leader: p.GetLeader(), Replicas: slices.Clone(p.GetReplicas()), LeaderEpoch: p.GetLeaderEpoch(),
			})
		}
		m.Topics = append(m.Topics, tp)
	}
	return m
}

// WatchMetadata sends a snapshot, then at each change only the topics that
// changed and those deleted, as the real control plane does.
func (f *fakeControlPlane) WatchMetadata(ctx context.Context, _ *connect.Request[controlplanev1.WatchMetadataRequest], stream *connect.ServerStream[controlplanev1.WatchMetadataResponse]) error {
	var sent map[string]*controlplanev1.TopicPlacement
	for {
		f.mu.Lock()
		snap, ch := f.snapshotLocked(), f.changed
		f.mu.Unlock()
		now := make(map[string]*controlplanev1.TopicPlacement, len(snap.GetTopics()))
		for _, tp := range snap.GetTopics() {
			now[tp.GetName()] = tp
		}
		m := snap
		if sent != nil {
			m = &controlplanev1.WatchMetadataResponse{}
			for name, tp := range now {
				if !proto.Equal(tp, sent[name]) {
					m.Topics = append(m.Topics, tp)
				}
			}
			for name := range sent {
				if _, ok := now[name]; !ok {
					m.DeletedTopics = append(m.DeletedTopics, name)
				}
			}
		}
		if err := stream.Send(m); err != nil {
			return err
		}
		sent = now
		select {
		case <-ch:
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *fakeControlPlane) ListSPUs(context.Context, *connect.Request[controlplanev1.ListSPUsRequest]) (*connect.Response[controlplanev1.ListSPUsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return connect.NewResponse(&controlplanev1.ListSPUsResponse{Spus: f.snapshotLocked().GetSpus()}), nil
}

func startSPUs(tb testing.TB, n int) []string {
	var urls []string
	for range n {
		urls = append(urls, sputest.Start(tb, spu.Config{}).URL)
	}
	return urls
}

func newCPClient(tb testing.TB, url string) *client.Client {
	tb.Helper()
	c, err := client.New(client.WithControlPlane(url))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// TestControlPlaneProduceConsume creates a topic of 6 partitions on 3 SPUs
// through the control plane, produces keyed records and consumes them back
// in order per partition, from the three SPUs at once.
func TestControlPlaneProduceConsume(t *testing.T) {
	ctx := testContext(t)
	spus := startSPUs(t, 3)
	cp := newFakeControlPlane(t, spus...)
	c := newCPClient(t, cp.URL)

	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "orders", Partitions: 6, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "orders", Partitions: 6, ReplicationFactor: 1}); !client.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want AlreadyExists", err)
	}
	p := newProducer(t, c, "orders", client.WithLinger(0))
	if got := len(p.Partitions()); got != 6 {
		t.Fatalf("producer sees %d partitions, want 6", got)
	}
	const n = 300
	var recs []client.Record
	for i := range n {
		recs = append(recs, client.Record{Key: fmt.Appendf(nil, "k%d", i%17), Value: fmt.Appendf(nil, "v%d", i)})
	}
	acked, err := p.ProduceSync(ctx, recs...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32][]string{}
	for _, r := range acked {
		want[r.Partition] = append(want[r.Partition], string(r.Value))
	}
	if len(want) < 3 {
		t.Fatalf("records went to %d partitions only", len(want))
	}
	cons, err := c.Consume(ctx, "orders", client.WithStopAtEnd())
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[int32][]string{}
	for {
		r, err := cons.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		got[r.Partition] = append(got[r.Partition], string(r.Value))
	}
	for part, vs := range want {
		if !slices.Equal(got[part], vs) {
			t.Errorf("partition %d: got %v, want %v", part, got[part], vs)
		}
	}
	// Each SPU holds two of the partitions.
	for i, url := range spus {
		parts, err := newClient(t, url).ListPartitions(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if len(parts) != 2 {
			t.Errorf("SPU %d holds %d partitions, want 2", i+1, len(parts))
		}
	}
	all, err := c.ListPartitions(ctx, "orders")
	if err != nil || len(all) != 6 {
		t.Fatalf("ListPartitions = %d partitions, %v", len(all), err)
	}
}

// TestControlPlaneLeaderMove moves a partition's leader to another SPU that
// holds the same records: the producer and the consumer follow it.
func TestControlPlaneLeaderMove(t *testing.T) {
	ctx := testContext(t)
	spus := startSPUs(t, 2)
	cp := newFakeControlPlane(t, spus...)
	c := newCPClient(t, cp.URL)
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "m", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, "m", client.WithLinger(0))
	var first []client.Record
	for i := range 10 {
		first = append(first, client.Record{Value: fmt.Appendf(nil, "v%d", i)})
	}
	if _, err := p.ProduceSync(ctx, first...); err != nil {
		t.Fatal(err)
	}
	cons, err := c.Consume(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for i := range 10 {
		r, err := cons.Next(ctx)
		if err != nil || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d, %v", i, r.Offset, err)
		}
	}
	// Copy the records to SPU 2 (as replication would) and move the leader.
	b := newClient(t, spus[1])
	if _, err := b.EnsurePartition(ctx, "m", 0, client.PartitionConfig{}); err != nil {
		t.Fatal(err)
	}
	bp := newProducer(t, b, "m", client.WithLinger(0))
	if _, err := bp.ProduceSync(ctx, first...); err != nil {
		t.Fatal(err)
	}
	cp.setLeader("m", 0, 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Produce until a record lands on SPU 2: the producer moved.
		acked, err := p.ProduceSync(ctx, client.Record{Value: []byte("after")})
		if err == nil {
			offs, err := b.Offsets(ctx, "m", 0)
			if err != nil {
				t.Fatal(err)
			}
			if offs[0].End > 10 && acked[0].Offset >= 10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer did not follow the leader: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The consumer resumes at offset 10 on SPU 2.
	r, err := cons.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Offset != 10 || string(r.Value) != "after" {
		t.Fatalf("after the move: offset %d value %q", r.Offset, r.Value)
	}
}

// TestControlPlaneErrors checks the codes and messages of admin failures.
func TestControlPlaneErrors(t *testing.T) {
	ctx := testContext(t)
	cp := newFakeControlPlane(t, startSPUs(t, 1)...)
	c := newCPClient(t, cp.URL)
	if _, err := c.DescribeTopic(ctx, "nope"); !client.IsNotFound(err) {
		t.Errorf("describe unknown: %v", err)
	}
	if err := c.DeleteTopic(ctx, "nope"); !client.IsNotFound(err) {
		t.Errorf("delete unknown: %v", err)
	}
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "x"}); !client.IsInvalidArgument(err) {
		t.Errorf("zero partitions: %v", err)
	}
	if _, err := c.NewProducer(ctx, "nope"); !client.IsNotFound(err) {
		t.Errorf("producer of unknown topic: %v", err)
	}

	down := newCPClient(t, "http://127.0.0.1:1")
	_, err := down.ListTopics(ctx)
	if !client.IsUnavailable(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable control plane: %v", err)
	}
	_, err = down.NewProducer(ctx, "t")
	if !client.IsUnavailable(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("producer with unreachable control plane: %v", err)
	}
	spus, err := c.ListSPUs(ctx)
	if err != nil || len(spus) != 1 || !spus[0].Online {
		t.Errorf("ListSPUs = %+v, %v", spus, err)
	}
	if _, err := newClient(t, "http://127.0.0.1:2").ListTopics(ctx); !errors.Is(err, client.ErrNoControlPlane) {
		t.Errorf("ListTopics without control plane: %v", err)
	}
}

// TestControlPlaneWaitsForLeader: a producer waits, bounded by its ctx,
// for a partition that is not placed yet.
func TestControlPlaneWaitsForLeader(t *testing.T) {
	ctx := testContext(t)
	cp := newFakeControlPlane(t, startSPUs(t, 1)...)
	c := newCPClient(t, cp.URL)
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "w", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	cp.setLeader("w", 0, -1)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.NewProducer(short, "w"); connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("unplaced partition: %v", err)
	}
	time.AfterFunc(200*time.Millisecond, func() { cp.setLeader("w", 0, 1) })
	p := newProducer(t, c, "w")
	if _, err := p.ProduceSync(ctx, client.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
}

// TestControlPlaneTopicDeleted: after a topic is deleted, the client
// reports it unknown, and a topic created again is found.
func TestControlPlaneTopicDeleted(t *testing.T) {
	ctx := testContext(t)
	cp := newFakeControlPlane(t, startSPUs(t, 2)...)
	c := newCPClient(t, cp.URL)
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "d", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	newProducer(t, c, "d")
	if err := c.DeleteTopic(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	// The deletion reaches the client's metadata watch soon after.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := c.NewProducer(ctx, "d")
		if client.IsNotFound(err) {
			break
		}
		if err == nil {
			p.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer of a deleted topic: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "e", Partitions: 3, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if p := newProducer(t, c, "e"); len(p.Partitions()) != 3 {
		t.Fatalf("partitions %v", p.Partitions())
	}
}
