package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/names"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// Errors returned by the Manager.
var (
	// ErrUnknownTopic means the SPU holds no replica of the topic.
	ErrUnknownTopic = errors.New("replica: unknown topic")
	// ErrUnknownPartition means the topic exists here but not that partition.
	ErrUnknownPartition = errors.New("replica: unknown partition")
	// ErrInvalidSpec means a declared replica cannot be accepted as is.
	ErrInvalidSpec = errors.New("replica: invalid spec")
	// ErrNotLeader means a write to a replica that follows another SPU:
	// the client should produce to the leader the error names.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrClosed means the Manager was closed.
	ErrClosed = errors.New("replica: closed")
)

// Key names a partition.
type Key struct {
	Topic     string
	Partition int32
}

func (k Key) String() string { return fmt.Sprintf("%s/%d", k.Topic, k.Partition) }

// Spec is what the control plane declares for a replica.
type Spec struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	LeaderEpoch int32  `json:"leader_epoch"`
	// FollowsLeader is the SPU that leads the partition when this replica
	// follows it; nil when this replica leads. It is persisted so that a
	// restarted SPU refuses produce to its followers before it hears from
	// the control plane again.
	FollowsLeader *int32   `json:"follows_leader,omitempty"`
	Settings      Settings `json:"settings"`
}

// Key returns the partition the spec is for.
func (s Spec) Key() Key { return Key{s.Topic, s.Partition} }

// Replica is one partition replica with its log and counters. The Manager
// owns it; callers must not keep it past a Remove.
type Replica struct {
	Key
	Log *commitlog.Log

	// Counters for this partition, registered by the Manager.
	BytesIn, RecordsIn, BytesOut, RecordsOut prometheus.Counter

	mu       sync.Mutex // guards spec, follower and leaderID
	spec     Spec
	follower bool
	leaderID int32

	// uploader uploads the replica's closed segments when tiering is on
	// (see WithTiering); nil otherwise.
	uploader atomic.Pointer[upload.Uploader]
}

// SetLeader makes the replica its partition's leader, which accepts
// produce. A replica is the leader until SetFollower is called: a
// standalone SPU leads every replica it holds.
func (r *Replica) SetLeader() {
	r.mu.Lock()
	r.follower, r.leaderID = false, 0
	r.mu.Unlock()
	if u := r.uploader.Load(); u != nil {
		u.SetLeader(true)
	}
}

// SetFollower makes the replica a follower of SPU leader: produce is
// refused with ErrNotLeader, and only replicated appends write its log.
func (r *Replica) SetFollower(leader int32) {
	r.mu.Lock()
	r.follower, r.leaderID = true, leader
	r.mu.Unlock()
	if u := r.uploader.Load(); u != nil {
		u.SetLeader(false)
	}
}

// CheckLeader returns nil when the replica leads its partition, and
// otherwise an error wrapping ErrNotLeader that names the leader.
func (r *Replica) CheckLeader() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.follower {
		return nil
	}
	return fmt.Errorf("%w of %s; the leader is SPU %d", ErrNotLeader, r.Key, r.leaderID)
}

// Spec returns the replica's current declared spec.
func (r *Replica) Spec() Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spec
}

// Manager holds the replicas of one SPU. It is safe for concurrent use.
type Manager struct {
	dir      string
	defaults commitlog.Config
	logger   *slog.Logger
	metrics  *metrics
	tier     *upload.Manager // nil without tiered storage

	mu       sync.RWMutex // guards replicas and closed; never held across disk I/O of a log
	replicas map[Key]*Replica
	closed   bool
	ensureMu sync.Mutex // serialises Ensure and Remove, which do disk I/O
}

type metrics struct {
	bytesIn, recordsIn, bytesOut, recordsOut *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"topic", "partition"}
	m := &metrics{
		bytesIn:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_spu_bytes_in_total", Help: "Bytes of record batches written, per partition."}, labels),
		recordsIn:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_spu_records_in_total", Help: "Records written, per partition."}, labels),
		bytesOut:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_spu_bytes_out_total", Help: "Bytes of record batches sent to consumers, per partition."}, labels),
		recordsOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_spu_records_out_total", Help: "Records sent to consumers, per partition (whole batches)."}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.bytesIn, m.recordsIn, m.bytesOut, m.recordsOut)
	}
	return m
}

