package tenancy

import (
	"context"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/spatehq/spate/auth/access"
	"github.com/spatehq/spate/control-plane/internal/embedetcd"
)

// A watch that starts from a revision etcd has compacted away re-reads the
// tenants and reports every one of them, then follows changes again.
func TestWatchTenantsResyncsAfterCompaction(t *testing.T) {
	e, err := embedetcd.Start(context.Background(), embedetcd.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := New(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, id := range []string{"t-a", "t-b"} {
		if err := s.CreateTenant(ctx, Tenant{ID: id, Name: id}, User{ID: "u-" + id, Email: id + "@example.com", Role: access.Owner}); err != nil {
			t.Fatal(err)
		}
	}
	get, err := c.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, get.Header.Revision); err != nil {
		t.Fatal(err)
	}

	ch := make(chan string, 16)
	go s.watchTenants(ctx, 1, ch)
	var got []string
	for range 2 {
		select {
		case id := <-ch:
			got = append(got, id)
		case <-time.After(10 * time.Second):
			t.Fatalf("resync delivered %v, want t-a and t-b", got)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"t-a", "t-b"}) {
		t.Fatalf("resync delivered %v, want t-a and t-b", got)
	}

	// It follows changes after the resync.
	if err := s.AddUser(ctx, User{ID: "u-bob", Tenant: "t-b", Email: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-ch:
		if id != "t-b" {
			t.Fatalf("change of %s, want t-b", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no change after the resync")
	}
}
