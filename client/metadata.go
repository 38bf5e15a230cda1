package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
)

// metadataResolver learns where partitions live from the control plane's
// MetadataService.WatchMetadata stream: a snapshot, then changes. It starts
// the watch on first use and keeps it open, reconnecting with a backoff,
// until stop.
type metadataResolver struct {
	url    string // of the control plane, for errors
	client controlplanev1connect.MetadataServiceClient
	logger interface {
		Warn(msg string, args ...any)
	}

	startOnce sync.Once
	cancel    context.CancelFunc
	done      chan struct{} // closed when the watch goroutine ends

	mu      sync.Mutex                                      // guards the fields below
	synced  bool                                            // a snapshot arrived
	lastErr error                                           // why the last watch failed; nil once synced
	spus    map[int32]*controlplanev1.SPU                   // by id
	topics  map[string][]*controlplanev1.PartitionPlacement // sorted by partition
	changed chan struct{}                                   // closed and replaced on every change
}

var _ resolver = (*metadataResolver)(nil)

func newMetadataResolver(c *Client, url string) *metadataResolver {
	return &metadataResolver{
		url:     url,
		client:  controlplanev1connect.NewMetadataServiceClient(c.cpHTTP, url, c.cpOps...),
		logger:  c.logger,
		spus:    make(map[int32]*controlplanev1.SPU),
		topics:  make(map[string][]*controlplanev1.PartitionPlacement),
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start begins the watch, once.
func (r *metadataResolver) start() {
	r.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go r.run(ctx)
	})
}

// stop ends the watch and waits for it.
func (r *metadataResolver) stop() {
	started := true
	r.startOnce.Do(func() { started = false; close(r.done) })
	if started {
		r.cancel()
		<-r.done
	}
}

// run keeps a WatchMetadata stream open until ctx is done.
func (r *metadataResolver) run(ctx context.Context) {
	defer close(r.done)
	bo := backoff{min: 50 * time.Millisecond, max: 3 * time.Second}
	for {
		// Callers that come during an attempt wait for its outcome;
		// those that come between failed attempts fail at once.
		r.mu.Lock()
		if !r.synced {
			r.lastErr = nil
		}
		r.mu.Unlock()
		got, err := r.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			bo.reset()
		}
		r.mu.Lock()
		if !r.synced {
			r.lastErr = err
		}
		r.notifyLocked()
		r.mu.Unlock()
		if err != nil {
			r.logger.Warn("metadata watch broke; reconnecting", "control_plane", r.url, "err", err)
		}
		if !bo.wait(ctx) {
			return
		}
	}
}

// watch runs one stream and applies its messages. It reports whether any
// message came.
func (r *metadataResolver) watch(ctx context.Context) (bool, error) {
	stream, err := r.client.WatchMetadata(ctx, connect.NewRequest(&controlplanev1.WatchMetadataRequest{}))
	if err != nil {
		return false, err
	}
	defer stream.Close()
	got := false
	for stream.Receive() {
		got = true
		r.apply(stream.Msg())
	}
	if err := stream.Err(); err != nil {
		return got, err
	}
	return got, errors.New("the control plane ended the metadata stream")
}

// apply merges one message into the state and wakes the waiters.
func (r *metadataResolver) apply(m *controlplanev1.WatchMetadataResponse) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.GetSnapshot() {
		clear(r.spus)
		clear(r.topics)
		r.synced = true
		r.lastErr = nil
	}
	for _, s := range m.GetSpus() {
		r.spus[s.GetId()] = s
	}
	for _, id := range m.GetDeletedSpus() {
		delete(r.spus, id)
	}
	for _, t := range m.GetTopics() {
		parts := slices.Clone(t.GetPartitions())
		sort.Slice(parts, func(i, j int) bool { return parts[i].GetPartition() < parts[j].GetPartition() })
		r.topics[t.GetName()] = parts
	}
	for _, name := range m.GetDeletedTopics() {
		delete(r.topics, name)
	}
	r.notifyLocked()
}

