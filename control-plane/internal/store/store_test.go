package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/spatehq/spate/control-plane/internal/embedetcd"
	"github.com/spatehq/spate/control-plane/internal/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return storeAt(t, e.Endpoint())
}

// storeAt returns another Store on the etcd at endpoint, as a second
// control-plane replica has.
func storeAt(t *testing.T, endpoint string) *store.Store {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return store.New(c, "test")
}

func TestTopics(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.CreateTopic(ctx, store.Topic{Name: "a", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "create existing", want: store.ErrTopicExists, call: func() error {
			_, err := s.CreateTopic(ctx, store.Topic{Name: "a", Partitions: 2})
			return err
		}},
		{name: "get missing", want: store.ErrTopicNotFound, call: func() error {
			_, err := s.GetTopic(ctx, "b")
			return err
		}},
		{name: "update missing", want: store.ErrTopicNotFound, call: func() error {
			_, err := s.UpdateTopic(ctx, "b", func(*store.Topic) error { return nil })
			return err
		}},
		{name: "stale placement", want: store.ErrConflict, call: func() error {
			return s.PutPlacement(ctx, "a", 1, 0, store.Placement{})
		}},
		{name: "stale remove", want: store.ErrConflict, call: func() error {
			return s.RemoveTopic(ctx, "a", 1)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
		})
	}
	got, err := s.GetTopic(ctx, "a")
	if err != nil || got.Partitions != 1 {
		t.Fatalf("topic after a failed create: %+v, %v", got, err)
	}
}

func TestHeartbeatLease(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	online := func() bool {
		st, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := st.SPUs[7]
		return ok
	}
	spu := store.SPU{ID: 7, Address: "http://127.0.0.1:1"}
	if err := s.Heartbeat(ctx, spu, &store.SPUStatus{HeartbeatMs: 1}, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if !online() {
		t.Fatal("SPU not online after a heartbeat")
	}
	// Heartbeats keep it online past the TTL.
	for range 6 {
		time.Sleep(500 * time.Millisecond)
		if err := s.Heartbeat(ctx, spu, nil, 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if !online() {
		t.Fatal("SPU offline although it heartbeats")
	}
	// Silence takes it offline; a new heartbeat brings it back.
	deadline := time.Now().Add(10 * time.Second)
	for online() {
		if time.Now().After(deadline) {
			t.Fatal("SPU still online 10s after its last heartbeat")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.Heartbeat(ctx, spu, nil, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if !online() {
		t.Fatal("SPU not online after its lease expired and it heartbeat again")
	}
}

// TestHeartbeatRace: two replicas register the same SPU at once, then only
// one hears from it; the SPU stays online.
func TestHeartbeatRace(t *testing.T) {
	a := newStore(t)
	b := storeAt(t, a.Client().Endpoints()[0])
	ctx := context.Background()
	spu := store.SPU{ID: 3, Address: "http://127.0.0.1:1"}
	errc := make(chan error, 2)
	for _, s := range []*store.Store{a, b} {
		go func() { errc <- s.Heartbeat(ctx, spu, nil, 2*time.Second) }()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if err := a.Heartbeat(ctx, spu, &store.SPUStatus{HeartbeatMs: 1}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond)
	}
	st, err := a.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.SPUs[3]; !ok {
		t.Fatal("SPU offline although it heartbeats")
	}
}