// Open loads the replicas found under dir, recovering each log, and returns
// a Manager that creates new ones with the given defaults. A replica that
// fails to load is logged and skipped, so one damaged partition does not
// keep the SPU from serving the others.
func Open(dir string, defaults commitlog.Config, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (*Manager, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("replica defaults: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	m := &Manager{dir: dir, defaults: defaults, logger: logger, metrics: newMetrics(reg), replicas: map[Key]*Replica{}}
	for _, o := range opts {
		o(m)
	}
	if reg != nil {
		reg.MustRegister(newStorageCollector(m))
	}
	m.sweepRemoved()
	specs, err := filepath.Glob(filepath.Join(dir, "*", "*", "replica.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range specs {
		spec, err := readSpec(p)
		if err != nil {
			logger.Error("skip replica with unreadable spec", "path", p, "err", err)
			continue
		}
		r, err := m.open(spec)
		if err != nil {
			logger.Error("skip replica that failed to open", "topic", spec.Topic, "partition", spec.Partition, "err", err)
			continue
		}
		m.replicas[spec.Key()] = r
	}
	logger.Info("replicas loaded", "count", len(m.replicas), "dir", dir)
	return m, nil
}

func (m *Manager) partitionDir(k Key) string {
	return filepath.Join(m.dir, k.Topic, strconv.Itoa(int(k.Partition)))
}

func (m *Manager) open(spec Spec) (*Replica, error) {
	cfg, err := m.logConfig(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	k := spec.Key()
	l, err := commitlog.Open(filepath.Join(m.partitionDir(k), "segments"), cfg, m.logger.With("topic", k.Topic, "partition", k.Partition))
	if err != nil {
		return nil, err
	}
	l.SetLeaderEpoch(spec.LeaderEpoch)
	lv := []string{k.Topic, strconv.Itoa(int(k.Partition))}
	r := &Replica{
		Key:        k,
		Log:        l,
		spec:       spec,
		BytesIn:    m.metrics.bytesIn.WithLabelValues(lv...),
		RecordsIn:  m.metrics.recordsIn.WithLabelValues(lv...),
		BytesOut:   m.metrics.bytesOut.WithLabelValues(lv...),
		RecordsOut: m.metrics.recordsOut.WithLabelValues(lv...),
	}
	if spec.FollowsLeader != nil {
		r.follower, r.leaderID = true, *spec.FollowsLeader
	}
	m.syncTiering(r, cfg)
	return r, nil
}

// Get returns the replica of a partition, or an error wrapping
// ErrUnknownTopic or ErrUnknownPartition.
func (m *Manager) Get(topic string, partition int32) (*Replica, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	if r, ok := m.replicas[Key{topic, partition}]; ok {
		return r, nil
	}
	for k := range m.replicas {
		if k.Topic == topic {
			return nil, fmt.Errorf("%w: topic %q has no partition %d on this SPU", ErrUnknownPartition, topic, partition)
		}
	}
	return nil, UnknownTopicError(topic)
}

// UnknownTopicError returns the error for a topic this SPU holds no replica
// of. The SPU answers a caller who may not see a topic with exactly this
// error, so that a hidden topic cannot be told from a missing one.
func UnknownTopicError(topic string) error {
	return fmt.Errorf("%w: %q", ErrUnknownTopic, topic)
}

// List returns the replicas of a topic, or of every topic when topic is
// empty, ordered by topic and partition.
func (m *Manager) List(topic string) []*Replica {
	m.mu.RLock()
	out := make([]*Replica, 0, len(m.replicas))
	for k, r := range m.replicas {
		if topic == "" || k.Topic == topic {
			out = append(out, r)
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Replica) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// Ensure creates the replica a spec declares, or updates the settings and
// leader epoch of an existing one. It is idempotent. It reports whether the
// replica was created.
func (m *Manager) Ensure(spec Spec) (created bool, err error) {
	if err := names.Topic(spec.Topic); err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	if spec.Partition < 0 {
		return false, fmt.Errorf("%w: partition %d is negative", ErrInvalidSpec, spec.Partition)
	}
	cfg, err := m.logConfig(spec)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
	}
	m.ensureMu.Lock()
	defer m.ensureMu.Unlock()

	m.mu.RLock()
	r, ok := m.replicas[spec.Key()]
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return false, ErrClosed
	}
	if ok {
		if err := r.Log.SetConfig(cfg); err != nil {
			return false, fmt.Errorf("%w: %v", ErrInvalidSpec, err)
		}
		r.Log.SetLeaderEpoch(spec.LeaderEpoch)
		r.mu.Lock()
		r.spec = spec
		if spec.FollowsLeader != nil {
			// Refuse produce at once; becoming the leader is the caller's
			// SetLeader, once its fetch loop has stopped.
			r.follower, r.leaderID = true, *spec.FollowsLeader
		}
		r.mu.Unlock()
		if spec.FollowsLeader != nil {
			if u := r.uploader.Load(); u != nil {
				u.SetLeader(false)
			}
		}
		m.syncTiering(r, cfg)
		return false, writeSpec(filepath.Join(m.partitionDir(spec.Key()), "replica.json"), spec)
	}
	if err := os.MkdirAll(m.partitionDir(spec.Key()), 0o755); err != nil {
		return false, fmt.Errorf("create replica dir: %w", err)
	}
	if err := writeSpec(filepath.Join(m.partitionDir(spec.Key()), "replica.json"), spec); err != nil {
		return false, err
	}
	r, err = m.open(spec)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	m.replicas[spec.Key()] = r
	m.mu.Unlock()
	m.logger.Info("replica created", "topic", spec.Topic, "partition", spec.Partition)
	return true, nil
}

// Remove deletes a replica and its data. It is idempotent and reports
// whether there was a replica to remove.
func (m *Manager) Remove(k Key) (bool, error) {
	m.ensureMu.Lock()
	defer m.ensureMu.Unlock()
	m.mu.Lock()
	r, ok := m.replicas[k]
	delete(m.replicas, k)
	m.mu.Unlock()
	if !ok {
		return false, nil
	}
	m.stopTiering(r)
	if err := r.Log.Close(); err != nil {
		m.logger.Warn("close removed replica", "topic", k.Topic, "partition", k.Partition, "err", err)
	}
	lv := []string{k.Topic, strconv.Itoa(int(k.Partition))}
	m.metrics.bytesIn.DeleteLabelValues(lv...)
	m.metrics.recordsIn.DeleteLabelValues(lv...)
	m.metrics.bytesOut.DeleteLabelValues(lv...)
	m.metrics.recordsOut.DeleteLabelValues(lv...)
	graveyard := filepath.Join(m.dir, fmt.Sprintf(".removed-%s-%d-%d", k.Topic, k.Partition, time.Now().UnixNano()))
	if err := os.Rename(m.partitionDir(k), graveyard); err != nil {
		return true, fmt.Errorf("remove replica %s: %w", k, err)
	}
	_ = syncDir(m.dir)
	_ = os.Remove(filepath.Join(m.dir, k.Topic)) // only succeeds when no partition is left
	if err := os.RemoveAll(graveyard); err != nil {
		return true, fmt.Errorf("remove replica %s: %w", k, err)
	}
	m.logger.Info("replica removed", "topic", k.Topic, "partition", k.Partition)
	return true, nil
}

// Close closes every log. The Manager cannot be used afterwards.
func (m *Manager) Close() error {
	m.ensureMu.Lock()
	defer m.ensureMu.Unlock()
	m.mu.Lock()
	m.closed = true
	rs := m.replicas
	m.replicas = map[Key]*Replica{}
	m.mu.Unlock()
	var errs []error
	for _, r := range rs {
		m.stopTiering(r)
		errs = append(errs, r.Log.Close())
	}
	return errors.Join(errs...)
}

func (m *Manager) sweepRemoved() {
	left, _ := filepath.Glob(filepath.Join(m.dir, ".removed-*"))
	for _, p := range left {
		if err := os.RemoveAll(p); err != nil {
			m.logger.Warn("delete removed replica", "path", p, "err", err)
		}
	}
}

func readSpec(path string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", path, err)
	}
	if err := names.Topic(s.Topic); err != nil {
		return s, err
	}
	return s, nil
}

func writeSpec(path string, s Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write replica spec: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write replica spec: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write replica spec: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write replica spec: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write replica spec: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) {
		return err
	}
	return nil
}
