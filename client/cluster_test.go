package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// realControlPlane is an in-process control plane with embedded etcd that
// a test can stop and start again on the same address and data.
type realControlPlane struct {
	URL  string
	addr string
	dir  string

	cancel context.CancelFunc
	done   chan error
}

func startRealControlPlane(t *testing.T) *realControlPlane {
	t.Helper()
	cp := &realControlPlane{dir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cp.addr = l.Addr().String()
	cp.URL = "http://" + cp.addr
	cp.serve(t, l)
	t.Cleanup(func() { cp.stop(t) })
	return cp
}

func (cp *realControlPlane) serve(t *testing.T, l net.Listener) {
	t.Helper()
	srv, err := server.New(server.Config{Insecure: true, DataDir: filepath.Join(cp.dir, "cp"), LivenessTimeout: 3 * time.Second, ElectionTTL: 2 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel, cp.done = cancel, make(chan error, 1)
	go func() { cp.done <- srv.Serve(ctx, l) }()
	select {
	case <-srv.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("control plane not ready")
	}
}

func (cp *realControlPlane) stop(t *testing.T) {
	if cp.cancel == nil {
		return
	}
	cp.cancel()
	cp.cancel = nil
	if err := <-cp.done; err != nil {
		t.Logf("control plane: %v", err)
	}
}

// restart stops the control plane and starts it again on the same address
// and data.
func (cp *realControlPlane) restart(t *testing.T) {
	t.Helper()
	cp.stop(t)
	var l net.Listener
	var err error
	for range 50 {
		if l, err = net.Listen("tcp", cp.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	cp.serve(t, l)
}

// TestControlPlaneRestartUnderProducer produces without pause while the
// control plane restarts: the data path does not need it, the metadata
// watch reconnects, and no record is lost.
func TestControlPlaneRestartUnderProducer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane with etcd; skipped with -short")
	}
	ctx := testContext(t)
	cp := startRealControlPlane(t)
	for i := range 3 {
		sputest.Start(t, spu.Config{ID: int32(i + 1), ControlPlane: cp.URL})
	}
	c := newCPClient(t, cp.URL)
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "steady", Partitions: 6, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, c, "steady", client.WithLinger(time.Millisecond))

	var (
		mu     sync.Mutex
		acked  int
		failed []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Produce(ctx, client.Record{Key: fmt.Appendf(nil, "k%d", i%50), Value: fmt.Appendf(nil, "%d", i)}, func(_ client.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
				} else {
					acked++
				}
			})
			time.Sleep(200 * time.Microsecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	cp.restart(t)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n, errs := acked, failed
	mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d records failed, the first: %v", len(errs), errs[0])
	}
	if n == 0 {
		t.Fatal("nothing produced")
	}
	// Every acknowledged record is there.
	offs, err := c.Offsets(ctx, "steady")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range offs {
		total += o.End - o.Start
	}
	if total != int64(n) {
		t.Fatalf("the partitions hold %d records, %d were acknowledged", total, n)
	}
	// The client still follows the restarted control plane.
	if _, err := c.CreateTopic(ctx, client.TopicSpec{Name: "after", Partitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	p2 := newProducer(t, c, "after")
	if _, err := p2.ProduceSync(ctx, client.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records produced across the restart", n)
}
