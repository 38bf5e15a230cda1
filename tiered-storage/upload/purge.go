package upload

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
)

// Purge's paging and retries.
const (
	purgePage       = 1000 // keys listed and deleted per request (S3's page)
	purgeAttempts   = 8    // attempts per request that fails with ErrUnavailable
	purgeMinBackoff = 200 * time.Millisecond
	purgeMaxBackoff = 10 * time.Second
	purgeMaxPasses  = 3 // listings of the whole prefix that found objects
)

// PurgeTopic deletes every object of topic from store, all partitions (every
// key under layout.TopicPrefix(topic), layout's objects or not), and returns
// how many objects it deleted. store is the cluster's store, the one its SPUs
// upload to (already scoped to the cluster's prefix or folder).
//
// It lists and deletes a page of 1000 keys at a time (a segment's .log
// objects before its indexes), so memory does not grow with the topic, and
// lists the prefix again until a listing finds it empty, so that objects
// written while it ran are deleted too; when three listings in a row still
// find objects (an SPU still uploads the topic), it fails saying so.
// A request that fails with objstore.ErrUnavailable is retried, with
// capped exponential backoff, up to 8 times (about a minute); other errors
// (objstore.ErrPermission, ctx's) are returned at once.
//
// It is idempotent: purging a topic without objects returns 0, nil. After an
// error, deleted counts what was deleted before it, and calling it again
// finishes the work. A topic name that is empty, contains '/' or cannot be a
// key is refused with an error wrapping objstore.ErrInvalidKey before any
// request (so that purging topic "a" never touches the objects of "ab" or
// "a/b").
//
// The caller makes sure that no SPU uploads the topic any more (its
// replicas are removed) before it purges.
func PurgeTopic(ctx context.Context, store objstore.Store, topic string) (deleted int, err error) {
	if topic == "" || strings.Contains(topic, "/") {
		return 0, fmt.Errorf("upload: purge topic %q: %w: a topic name must be non-empty and without '/'", topic, objstore.ErrInvalidKey)
	}
	prefix := layout.TopicPrefix(topic)
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return 0, fmt.Errorf("upload: purge topic %q: %w", topic, err)
	}
	return purgePrefix(ctx, store, prefix, fmt.Sprintf("topic %q", topic))
}

// PurgeAll deletes every object of store, as PurgeTopic does a topic's
// (in pages, retrying requests that fail with objstore.ErrUnavailable,
// until a listing finds the store empty), and returns how many it deleted.
// store is a cluster's store, already scoped to the cluster's prefix or
// folder; the caller makes sure that none of the cluster's SPUs runs.
func PurgeAll(ctx context.Context, store objstore.Store) (deleted int, err error) {
	return purgePrefix(ctx, store, "", "every object")
}

// purgePrefix deletes every object under prefix; what names them in errors.
func purgePrefix(ctx context.Context, store objstore.Store, prefix, what string) (deleted int, err error) {
	for pass := 0; ; pass++ {
		found := 0
		after := ""
		for {
			var objs []objstore.ObjectInfo
			err := retryUnavailable(ctx, func() error {
				var err error
				objs, err = store.List(ctx, prefix, after, purgePage)
				return err
			})
			if err != nil {
				return deleted, fmt.Errorf("upload: purge %s: list: %w", what, err)
			}
			if len(objs) == 0 {
				break
			}
			keys := make([]string, len(objs))
			for i, o := range objs {
				keys[i] = o.Key
			}
			after = keys[len(keys)-1]
			// .log objects first: a segment stops counting as remote
			// before its indexes go.
			sort.SliceStable(keys, func(a, b int) bool {
				return strings.HasSuffix(keys[a], layout.LogSuffix) && !strings.HasSuffix(keys[b], layout.LogSuffix)
			})
			if err := retryUnavailable(ctx, func() error { return store.Delete(ctx, keys...) }); err != nil {
				return deleted, fmt.Errorf("upload: purge %s: delete %d objects: %w", what, len(keys), err)
			}
			deleted += len(keys)
			found += len(keys)
			if len(objs) < purgePage {
				break
			}
		}
		if found == 0 {
			return deleted, nil
		}
		if pass+1 >= purgeMaxPasses {
			return deleted, fmt.Errorf("upload: purge %s: objects keep appearing under %q after %d listings: is an SPU still uploading?", what, prefix, purgeMaxPasses)
		}
	}
}

// retryUnavailable calls op until it succeeds, fails with an error other
// than objstore.ErrUnavailable, or has failed purgeAttempts times.
func retryUnavailable(ctx context.Context, op func() error) error {
	backoff := purgeMinBackoff
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !errors.Is(err, objstore.ErrUnavailable) || attempt >= purgeAttempts {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, purgeMaxBackoff)
	}
}
