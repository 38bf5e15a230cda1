package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/spatehq/spate/control-plane/internal/placement"
)

// Key prefixes; see the package documentation.
const (
	// Root is the prefix of every key of the control plane.
	Root = "/spate/v1/"
	// ClustersRoot is the prefix of the clusters' metadata.
	ClustersRoot = Root + "clusters/"
	// LeaderPrefix holds the election keys of the control-plane replicas.
	LeaderPrefix = Root + "leader"
	// SyncKey is never written; reading it returns etcd's current
	// revision.
	SyncKey = Root + "sync"
)

// ClusterPrefix is the prefix of one cluster's metadata.
func ClusterPrefix(cluster string) string { return ClustersRoot + cluster + "/" }

// Keys are the key prefixes of one cluster's metadata.
type Keys struct {
	Prefix, Topics, Placements, SPUs, Status string
}

// KeysFor returns the key prefixes of a cluster.
func KeysFor(cluster string) Keys {
	p := ClusterPrefix(cluster)
	return Keys{Prefix: p, Topics: p + "topics/", Placements: p + "placements/", SPUs: p + "spus/", Status: p + "spu-status/"}
}

var (
	// ErrTopicExists is returned when creating a topic whose name is taken.
	ErrTopicExists = errors.New("store: topic already exists")
	// ErrTopicNotFound is returned for a topic that does not exist.
	ErrTopicNotFound = errors.New("store: topic not found")
	// ErrConflict is returned when a guarded write lost a race: the key
	// changed since it was read, or the writer no longer leads.
	ErrConflict = errors.New("store: concurrent change")
)

// Settings are a topic's storage settings; nil fields take the SPU's
// defaults.
type Settings struct {
	RetentionMs    *int64 `json:"retention_ms,omitempty"`
	RetentionBytes *int64 `json:"retention_bytes,omitempty"`
	SegmentBytes   *int64 `json:"segment_bytes,omitempty"`
	SegmentAgeMs   *int64 `json:"segment_age_ms,omitempty"`
	MaxBatchBytes  *int32 `json:"max_batch_bytes,omitempty"`
	// Durability is "write", "fsync" or empty.
	Durability string `json:"durability,omitempty"`
	// Tiering uploads closed segments to the object store; nil and false
	// are off. With tiering on, RetentionMs and RetentionBytes govern the
	// whole log, remote included, and the Local ones the SPU's disk.
	Tiering *bool `json:"tiering,omitempty"`
	// LocalRetentionMs and LocalRetentionBytes bound what stays on the
	// SPU's disk once uploaded (-1: no bound below the whole log's). They
	// are kept, unused, while tiering is off, and apply again when it is
	// turned back on.
	LocalRetentionMs    *int64 `json:"local_retention_ms,omitempty"`
	LocalRetentionBytes *int64 `json:"local_retention_bytes,omitempty"`
}

// Tiered reports whether tiering is on.
func (s Settings) Tiered() bool { return s.Tiering != nil && *s.Tiering }

// Topic is a declared topic.
type Topic struct {
	Name              string   `json:"name"`
	Partitions        int32    `json:"partitions"`
	ReplicationFactor int32    `json:"replication_factor"`
	Settings          Settings `json:"settings"`
	CreatedAtMs       int64    `json:"created_at_ms"`
	// Deleting is set by a delete; the reconciler removes the key once no
	// SPU reports a replica of the topic.
	Deleting bool `json:"deleting,omitempty"`
	// Revision is the etcd mod revision of the key, for guarded updates.
	Revision int64 `json:"-"`
}

// Placement is where a topic's partitions live.
type Placement struct {
	// Partitions is indexed by partition number; it may be shorter than the
	// topic's partition count while new partitions wait to be placed.
	Partitions []placement.Partition `json:"partitions"`
	// Revision is the etcd mod revision of the key.
	Revision int64 `json:"-"`
}

// SPU is a registered, online SPU.
type SPU struct {
	ID             int32  `json:"id"`
	Address        string `json:"address"`
	RegisteredAtMs int64  `json:"registered_at_ms"`
}

