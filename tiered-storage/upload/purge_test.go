package upload_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// flakyStore fails every other List and Delete with ErrUnavailable.
type flakyStore struct {
	objstore.Store

	mu    sync.Mutex
	calls int
}

func (f *flakyStore) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls%2 == 1 {
		return fmt.Errorf("flaky: %w", objstore.ErrUnavailable)
	}
	return nil
}

func (f *flakyStore) List(ctx context.Context, prefix, after string, limit int) ([]objstore.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.List(ctx, prefix, after, limit)
}

func (f *flakyStore) Delete(ctx context.Context, keys ...string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, keys...)
}

// putSegments puts n segments' three objects in each of partitions
// 0..parts-1 of topic, and returns how many objects that is.
func putSegments(t testing.TB, store objstore.Store, topic string, parts int32, n int) int {
	t.Helper()
	ctx := context.Background()
	count := 0
	for p := range parts {
		for i := range n {
			s := layout.Segment{Topic: topic, Partition: p, Base: int64(i) * 10, Last: int64(i)*10 + 9, Epoch: 1, MaxTimestamp: 1}
			for _, suf := range []string{layout.IndexSuffix, layout.TimeIndexSuffix, layout.LogSuffix} {
				if err := store.Put(ctx, s.Key(suf), strings.NewReader("x"), 1); err != nil {
					t.Fatal(err)
				}
				count++
			}
		}
	}
	return count
}

func countUnder(t testing.TB, store objstore.Store, prefix string) int {
	t.Helper()
	objs, err := store.List(context.Background(), prefix, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(objs)
}

func TestPurgeTopicDeletesEveryObjectOfTheTopicAndNothingElse(t *testing.T) {
	base := localStore(t)
	store := &flakyStore{Store: base}
	ctx := context.Background()
	want := putSegments(t, base, "orders", 2, 170) // 1020 objects: two pages
	if err := base.Put(ctx, "orders/notes.txt", strings.NewReader("not a segment"), 13); err != nil {
		t.Fatal(err)
	}
	want++
	others := putSegments(t, base, "orders2", 1, 5) + putSegments(t, base, "order", 1, 5)

	n, err := upload.PurgeTopic(ctx, store, "orders")
	if err != nil || n != want {
		t.Fatalf("PurgeTopic = %d, %v; want %d, nil", n, err, want)
	}
	if left := countUnder(t, base, "orders/"); left != 0 {
		t.Fatalf("%d objects of the topic left", left)
	}
	if left := countUnder(t, base, ""); left != others {
		t.Fatalf("%d objects of other topics left, want %d", left, others)
	}
	// Idempotent.
	if n, err := upload.PurgeTopic(ctx, store, "orders"); err != nil || n != 0 {
		t.Fatalf("second PurgeTopic = %d, %v; want 0, nil", n, err)
	}
}

func TestPurgeTopicRefusesNamesThatAreNotATopic(t *testing.T) {
	store := localStore(t)
	others := putSegments(t, store, "a", 1, 2) + putSegments(t, store, "ab", 1, 2)
	for _, topic := range []string{"", "a/0", "..", "/", "a\x00"} {
		if _, err := upload.PurgeTopic(context.Background(), store, topic); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("PurgeTopic(%q) = %v, want ErrInvalidKey", topic, err)
		}
	}
	if left := countUnder(t, store, ""); left != others {
		t.Fatalf("%d objects left, want %d", left, others)
	}
}

func TestPurgeTopicStopsRetryingWhenCtxEnds(t *testing.T) {
	store := &downStore{Store: localStore(t)}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the retries end with ctx, at the first backoff
	if _, err := upload.PurgeTopic(ctx, store, "t"); !errors.Is(err, objstore.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("PurgeTopic = %v, want ErrUnavailable and context.Canceled", err)
	}
}

type downStore struct{ objstore.Store }

func (downStore) List(context.Context, string, string, int) ([]objstore.ObjectInfo, error) {
	return nil, fmt.Errorf("down: %w", objstore.ErrUnavailable)
}
