package spu_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// fakeRegistry is a RegistryService that the test drives: it records the
// SPUs watching and their heartbeats, and pushes desired sets on demand.
type fakeRegistry struct {
	mu         sync.Mutex // guards the fields below
	watchers   map[int32]chan *internalv1.WatchReplicasResponse
	addresses  map[int32]string
	heartbeats []*internalv1.HeartbeatRequest
	initial    *internalv1.WatchReplicasResponse // sent to every new watcher
	quit       chan struct{}                     // closed to end every stream
}

var _ internalv1connect.RegistryServiceHandler = (*fakeRegistry)(nil)

func (f *fakeRegistry) WatchReplicas(ctx context.Context, req *connect.Request[internalv1.WatchReplicasRequest], stream *connect.ServerStream[internalv1.WatchReplicasResponse]) error {
	ch := make(chan *internalv1.WatchReplicasResponse, 16)
	f.mu.Lock()
	f.watchers[req.Msg.SpuId] = ch
	f.addresses[req.Msg.SpuId] = req.Msg.Address
	if f.initial != nil {
		ch <- f.initial
	}
	f.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-f.quit:
			return connect.NewError(connect.CodeUnavailable, fmt.Errorf("shutting down"))
		case m := <-ch:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

func (f *fakeRegistry) Heartbeat(_ context.Context, req *connect.Request[internalv1.HeartbeatRequest]) (*connect.Response[internalv1.HeartbeatResponse], error) {
	f.mu.Lock()
	f.heartbeats = append(f.heartbeats, req.Msg)
	f.mu.Unlock()
	return connect.NewResponse(&internalv1.HeartbeatResponse{IntervalMs: 100}), nil
}

// stop ends every stream, so that the server can close.
func (f *fakeRegistry) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
}

// push sends a desired set to the SPU once it watches.
func (f *fakeRegistry) push(t *testing.T, id int32, rev int64, replicas ...*internalv1.DesiredReplica) {
	t.Helper()
	f.send(t, id, &internalv1.WatchReplicasResponse{Revision: rev, Replicas: replicas})
}

// send sends msg to the SPU once it watches.
func (f *fakeRegistry) send(t testing.TB, id int32, msg *internalv1.WatchReplicasResponse) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		ch := f.watchers[id]
		f.mu.Unlock()
		if ch != nil {
			ch <- msg
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPU %d never watched its replicas", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heartbeatCount returns how many heartbeats arrived.
func (f *fakeRegistry) heartbeatCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.heartbeats)
}

// lastHeartbeat returns the newest heartbeat, or nil.
func (f *fakeRegistry) lastHeartbeat() *internalv1.HeartbeatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.heartbeats) == 0 {
		return nil
	}
	return f.heartbeats[len(f.heartbeats)-1]
}