func (r *metadataResolver) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// changes returns a channel closed at the next change of the metadata.
func (r *metadataResolver) changes() <-chan struct{} {
	r.start()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// unavailable wraps the error of a failed watch so that it says where the
// control plane was expected.
func (r *metadataResolver) unavailable(err error) error {
	code := connect.CodeOf(err)
	if code == connect.CodeUnknown || code == connect.CodeUnavailable {
		code = connect.CodeUnavailable
	}
	return connect.NewError(code, fmt.Errorf("client: control plane at %s unreachable: %w", r.url, err))
}

// await calls f with the lock held until it reports done, waking at each
// change, until ctx is done. Before the first snapshot, a failed watch
// fails await at once.
func (r *metadataResolver) await(ctx context.Context, f func() (bool, error)) error {
	r.start()
	for {
		r.mu.Lock()
		if !r.synced && r.lastErr != nil {
			err := r.lastErr
			r.mu.Unlock()
			return r.unavailable(err)
		}
		if r.synced {
			ok, err := f()
			if ok || err != nil {
				r.mu.Unlock()
				return err
			}
		}
		ch := r.changed
		r.mu.Unlock()
		// f may wait for time too (unknownTopicGrace): look again now and
		// then even without a change.
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ch:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf("client: waiting for metadata from %s: %w", r.url, context.Cause(ctx)))
		}
	}
}

// addressLocked returns the URL of a partition's leader, or "" while it
// has none.
func (r *metadataResolver) addressLocked(p *controlplanev1.PartitionPlacement) string {
	if p.GetLeader() < 0 {
		return ""
	}
	s := r.spus[p.GetLeader()]
	if s == nil || s.GetAddress() == "" {
		return ""
	}
	return normalizeURL(s.GetAddress())
}

// partitions waits until every partition of topic has a leader. A topic
// the control plane does not know gives an empty slice.
func (r *metadataResolver) partitions(ctx context.Context, topic string) ([]partitionLeader, error) {
	var out []partitionLeader
	// A topic just created may not have reached the watch yet: give it a
	// moment before calling it unknown.
	grace := time.Now().Add(unknownTopicGrace)
	err := r.await(ctx, func() (bool, error) {
		out = out[:0]
		parts, ok := r.topics[topic]
		if !ok && time.Now().Before(grace) {
			return false, nil
		}
		for _, p := range parts {
			addr := r.addressLocked(p)
			if addr == "" {
				return false, nil
			}
			out = append(out, partitionLeader{partition: p.GetPartition(), leader: addr})
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("client: partitions of topic %q: %w", topic, err)
	}
	return out, nil
}

// unknownTopicGrace is how long partitions waits for a topic it does not
// know to appear.
const unknownTopicGrace = time.Second

// leader waits until the partition has a leader.
func (r *metadataResolver) leader(ctx context.Context, topic string, partition int32) (string, error) {
	var addr string
	err := r.await(ctx, func() (bool, error) {
		parts, ok := r.topics[topic]
		if !ok {
			return false, connect.NewError(connect.CodeNotFound, fmt.Errorf("client: unknown topic %q", topic))
		}
		i := slices.IndexFunc(parts, func(p *controlplanev1.PartitionPlacement) bool { return p.GetPartition() == partition })
		if i < 0 {
			return false, connect.NewError(connect.CodeNotFound, fmt.Errorf("client: topic %q has no partition %d", topic, partition))
		}
		addr = r.addressLocked(parts[i])
		return addr != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("client: leader of partition %d of topic %q: %w", partition, topic, err)
	}
	return addr, nil
}

// endpoints returns the URLs of the online SPUs.
func (r *metadataResolver) endpoints(ctx context.Context) ([]string, error) {
	var out []string
	err := r.await(ctx, func() (bool, error) {
		out = out[:0]
		for _, s := range r.spus {
			if s.GetOnline() && s.GetAddress() != "" {
				out = append(out, normalizeURL(s.GetAddress()))
			}
		}
		return true, nil
	})
	slices.Sort(out)
	return out, err
}

// currentLeader returns the leader URL now known for a partition, without
// waiting: "" when it has none.
func (r *metadataResolver) currentLeader(topic string, partition int32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.topics[topic] {
		if p.GetPartition() == partition {
			return r.addressLocked(p)
		}
	}
	return ""
}
