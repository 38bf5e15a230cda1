package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/control-plane/internal/embedetcd"
	"github.com/spatehq/spate/control-plane/server"
)

// livenessTimeout is short for quick failover tests, yet above etcd's
// minimum lease TTL (about 2 s) with a margin for loaded CI machines.
const livenessTimeout = 3 * time.Second

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SPATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startEtcd starts an etcd for servers that share it.
func startEtcd(t testing.TB) string {
	t.Helper()
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Endpoint()
}

// cp is a control plane under test.
type cp struct {
	srv    *server.Server
	url    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error // from Serve, set by once
	topics controlplanev1connect.TopicServiceClient
	meta   controlplanev1connect.MetadataServiceClient
}

// stop stops the control plane and waits for it.
func (c *cp) stop(t testing.TB) {
	t.Helper()
	c.once.Do(func() {
		c.cancel()
		select {
		case c.err = <-c.done:
		case <-time.After(30 * time.Second):
			c.err = errors.New("control plane did not stop")
		}
	})
	if c.err != nil {
		t.Errorf("serve: %v", c.err)
	}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// startCP starts a control plane on a free port, stopped at cleanup.
func startCP(t testing.TB, cfg server.Config) *cp {
	t.Helper()
	if cfg.LivenessTimeout == 0 {
		cfg.LivenessTimeout = livenessTimeout
	}
	if cfg.ElectionTTL == 0 {
		cfg.ElectionTTL = 2 * time.Second
	}
	// These tests are about topics, placement and SPUs, not
	// authentication: see cloud_test.go for the secure control plane.
	cfg.Insecure = true
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &cp{srv: srv, url: "http://" + l.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- srv.Serve(ctx, l) }()
	select {
	case <-srv.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("control plane not ready")
	}
	t.Cleanup(func() { c.stop(t) })
	hc := h2cClient()
	c.topics = controlplanev1connect.NewTopicServiceClient(hc, c.url)
	c.meta = controlplanev1connect.NewMetadataServiceClient(hc, c.url)
	return c
}

// fakeSPU is an honest client of RegistryService: it watches its desired
// replicas, "creates" them at once and reports them in heartbeats.
type fakeSPU struct {
	id     int32
	addr   string
	client internalv1connect.RegistryServiceClient
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	desired []*internalv1.DesiredReplica // guarded by mu
	updates int                          // desired sets received, guarded by mu
}

// startSPU connects a fake SPU to the control plane at url; it stops at
// cleanup or with stop.
func startSPU(t testing.TB, url string, id int32) *fakeSPU {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeSPU{
		id:     id,
		addr:   fmt.Sprintf("http://127.0.0.1:%d", 19000+id),
		client: internalv1connect.NewRegistryServiceClient(h2cClient(), url),
		cancel: cancel,
	}
	f.wg.Go(func() { f.watch(ctx) })
	f.wg.Go(func() { f.heartbeat(ctx) })
	t.Cleanup(f.stop)
	return f
}

func (f *fakeSPU) stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *fakeSPU) watch(ctx context.Context) {
	for ctx.Err() == nil {
		stream, err := f.client.WatchReplicas(ctx, connect.NewRequest(&internalv1.WatchReplicasRequest{SpuId: f.id, Address: f.addr}))
		if err == nil {
			for stream.Receive() {
				f.mu.Lock()
				f.desired = stream.Msg().Replicas
				f.updates++
				f.mu.Unlock()
			}
			stream.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (f *fakeSPU) heartbeat(ctx context.Context) {
	for {
		f.mu.Lock()
		req := &internalv1.HeartbeatRequest{SpuId: f.id, Address: f.addr}
		for _, d := range f.desired {
			req.Replicas = append(req.Replicas, &internalv1.ReplicaStatus{
				Topic: d.Topic, Partition: d.Partition, LeaderEpoch: d.LeaderEpoch,
				StartOffset: 0, EndOffset: 10 + int64(d.Partition), SizeBytes: 1000,
			})
		}
		f.mu.Unlock()
		f.client.Heartbeat(ctx, connect.NewRequest(req))
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// replicas returns the desired set last received.
func (f *fakeSPU) replicas() []*internalv1.DesiredReplica {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired
}

// eventually retries cond until it returns nil or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(ctx context.Context, c *cp, name string) (*controlplanev1.Topic, error) {
	resp, err := c.topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: name}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Topic, nil
}

// waitState waits until topic name is in state want.
func waitState(t testing.TB, c *cp, name string, want controlplanev1.TopicState, timeout time.Duration) *controlplanev1.Topic {
	t.Helper()
	var topic *controlplanev1.Topic
	eventually(t, timeout, func() error {
		var err error
		topic, err = describe(context.Background(), c, name)
		if err != nil {
			return err
		}
		if topic.State != want {
			return fmt.Errorf("topic %s is %v (%s), want %v", name, topic.State, topic.Reason, want)
		}
		return nil
	})
	return topic
}

func createTopic(t testing.TB, c *cp, name string, partitions, rf int32) {
	t.Helper()
	_, err := c.topics.CreateTopic(context.Background(), connect.NewRequest(&controlplanev1.CreateTopicRequest{
		Spec: &controlplanev1.TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: rf},
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func codeOf(err error) connect.Code {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return connect.CodeUnknown
}

// waitSPUs waits until n SPUs are online.
func waitSPUs(t testing.TB, c *cp, n int) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		resp, err := c.meta.ListSPUs(context.Background(), connect.NewRequest(&controlplanev1.ListSPUsRequest{}))
		if err != nil {
			return err
		}
		online := 0
		for _, s := range resp.Msg.Spus {
			if s.Online {
				online++
			}
		}
		if online != n {
			return fmt.Errorf("%d SPUs online, want %d", online, n)
		}
		return nil
	})
}