// startRegistry serves a fake registry over h2c on addr ("" for any port).
func startRegistry(t *testing.T, addr string, initial *internalv1.WatchReplicasResponse) (*fakeRegistry, *httptest.Server) {
	t.Helper()
	f := &fakeRegistry{watchers: map[int32]chan *internalv1.WatchReplicasResponse{}, addresses: map[int32]string{}, initial: initial, quit: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle(internalv1connect.NewRegistryServiceHandler(f))
	srv := httptest.NewUnstartedServer(mux)
	if addr != "" {
		var l net.Listener
		var err error
		for range 50 { // the old listener's port may take a moment to free
			if l, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(func() { f.stop(); srv.Close() })
	return f, srv
}

// desired declares partitions of topic led by SPU 0.
func desired(topic string, partitions ...int32) []*internalv1.DesiredReplica {
	return desiredLedBy(0, topic, partitions...)
}

// desiredLedBy declares partitions of topic led by SPU leader.
func desiredLedBy(leader int32, topic string, partitions ...int32) []*internalv1.DesiredReplica {
	var out []*internalv1.DesiredReplica
	for _, p := range partitions {
		out = append(out, &internalv1.DesiredReplica{Topic: topic, Partition: p, LeaderEpoch: 2, Leader: leader, Config: &internalv1.ReplicaConfig{SegmentBytes: 1 << 20}})
	}
	return out
}

// held returns the SPU's replicas as "topic/partition".
func held(t *testing.T, c clients) []string {
	t.Helper()
	resp, err := c.parts.ListPartitions(context.Background(), connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range resp.Msg.Partitions {
		out = append(out, fmt.Sprintf("%s/%d", p.Topic, p.Partition))
	}
	return out
}

func waitHeld(t *testing.T, c clients, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := held(t, c)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SPU holds %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgentAppliesDesiredSetsAndHeartbeats(t *testing.T) {
	reg, cp := startRegistry(t, "", nil)
	s := sputest.Start(t, spu.Config{ID: 7, ControlPlane: cp.URL, PublicAddr: "http://spu-7.example:9010"})
	c := newClients(s.URL)

	reg.push(t, 7, 1, desiredLedBy(7, "orders", 0, 1)...)
	waitHeld(t, c, "orders/0", "orders/1")
	if _, err := c.produceOne(t, "orders", 1, makeBatch(t, 0, "a", "b", "c")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hb := reg.lastHeartbeat()
		if hb != nil && len(hb.Replicas) == 2 && hb.Replicas[1].EndOffset == 3 {
			if hb.SpuId != 7 || hb.Address != "http://spu-7.example:9010" || hb.Replicas[1].LeaderEpoch != 2 || hb.Replicas[1].SizeBytes == 0 || hb.Replicas[0].EndOffset != 0 {
				t.Fatalf("heartbeat = %v", hb)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat with the produced records; last %v", hb)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A new set: orders/0 goes, payments/0 comes.
	reg.push(t, 7, 2, append(desiredLedBy(7, "orders", 1), desiredLedBy(7, "payments", 0)...)...)
	waitHeld(t, c, "orders/1", "payments/0")
	// An older revision on the same stream is ignored.
	reg.push(t, 7, 1, desiredLedBy(7, "orders", 0)...)
	reg.push(t, 7, 3, append(desiredLedBy(7, "orders", 1), desiredLedBy(7, "payments", 0, 1)...)...)
	waitHeld(t, c, "orders/1", "payments/0", "payments/1")
	// An empty set from a control plane with state removes everything.
	reg.push(t, 7, 4)
	waitHeld(t, c)
}

func TestAgentKeepsReplicasOnEmptySetAtRevisionZero(t *testing.T) {
	dir := t.TempDir()
	reg, cp := startRegistry(t, "", nil)
	s := sputest.Start(t, spu.Config{DataDir: dir, ControlPlane: cp.URL})
	c := newClients(s.URL)
	reg.push(t, 0, 5, desired("keep", 0, 1)...)
	waitHeld(t, c, "keep/0", "keep/1")
	s.Stop(t)

	// The SPU restarts against a control plane that lost its state: the
	// empty set at revision 0 must not wipe the replicas.
	reg2, cp2 := startRegistry(t, "", &internalv1.WatchReplicasResponse{Revision: 0})
	s = sputest.Start(t, spu.Config{DataDir: dir, ControlPlane: cp2.URL})
	c = newClients(s.URL)
	deadline := time.Now().Add(10 * time.Second)
	for reg2.heartbeatCount() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no heartbeats")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitHeld(t, c, "keep/0", "keep/1")
	// Once it has seen a non-empty set, an empty one counts, whatever its
	// revision.
	reg2.push(t, 0, 0, desired("keep", 0)...)
	waitHeld(t, c, "keep/0")
	reg2.push(t, 0, 0)
	waitHeld(t, c)
}

func TestAgentReconnectsAndSPUServesMeanwhile(t *testing.T) {
	reg, cp := startRegistry(t, "", nil)
	addr := cp.Listener.Addr().String()
	s := sputest.Start(t, spu.Config{ControlPlane: cp.URL})
	c := newClients(s.URL)
	reg.push(t, 0, 1, desired("live", 0)...)
	waitHeld(t, c, "live/0")

	reg.stop()
	cp.Close()
	// The SPU keeps serving its replica while the control plane is away.
	for i := range 5 {
		if _, err := c.produceOne(t, "live", 0, makeBatch(t, 0, fmt.Sprint(i))); err != nil {
			t.Fatalf("produce with the control plane away: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitHeld(t, c, "live/0")

	// The control plane comes back on the same address; the SPU watches
	// again and heartbeats its replica with the records produced meanwhile.
	reg2, _ := startRegistry(t, addr, nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		hb := reg2.lastHeartbeat()
		if hb != nil && len(hb.Replicas) == 1 && hb.Replicas[0].EndOffset == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no heartbeat after the control plane returned; last %v", hb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	reg2.push(t, 0, 2, desired("live", 0, 1)...)
	waitHeld(t, c, "live/0", "live/1")
}

func TestConfigValidatesControlPlaneURLs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  spu.Config
		ok   bool
	}{
		{"standalone", spu.Config{DataDir: "d"}, true},
		{"joined", spu.Config{DataDir: "d", ID: 2, ControlPlane: "http://127.0.0.1:9000", PublicAddr: "http://spu-2:9010"}, true},
		{"no scheme", spu.Config{DataDir: "d", ControlPlane: "127.0.0.1:9000"}, false},
		{"bad public address", spu.Config{DataDir: "d", ControlPlane: "http://cp:9000", PublicAddr: "spu-2"}, false},
		{"negative id", spu.Config{DataDir: "d", ID: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
