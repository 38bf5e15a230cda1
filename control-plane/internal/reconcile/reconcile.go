// Package reconcile drives the stored topics toward their declared state.
// Only the leading control-plane replica runs it. It is woken by the
// metadata cache (an etcd watch), never by a timer: a topic change, an SPU
// that registers or whose lease expires, or, while a topic is being
// deleted, a status report.
//
// One pass places unplaced partitions and moves leadership off offline
// SPUs (package placement), and removes deleting topics that no online SPU
// reports any more, once their objects in the remote tier are purged
// (Reconciler.Purge): until then the topic's name stays taken. Every write is guarded by the leader's election key and
// by the revisions it read, so a replica that lost leadership, or read stale
// data, writes nothing.
package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/control-plane/internal/placement"
	"github.com/spatehq/spate/control-plane/internal/store"
)

// Reconciler is the reconcile loop of a leader.
type Reconciler struct {
	// Store writes the results.
	Store *store.Store
	// Cache is the metadata the loop reads and waits on.
	Cache *store.Cache
	// Guard holds while this replica leads (the election key's revision).
	Guard []clientv3.Cmp
	// Logger is required.
	Logger *slog.Logger
	// Purge, when set, deletes a topic's objects from the remote tier.
	// It is called, in a goroutine of its own, once no online SPU reports
	// a replica of a deleting topic, and the topic is removed from the
	// store only after it returned nil; an error is logged and the purge
	// tried again after a backoff. It must be idempotent: a new leader
	// purges again a topic whose purge the old one had started.
	Purge func(ctx context.Context, topic string) error
	// PurgeBackoff is the first wait before a failed purge is tried
	// again, doubling up to a minute. Default 1 s.
	PurgeBackoff time.Duration
}

// purgeJob is a purge of one topic incarnation, running or done.
type purgeJob struct {
	done chan struct{} // closed when the purge succeeded or ctx ended
}

type action struct {
	topic     string
	remove    bool
	created   int64 // the topic's CreatedAtMs, for removes
	topicRev  int64
	placeRev  int64
	placement store.Placement
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	select {
	case <-r.Cache.Ready():
	case <-ctx.Done():
		return nil
	}
	var topicsGen, spusGen, statusGen uint64
	deleting := false
	purges := map[string]*purgeJob{}
	purged := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		var actions []action
		changed := r.Cache.Read(func(st *store.State) {
			if st.TopicsGen == topicsGen && st.SPUsGen == spusGen && (!deleting || st.StatusGen == statusGen) {
				return
			}
			topicsGen, spusGen, statusGen = st.TopicsGen, st.SPUsGen, st.StatusGen
			actions, deleting = plan(st)
		})
		failed := false
		for _, a := range actions {
			var err error
			if a.remove {
				key := fmt.Sprintf("%s@%d", a.topic, a.created)
				if r.Purge != nil {
					j := purges[key]
					if j == nil {
						j = &purgeJob{done: make(chan struct{})}
						purges[key] = j
						wg.Go(func() { r.purge(ctx, a.topic, j, purged) })
					}
					select {
					case <-j.done:
					default:
						continue // removed once purged
					}
				}
				err = r.Store.RemoveTopic(ctx, a.topic, a.topicRev, r.Guard...)
				if err == nil {
					delete(purges, key)
					r.Logger.Info("topic deleted", "topic", a.topic)
				}
			} else {
				err = r.Store.PutPlacement(ctx, a.topic, a.topicRev, a.placeRev, a.placement, r.Guard...)
				if err == nil {
					r.Logger.Debug("topic placed", "topic", a.topic)
				}
			}
			switch {
			case err == nil, errors.Is(err, store.ErrConflict):
				// A conflict means newer state is on its way to the cache.
			case ctx.Err() != nil:
				return nil
			default:
				r.Logger.Warn("reconcile", "topic", a.topic, "err", err)
				failed = true
			}
		}
		if failed {
			// Force a new pass once etcd answers again.
			topicsGen = 0
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
				continue
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		select {
		case <-changed:
		case <-purged:
			topicsGen = 0 // plan again: a purged topic may go
		case <-ctx.Done():
			return nil
		}
	}
}

// purge runs r.Purge for topic until it succeeds or ctx ends, then closes
// j.done and wakes the loop through purged.
func (r *Reconciler) purge(ctx context.Context, topic string, j *purgeJob, purged chan<- struct{}) {
	backoff := r.PurgeBackoff
	if backoff <= 0 {
		backoff = time.Second
	}
	start := time.Now()
	for {
		err := r.Purge(ctx, topic)
		if err == nil {
			r.Logger.Debug("topic purged from the remote tier", "topic", topic, "after", time.Since(start).Round(time.Millisecond))
			break
		}
		if ctx.Err() != nil {
			return // a new leader purges again
		}
		r.Logger.Error("purge topic from the remote tier; the topic stays deleting until it succeeds", "topic", topic, "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, time.Minute)
	}
	close(j.done)
	select {
	case purged <- struct{}{}:
	default:
	}
}

// plan computes the writes one pass makes on st, and whether a topic is
// being deleted (so status reports matter).
func plan(st *store.State) (actions []action, deleting bool) {
	online := make([]int32, 0, len(st.SPUs))
	for id := range st.SPUs {
		online = append(online, id)
	}
	slices.Sort(online)
	topics := make([]*store.Topic, 0, len(st.Topics))
	for _, t := range st.Topics {
		topics = append(topics, t)
	}
	// Older topics first, so that placement is stable from pass to pass.
	slices.SortFunc(topics, func(a, b *store.Topic) int {
		return cmp.Or(cmp.Compare(a.CreatedAtMs, b.CreatedAtMs), cmp.Compare(a.Name, b.Name))
	})
	var in []placement.Topic
	for _, t := range topics {
		if t.Deleting {
			deleting = true
			if !reported(st, t.Name) {
				actions = append(actions, action{topic: t.Name, remove: true, created: t.CreatedAtMs, topicRev: t.Revision})
			}
			continue
		}
		pt := placement.Topic{Name: t.Name, Partitions: int(t.Partitions), ReplicationFactor: int(t.ReplicationFactor)}
		if p, ok := st.Placements[t.Name]; ok {
			pt.Current = p.Partitions
		}
		in = append(in, pt)
	}
	results := placement.Plan(in, online)
	for _, pt := range in {
		res := results[pt.Name]
		if !res.Changed {
			continue
		}
		t := st.Topics[pt.Name]
		var placeRev int64
		if p, ok := st.Placements[pt.Name]; ok {
			placeRev = p.Revision
		}
		actions = append(actions, action{topic: pt.Name, topicRev: t.Revision, placeRev: placeRev, placement: store.Placement{Partitions: res.Partitions}})
	}
	return actions, deleting
}

// reported tells whether an online SPU still reports a replica of topic.
func reported(st *store.State, topic string) bool {
	for _, s := range st.Statuses {
		for _, r := range s.Replicas {
			if r.Topic == topic {
				return true
			}
		}
	}
	return false
}