// ReplicaStatus is what an SPU reports about one replica.
type ReplicaStatus struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	StartOffset int64  `json:"start_offset"`
	EndOffset   int64  `json:"end_offset"`
	SizeBytes   int64  `json:"size_bytes"`
	LeaderEpoch int32  `json:"leader_epoch"`
	// With tiering, what the leader reports: the first offset and the
	// bytes in the object store (-1 and 0 when nothing is), the bytes of
	// closed segments not yet uploaded, and why uploads fail.
	RemoteStartOffset int64  `json:"remote_start_offset,omitempty"`
	RemoteSizeBytes   int64  `json:"remote_size_bytes,omitempty"`
	UploadLagBytes    int64  `json:"upload_lag_bytes,omitempty"`
	TieringError      string `json:"tiering_error,omitempty"`
}

// SPUStatus is an SPU's last heartbeat.
type SPUStatus struct {
	HeartbeatMs int64           `json:"heartbeat_ms"`
	Replicas    []ReplicaStatus `json:"replicas,omitempty"`
}

// Store reads and writes the metadata. It is safe for concurrent use.
type Store struct {
	c    *clientv3.Client
	keys Keys

	mu sync.Mutex
	// leases caches the lease and address of each SPU key this process
	// wrote or saw, and spuLocks serialize each SPU's heartbeats; both
	// guarded by mu.
	leases   map[int32]spuLease
	spuLocks map[int32]*sync.Mutex
}

type spuLease struct {
	id   clientv3.LeaseID
	addr string
}

// New returns the Store of one cluster's metadata on an etcd client, which
// the caller closes.
func New(c *clientv3.Client, cluster string) *Store {
	return &Store{c: c, keys: KeysFor(cluster), leases: make(map[int32]spuLease), spuLocks: make(map[int32]*sync.Mutex)}
}

// Client returns the etcd client.
func (s *Store) Client() *clientv3.Client { return s.c }

// Keys returns the store's key prefixes.
func (s *Store) Keys() Keys { return s.keys }

// TopicKey is the key of a topic.
func (k Keys) TopicKey(name string) string { return k.Topics + name }

// PlacementKey is the key of a topic's placement.
func (k Keys) PlacementKey(name string) string { return k.Placements + name }

// SPUKey is the key of an SPU.
func (k Keys) SPUKey(id int32) string { return k.SPUs + strconv.Itoa(int(id)) }

// StatusKey is the key of an SPU's status.
func (k Keys) StatusKey(id int32) string { return k.Status + strconv.Itoa(int(id)) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	return string(b)
}

// CreateTopic stores a new topic; ErrTopicExists when the name is taken
// (also by a topic being deleted).
func (s *Store) CreateTopic(ctx context.Context, t Topic) (Topic, error) {
	key := s.keys.TopicKey(t.Name)
	resp, err := s.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, mustJSON(t))).
		Commit()
	if err != nil {
		return t, fmt.Errorf("create topic %s: %w", t.Name, err)
	}
	if !resp.Succeeded {
		return t, ErrTopicExists
	}
	t.Revision = resp.Header.Revision
	return t, nil
}

