package store

import (
	"context"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cache keeps a State current with one etcd watch and tells readers when it
// changed, so that every stream of a control-plane replica is served from
// memory without polling. Safe for concurrent use.
type Cache struct {
	store  *Store
	logger *slog.Logger

	mu sync.Mutex
	// st is the current state and changed is closed (and replaced) when st
	// changes; both guarded by mu.
	st      *State
	changed chan struct{}

	ready     chan struct{}
	readyOnce sync.Once
}

// NewCache returns a cache of s's metadata; Run fills it.
func NewCache(s *Store, logger *slog.Logger) *Cache {
	return &Cache{store: s, logger: logger, st: NewState(s.keys), changed: make(chan struct{}), ready: make(chan struct{})}
}

// Ready is closed once the cache holds a first full copy.
func (c *Cache) Ready() <-chan struct{} { return c.ready }

// Read calls fn with the current state under the cache's lock; fn must not
// keep or modify it. Read returns a channel closed at the next change.
func (c *Cache) Read(fn func(*State)) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.st)
	return c.changed
}

// Rev returns the revision the cache reflects.
func (c *Cache) Rev() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Rev
}

// WaitRev waits until the cache reflects revision rev or ctx ends. The
// cache's watch sees only its cluster's keys, so a revision written
// elsewhere arrives as a progress notification, which WaitRev requests.
func (c *Cache) WaitRev(ctx context.Context, rev int64) error {
	for {
		var cur int64
		ch := c.Read(func(st *State) { cur = st.Rev })
		if cur >= rev {
			return nil
		}
		// The watch's stream is the one of contexts with the same
		// metadata: WithRequireLeader, as in Run.
		if err := c.store.c.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil && ctx.Err() == nil {
			c.logger.Debug("request watch progress", "err", err)
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

func (c *Cache) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Run loads the metadata and follows it until ctx ends; it reloads
// everything after a watch error (a compacted revision, a lost leader).
func (c *Cache) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		st, err := c.store.Load(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.logger.Warn("load metadata", "err", err)
				Sleep(ctx, time.Second)
			}
			continue
		}
		c.mu.Lock()
		st.TopicsGen = c.st.TopicsGen + 1
		st.SPUsGen = c.st.SPUsGen + 1
		st.StatusGen = c.st.StatusGen + 1
		c.st = st
		c.notifyLocked()
		c.mu.Unlock()
		c.readyOnce.Do(func() { close(c.ready) })

		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := c.store.c.Watch(wctx, c.store.keys.Prefix, clientv3.WithPrefix(), clientv3.WithRev(st.Rev+1))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				c.logger.Warn("metadata watch", "err", err)
				break
			}
			c.mu.Lock()
			for _, ev := range resp.Events {
				c.st.Apply(ev)
			}
			if resp.Header.Revision > c.st.Rev {
				c.st.Rev = resp.Header.Revision
			}
			c.notifyLocked()
			c.mu.Unlock()
		}
		cancel()
		if ctx.Err() == nil {
			Sleep(ctx, 100*time.Millisecond)
		}
	}
	return nil
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