// GetTopic reads a topic; ErrTopicNotFound when there is none.
func (s *Store) GetTopic(ctx context.Context, name string) (Topic, error) {
	resp, err := s.c.Get(ctx, s.keys.TopicKey(name))
	if err != nil {
		return Topic{}, fmt.Errorf("get topic %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return Topic{}, ErrTopicNotFound
	}
	var t Topic
	if err := json.Unmarshal(resp.Kvs[0].Value, &t); err != nil {
		return Topic{}, fmt.Errorf("decode topic %s: %w", name, err)
	}
	t.Revision = resp.Kvs[0].ModRevision
	return t, nil
}

// UpdateTopic applies fn to the stored topic and writes it back if it did
// not change in between, retrying on conflicts. fn may return an error to
// abort. When fn sets Deleting, the topic's placement is removed in the
// same transaction.
func (s *Store) UpdateTopic(ctx context.Context, name string, fn func(*Topic) error) (Topic, error) {
	for {
		t, err := s.GetTopic(ctx, name)
		if err != nil {
			return t, err
		}
		if err := fn(&t); err != nil {
			return t, err
		}
		key := s.keys.TopicKey(name)
		ops := []clientv3.Op{clientv3.OpPut(key, mustJSON(t))}
		if t.Deleting {
			ops = append(ops, clientv3.OpDelete(s.keys.PlacementKey(name)))
		}
		resp, err := s.c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", t.Revision)).
			Then(ops...).
			Commit()
		if err != nil {
			return t, fmt.Errorf("update topic %s: %w", name, err)
		}
		if resp.Succeeded {
			t.Revision = resp.Header.Revision
			return t, nil
		}
		if err := ctx.Err(); err != nil {
			return t, err
		}
	}
}

// PutPlacement writes a topic's placement if the topic is still at
// topicRev, the placement at placementRev (0: absent) and every guard
// holds; ErrConflict otherwise.
func (s *Store) PutPlacement(ctx context.Context, name string, topicRev, placementRev int64, p Placement, guard ...clientv3.Cmp) error {
	cmps := append([]clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.keys.TopicKey(name)), "=", topicRev),
		clientv3.Compare(clientv3.ModRevision(s.keys.PlacementKey(name)), "=", placementRev),
	}, guard...)
	resp, err := s.c.Txn(ctx).If(cmps...).Then(clientv3.OpPut(s.keys.PlacementKey(name), mustJSON(p))).Commit()
	if err != nil {
		return fmt.Errorf("put placement %s: %w", name, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// RemoveTopic deletes a topic and its placement if the topic is still at
// topicRev and every guard holds; ErrConflict otherwise.
func (s *Store) RemoveTopic(ctx context.Context, name string, topicRev int64, guard ...clientv3.Cmp) error {
	cmps := append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.keys.TopicKey(name)), "=", topicRev)}, guard...)
	resp, err := s.c.Txn(ctx).If(cmps...).
		Then(clientv3.OpDelete(s.keys.TopicKey(name)), clientv3.OpDelete(s.keys.PlacementKey(name))).
		Commit()
	if err != nil {
		return fmt.Errorf("remove topic %s: %w", name, err)
	}
	if !resp.Succeeded {
		return ErrConflict
	}
	return nil
}

// Heartbeat records that an SPU is alive: its key is created under a lease
// of ttl, or the existing lease is kept alive, and with a non-nil status
// its status key is written under the same lease. If the SPU's key is not
// under the lease kept alive (another call or control-plane replica
// replaced it, or it expired), the key is written again. Safe for
// concurrent use; any control-plane replica may receive an SPU's
// heartbeats.
func (s *Store) Heartbeat(ctx context.Context, spu SPU, status *SPUStatus, ttl time.Duration) error {
	lock := s.spuLock(spu.ID)
	lock.Lock()
	defer lock.Unlock()
	s.mu.Lock()
	cached, ok := s.leases[spu.ID]
	s.mu.Unlock()
	key := s.keys.SPUKey(spu.ID)
	if !ok {
		resp, err := s.c.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("heartbeat spu %d: %w", spu.ID, err)
		}
		if len(resp.Kvs) > 0 && resp.Kvs[0].Lease != 0 {
			var old SPU
			if json.Unmarshal(resp.Kvs[0].Value, &old) == nil {
				cached = spuLease{id: clientv3.LeaseID(resp.Kvs[0].Lease), addr: old.Address}
			}
		}
	}
	lease := cached.id
	if lease != 0 {
		if _, err := s.c.KeepAliveOnce(ctx, lease); err != nil {
			if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return fmt.Errorf("heartbeat spu %d: %w", spu.ID, err)
			}
			lease = 0
		}
	}
	if lease == 0 {
		secs := int64(math.Ceil(ttl.Seconds()))
		g, err := s.c.Grant(ctx, max(secs, 1))
		if err != nil {
			return fmt.Errorf("heartbeat spu %d: grant lease: %w", spu.ID, err)
		}
		lease = g.ID
	}
	if spu.RegisteredAtMs == 0 {
		spu.RegisteredAtMs = time.Now().UnixMilli()
	}
	putSPU := clientv3.OpPut(key, mustJSON(spu), clientv3.WithLease(lease))
	var ops []clientv3.Op
	if status != nil {
		ops = append(ops, clientv3.OpPut(s.keys.StatusKey(spu.ID), mustJSON(status), clientv3.WithLease(lease)))
	}
	txn := s.c.Txn(ctx)
	if lease == cached.id && spu.Address == cached.addr {
		// The usual case: the key is there under this lease; rewrite it
		// only if it is not.
		txn = txn.If(clientv3.Compare(clientv3.LeaseValue(key), "=", lease)).Then(ops...).Else(append(ops, putSPU)...)
	} else {
		txn = txn.Then(append(ops, putSPU)...)
	}
	if _, err := txn.Commit(); err != nil {
		return fmt.Errorf("heartbeat spu %d: %w", spu.ID, err)
	}
	s.mu.Lock()
	s.leases[spu.ID] = spuLease{id: lease, addr: spu.Address}
	s.mu.Unlock()
	return nil
}

// spuLock returns the mutex that serializes the heartbeats of one SPU.
func (s *Store) spuLock(id int32) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.spuLocks[id]
	if !ok {
		l = new(sync.Mutex)
		s.spuLocks[id] = l
	}
	return l
}

// Load reads every key of the cluster into a new State at one revision.
func (s *Store) Load(ctx context.Context) (*State, error) {
	resp, err := s.c.Get(ctx, s.keys.Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("load metadata: %w", err)
	}
	st := NewState(s.keys)
	for _, kv := range resp.Kvs {
		st.apply(string(kv.Key), kv.Value, kv.ModRevision, false)
	}
	st.Rev = resp.Header.Revision
	return st, nil
}

// State is an in-memory copy of the metadata at revision Rev. The maps are
// keyed by topic name and SPU id. It is not safe for concurrent use.
type State struct {
	keys       Keys
	Rev        int64
	Topics     map[string]*Topic
	Placements map[string]*Placement
	SPUs       map[int32]*SPU
	Statuses   map[int32]*SPUStatus

	// TopicsGen, SPUsGen and StatusGen count changes to topics and
	// placements, to the set of SPUs, and to reported statuses.
	TopicsGen, SPUsGen, StatusGen uint64
}

// NewState returns an empty State of the cluster whose keys are k.
func NewState(k Keys) *State {
	return &State{
		keys:       k,
		Topics:     make(map[string]*Topic),
		Placements: make(map[string]*Placement),
		SPUs:       make(map[int32]*SPU),
		Statuses:   make(map[int32]*SPUStatus),
	}
}

// Apply applies one watch event.
func (st *State) Apply(ev *clientv3.Event) {
	st.apply(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.ModRevision, ev.Type == clientv3.EventTypeDelete)
	if ev.Kv.ModRevision > st.Rev {
		st.Rev = ev.Kv.ModRevision
	}
}

func (st *State) apply(key string, value []byte, rev int64, deleted bool) {
	switch {
	case strings.HasPrefix(key, st.keys.Topics):
		name := strings.TrimPrefix(key, st.keys.Topics)
		st.TopicsGen++
		var t Topic
		if deleted || json.Unmarshal(value, &t) != nil {
			delete(st.Topics, name)
			return
		}
		t.Revision = rev
		st.Topics[name] = &t
	case strings.HasPrefix(key, st.keys.Placements):
		name := strings.TrimPrefix(key, st.keys.Placements)
		st.TopicsGen++
		var p Placement
		if deleted || json.Unmarshal(value, &p) != nil {
			delete(st.Placements, name)
			return
		}
		p.Revision = rev
		st.Placements[name] = &p
	case strings.HasPrefix(key, st.keys.SPUs):
		id, err := strconv.ParseInt(strings.TrimPrefix(key, st.keys.SPUs), 10, 32)
		if err != nil {
			return
		}
		st.SPUsGen++
		var spu SPU
		if deleted || json.Unmarshal(value, &spu) != nil {
			delete(st.SPUs, int32(id))
			return
		}
		st.SPUs[int32(id)] = &spu
	case strings.HasPrefix(key, st.keys.Status):
		id, err := strconv.ParseInt(strings.TrimPrefix(key, st.keys.Status), 10, 32)
		if err != nil {
			return
		}
		st.StatusGen++
		var status SPUStatus
		if deleted || json.Unmarshal(value, &status) != nil {
			delete(st.Statuses, int32(id))
			return
		}
		st.Statuses[int32(id)] = &status
	}
}
