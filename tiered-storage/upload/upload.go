package upload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/spatehq/spate/tiered-storage/layout"
	"github.com/spatehq/spate/tiered-storage/objstore"
)

// ErrSegmentGone is what a Source's Open wraps when the segment is no longer
// a closed segment of the log (retention or a reset deleted it): the
// Uploader lists the segments again.
var ErrSegmentGone = errors.New("upload: segment gone")

// ErrClosed means the Manager was closed.
var ErrClosed = errors.New("upload: closed")

// Segment is a closed segment of a partition's local log.
type Segment struct {
	// Base and Last are its first and last offsets (Last < Base: empty).
	Base, Last int64
	// Epoch is the leader epoch of its last batch (-1: unknown).
	Epoch int32
	// MaxTimestamp is its newest record's timestamp, Unix ms.
	MaxTimestamp int64
	// Size is the bytes of its log.
	Size int64
}

// SegmentData is a closed segment, or its tail from an offset, opened for
// upload.
type SegmentData struct {
	// Segment describes what Log holds (for a tail: from its first offset).
	Segment
	// Log yields the Size bytes of the segment's batches.
	Log *io.SectionReader
	// Index and TimeIndex are the segment's offset and time indexes.
	Index, TimeIndex []byte
	// Closer releases what Open holds (the open file).
	Closer io.Closer
}

// Source is one partition's local log, as the Uploader reads it. Its methods
// are safe for concurrent use.
type Source interface {
	// Segments returns the closed segments, in offset order.
	Segments() []Segment
	// Open opens the closed segment whose base offset is base, from offset
	// from (base, or the base offset of a later batch of the segment). It
	// fails with an error wrapping ErrSegmentGone when the segment is no
	// longer in the log.
	Open(base, from int64) (*SegmentData, error)
	// Rolled returns a channel closed when a segment next closes.
	Rolled() <-chan struct{}
}

// Policy is the whole log's retention, applied to the remote tier.
type Policy struct {
	// RetentionTime deletes remote segments whose newest record is older;
	// zero keeps them forever.
	RetentionTime time.Duration
	// RetentionBytes deletes the oldest remote segments while the remote
	// size is larger; zero means no limit.
	RetentionBytes int64
}

// Defaults of Config.
const (
	DefaultConcurrency  = 2
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = time.Minute
	DefaultPollInterval = 30 * time.Second
)

// Config configures a Manager.
type Config struct {
	// Store receives the objects, under keys of package layout. Required.
	// It holds one cluster's objects (its prefix or folder is the
	// cluster's).
	Store objstore.Store
	// Concurrency is how many segments go up at once over all partitions.
	// Default DefaultConcurrency.
	Concurrency int
	// BytesPerSecond, when positive, limits the bytes read for uploads,
	// over all partitions together. (An S3 store can limit its own
	// bandwidth instead: objstore/s3's Config.UploadBytesPerSecond.)
	BytesPerSecond int64
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// upload, listing or deletion. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval is how often a partition looks for work without being
	// told that a segment closed: remote retention runs, followers list
	// the remote index. Default DefaultPollInterval.
	PollInterval time.Duration
	// Registerer, when set, receives the metrics.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the time retention compares with; default time.Now.
	Now func() time.Time
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("an object store is required"))
	}
	if c.Concurrency < 0 || c.BytesPerSecond < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.PollInterval < 0 {
		errs = append(errs, errors.New("concurrency, bytes per second, backoffs and poll interval must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("upload: invalid config: %w", err)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Manager runs the Uploaders of the partitions of one SPU. It is safe for
// concurrent use.
type Manager struct {
	cfg     Config
	sem     chan struct{} // a slot per segment going up
	limiter *rate.Limiter // nil without a bandwidth limit
	metrics *metrics
	ctx     context.Context
	cancel  context.CancelFunc

	mu        sync.Mutex // guards uploaders and closed
	uploaders map[partKey]*Uploader
	closed    bool
}

type partKey struct {
	topic     string
	partition int32
}

// New returns a Manager; it starts nothing until Add.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg:       cfg,
		sem:       make(chan struct{}, cfg.Concurrency),
		metrics:   newMetrics(cfg.Registerer),
		ctx:       ctx,
		cancel:    cancel,
		uploaders: map[partKey]*Uploader{},
	}
	if cfg.BytesPerSecond > 0 {
		m.limiter = rate.NewLimiter(rate.Limit(cfg.BytesPerSecond), limiterBurst(cfg.BytesPerSecond))
	}
	return m, nil
}

// Store returns the object store the Manager uploads to.
func (m *Manager) Store() objstore.Store { return m.cfg.Store }

// Add starts the Uploader of a partition, or updates the policy and role of
// the one running (src is then ignored). leader says whether this SPU leads
// the partition: only a leader uploads.
func (m *Manager) Add(topic string, partition int32, src Source, p Policy, leader bool) (*Uploader, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	k := partKey{topic, partition}
	if u, ok := m.uploaders[k]; ok {
		u.SetPolicy(p)
		u.SetLeader(leader)
		return u, nil
	}
	ctx, cancel := context.WithCancel(m.ctx)
	u := &Uploader{
		m:       m,
		topic:   topic,
		part:    partition,
		prefix:  layout.PartitionPrefix(topic, partition),
		src:     src,
		logger:  m.cfg.Logger.With("topic", topic, "partition", partition),
		metrics: m.metrics.partition(topic, partition),
		wake:    make(chan struct{}, 1),
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	u.watermark.Store(-1)
	u.leader.Store(leader)
	u.policy.Store(&p)
	m.uploaders[k] = u
	go u.run(ctx)
	return u, nil
}

// Get returns the Uploader of a partition, or nil.
func (m *Manager) Get(topic string, partition int32) *Uploader {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.uploaders[partKey{topic, partition}]
}

// Remove stops the Uploader of a partition and waits for it; the partition's
// objects stay in the store. It does nothing for a partition without one.
func (m *Manager) Remove(topic string, partition int32) {
	m.mu.Lock()
	k := partKey{topic, partition}
	u := m.uploaders[k]
	delete(m.uploaders, k)
	m.mu.Unlock()
	if u == nil {
		return
	}
	u.stop()
	m.metrics.forget(topic, partition)
}

// Close stops every Uploader and waits for them. Uploads in progress are
// cancelled; they are done again after a restart.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	us := m.uploaders
	m.uploaders = map[partKey]*Uploader{}
	m.mu.Unlock()
	m.cancel()
	for _, u := range us {
		u.stop()
	}
}

// Uploader uploads the closed segments of one partition; a Manager runs it.
// Its methods are safe for concurrent use.
type Uploader struct {
	m       *Manager
	topic   string
	part    int32
	prefix  string
	src     Source
	logger  *slog.Logger
	metrics partitionMetrics
	wake    chan struct{} // capacity 1: a role or policy change
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns

	// watermark is one past the last offset known to be remote, -1 until
	// the remote index was listed (nothing counts as uploaded before).
	watermark atomic.Int64
	leader    atomic.Bool
	policy    atomic.Pointer[Policy]
	relist    atomic.Bool // list the remote index at the next round

	mu       sync.Mutex // guards the fields below
	listed   bool
	remote   []layout.Segment // the remote index, oldest first
	lastErr  error
	errAt    time.Time
	listedAt time.Time
}

// Status is the state of a partition's remote tier, as its Uploader knows
// it.
type Status struct {
	// Leader reports whether this Uploader uploads (its replica leads).
	Leader bool
	// Listed reports whether the remote index was read since the start;
	// before, the other fields say nothing about the store.
	Listed bool
	// RemoteStartOffset and RemoteEndOffset are the first offset held
	// remotely and one past the last, -1 when nothing is.
	RemoteStartOffset, RemoteEndOffset int64
	// RemoteSizeBytes and RemoteSegments are the remote .log objects.
	RemoteSizeBytes int64
	RemoteSegments  int
	// UploadLagBytes and UploadLagSegments are the closed local segments
	// not uploaded yet.
	UploadLagBytes    int64
	UploadLagSegments int
	// Err is the last failure (upload, listing or deletion), nil once an
	// attempt succeeded again; ErrAt is when it happened.
	Err   error
	ErrAt time.Time
}

// Uploaded reports whether the offsets base to last are all remote (or past
// the remote retention): it is the deletion gate of the partition's local
// retention. It does not block and calls nothing.
func (u *Uploader) Uploaded(base, last int64) bool {
	return last < u.watermark.Load()
}

// SetLeader sets whether this SPU leads the partition. A new leader lists
// the remote index again before it uploads, since the previous leader may
// have uploaded more.
func (u *Uploader) SetLeader(leader bool) {
	if u.leader.Swap(leader) != leader {
		if leader {
			u.relist.Store(true)
		}
		u.kick()
	}
}

// SetPolicy sets the remote retention.
func (u *Uploader) SetPolicy(p Policy) {
	if old := u.policy.Swap(&p); *old != p {
		u.kick()
	}
}

func (u *Uploader) kick() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

func (u *Uploader) stop() {
	u.cancel()
	<-u.done
}

// Status returns the partition's remote state and upload lag.
func (u *Uploader) Status() Status {
	u.mu.Lock()
	st := Status{
		Leader:            u.leader.Load(),
		Listed:            u.listed,
		RemoteStartOffset: -1,
		RemoteEndOffset:   -1,
		RemoteSegments:    len(u.remote),
		Err:               u.lastErr,
		ErrAt:             u.errAt,
	}
	if len(u.remote) > 0 {
		st.RemoteStartOffset = u.remote[0].Base
		st.RemoteEndOffset = u.remote[len(u.remote)-1].Last + 1
	}
	for _, s := range u.remote {
		st.RemoteSizeBytes += s.Size
	}
	u.mu.Unlock()
	st.UploadLagBytes, st.UploadLagSegments = u.lag(u.src.Segments())
	return st
}

// lag returns the bytes and number of the closed segments not uploaded.
func (u *Uploader) lag(segs []Segment) (int64, int) {
	wm := u.watermark.Load()
	var b int64
	n := 0
	for _, s := range segs {
		if s.Last >= wm && s.Last >= s.Base {
			b += s.Size
			n++
		}
	}
	return b, n
}

// RemoteIndex returns the remote segments, oldest first, as the Uploader
// knows them.
func (u *Uploader) RemoteIndex() []layout.Segment {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]layout.Segment(nil), u.remote...)
}

// run is the partition's loop: a round of work whenever a segment closes,
// the role or policy changes, or PollInterval (or the backoff after a
// failure) passes.
func (u *Uploader) run(ctx context.Context) {
	defer close(u.done)
	cfg := &u.m.cfg
	backoff := time.Duration(0)
	for {
		rolled := u.src.Rolled()
		err := u.round(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := cfg.PollInterval
		if err != nil {
			backoff = min(max(2*backoff, cfg.MinBackoff), cfg.MaxBackoff)
			wait = backoff/2 + rand.N(backoff/2+1) // jitter
			u.fail(err)
		} else {
			backoff = 0
			u.succeed()
		}
		u.metrics.lag.Set(float64(u.lagNow()))
		t := time.NewTimer(wait)
		if err != nil {
			rolled = nil // a closed segment does not cut the backoff short
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-rolled:
		case <-u.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (u *Uploader) lagNow() int64 {
	b, _ := u.lag(u.src.Segments())
	return b
}

func (u *Uploader) fail(err error) {
	u.metrics.failures.Inc()
	u.mu.Lock()
	first := u.lastErr == nil
	u.lastErr, u.errAt = err, u.m.cfg.Now()
	u.mu.Unlock()
	if first {
		u.logger.Warn("tiered storage: upload failing; segments stay on local disk and uploads are retried", "err", err)
	} else {
		u.logger.Debug("tiered storage: still failing", "err", err)
	}
}

func (u *Uploader) succeed() {
	u.mu.Lock()
	was := u.lastErr
	u.lastErr = nil
	u.mu.Unlock()
	if was != nil {
		u.logger.Info("tiered storage: uploads resumed", "was", was)
	}
}

// round does what is due: list the remote index if needed, upload the
// closed segments past the watermark (leader), apply remote retention
// (leader).
func (u *Uploader) round(ctx context.Context) error {
	leader := u.leader.Load()
	u.mu.Lock()
	listed, listedAt := u.listed, u.listedAt
	u.mu.Unlock()
	now := u.m.cfg.Now()
	if !listed || u.relist.Swap(false) || (!leader && now.Sub(listedAt) >= u.m.cfg.PollInterval) {
		if err := u.list(ctx, leader); err != nil {
			u.relist.Store(true)
			return err
		}
	}
	if !leader {
		return nil
	}
	for attempt := 0; ; attempt++ {
		err := u.uploadAll(ctx)
		if errors.Is(err, ErrSegmentGone) && attempt < 3 {
			continue // retention or a reset changed the log: look again
		}
		if err != nil {
			return err
		}
		break
	}
	return u.enforceRetention(ctx)
}

// list reads the partition's remote index from the store and sets the
// watermark to its end (never lowering it). A leader deletes the index
// objects left without their .log below the watermark (uploads or deletions
// cut short).
func (u *Uploader) list(ctx context.Context, leader bool) error {
	objs, err := u.m.cfg.Store.List(ctx, u.prefix, "", 0)
	if err != nil {
		return fmt.Errorf("list the remote index of %s/%d: %w", u.topic, u.part, err)
	}
	var logs []layout.Segment
	stems := map[string]bool{} // stems that have a .log
	type orphan struct {
		key  string
		last int64
	}
	var others []orphan
	for _, o := range objs {
		s, suffix, ok := layout.Parse(o.Key)
		if !ok || s.Topic != u.topic || s.Partition != u.part {
			continue
		}
		stem := strings.TrimSuffix(o.Key, suffix)
		if suffix == layout.LogSuffix {
			s.Size = o.Size
			logs = append(logs, s)
			stems[stem] = true
			continue
		}
		others = append(others, orphan{key: o.Key, last: s.Last})
	}
	idx := layout.NewIndex(logs)
	end := idx.End()
	if cur := u.watermark.Load(); end > cur {
		u.watermark.Store(end)
	}
	u.mu.Lock()
	u.remote = idx.Segments
	u.listed = true
	u.listedAt = u.m.cfg.Now()
	u.mu.Unlock()
	u.metrics.remoteSize.Set(float64(idx.Size()))
	if !leader {
		return nil
	}
	var stale []string
	wm := u.watermark.Load()
	for _, o := range others {
		_, suffix, _ := layout.Parse(o.key)
		if !stems[strings.TrimSuffix(o.key, suffix)] && o.last < wm {
			stale = append(stale, o.key)
		}
	}
	if len(stale) > 0 {
		if err := u.m.cfg.Store.Delete(ctx, stale...); err != nil {
			return fmt.Errorf("delete %d leftover index objects of %s/%d: %w", len(stale), u.topic, u.part, err)
		}
		u.logger.Info("tiered storage: deleted index objects left without their segment", "objects", len(stale))
	}
	return nil
}

// uploadAll uploads, in order, the closed segments past the watermark.
func (u *Uploader) uploadAll(ctx context.Context) error {
	p := *u.policy.Load()
	for _, s := range u.src.Segments() {
		wm := u.watermark.Load()
		if s.Last < wm || s.Last < s.Base {
			continue
		}
		if !u.leader.Load() {
			return nil
		}
		if p.RetentionTime > 0 && s.MaxTimestamp < u.m.cfg.Now().Add(-p.RetentionTime).UnixMilli() {
			// Remote retention would delete it at once.
			u.logger.Debug("tiered storage: not uploading a segment past the retention time", "segment", s.Base)
			u.watermark.Store(s.Last + 1)
			continue
		}
		from := s.Base
		if wm > s.Base {
			from = wm // the remote index already holds its head
		}
		if err := u.upload(ctx, s, from); err != nil {
			return err
		}
	}
	return nil
}

// upload puts one segment (or its tail from offset from): the indexes, then
// the log, and then moves the watermark past it.
func (u *Uploader) upload(ctx context.Context, s Segment, from int64) error {
	select {
	case u.m.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-u.m.sem }()
	d, err := u.src.Open(s.Base, from)
	if err != nil && from != s.Base && !errors.Is(err, ErrSegmentGone) {
		// from is not a batch boundary here (the remote index came from
		// a diverged history): upload the whole segment.
		u.logger.Warn("tiered storage: uploading a whole segment that overlaps the remote index", "segment", s.Base, "remote_end", from, "err", err)
		d, err = u.src.Open(s.Base, s.Base)
	}
	if err != nil {
		return fmt.Errorf("open segment %d of %s/%d: %w", s.Base, u.topic, u.part, err)
	}
	defer d.Closer.Close()
	seg := layout.Segment{
		Topic:        u.topic,
		Partition:    u.part,
		Base:         d.Base,
		Last:         d.Last,
		Epoch:        max(d.Epoch, 0),
		MaxTimestamp: max(d.MaxTimestamp, 0),
		Size:         d.Size,
	}
	start := time.Now()
	st := u.m.cfg.Store
	if err := st.Put(ctx, seg.Key(layout.IndexSuffix), bytes.NewReader(d.Index), int64(len(d.Index))); err != nil {
		return err
	}
	if err := st.Put(ctx, seg.Key(layout.TimeIndexSuffix), bytes.NewReader(d.TimeIndex), int64(len(d.TimeIndex))); err != nil {
		return err
	}
	var body io.Reader = d.Log
	if u.m.limiter != nil {
		body = &limitedReader{ctx: ctx, r: d.Log, lim: u.m.limiter}
	}
	if err := st.Put(ctx, seg.Key(layout.LogSuffix), body, d.Size); err != nil {
		return err
	}
	u.mu.Lock()
	u.remote = append(u.remote, seg)
	var size int64
	for _, r := range u.remote {
		size += r.Size
	}
	u.mu.Unlock()
	u.watermark.Store(seg.Last + 1)
	n := d.Size + int64(len(d.Index)+len(d.TimeIndex))
	u.metrics.bytes.Add(float64(n))
	u.metrics.segments.Inc()
	u.metrics.remoteSize.Set(float64(size))
	u.logger.Debug("tiered storage: uploaded segment", "segment", seg.Base, "last", seg.Last, "epoch", seg.Epoch,
		"bytes", n, "seconds", time.Since(start).Seconds())
	return nil
}

// enforceRetention deletes the remote segments past the policy, oldest
// first: the .log objects first, so a segment stops counting as remote
// before its indexes go.
func (u *Uploader) enforceRetention(ctx context.Context) error {
	p := *u.policy.Load()
	if p.RetentionTime <= 0 && p.RetentionBytes <= 0 {
		return nil
	}
	cutoff := u.m.cfg.Now().Add(-p.RetentionTime).UnixMilli()
	u.mu.Lock()
	var size int64
	for _, s := range u.remote {
		size += s.Size
	}
	var victims []layout.Segment
	for _, s := range u.remote {
		expired := p.RetentionTime > 0 && s.MaxTimestamp < cutoff
		tooLarge := p.RetentionBytes > 0 && size > p.RetentionBytes
		if !expired && !tooLarge {
			break
		}
		victims = append(victims, s)
		size -= s.Size
	}
	u.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	logs := make([]string, 0, len(victims))
	idx := make([]string, 0, 2*len(victims))
	for _, s := range victims {
		logs = append(logs, s.Key(layout.LogSuffix))
		idx = append(idx, s.Key(layout.IndexSuffix), s.Key(layout.TimeIndexSuffix))
	}
	if err := u.m.cfg.Store.Delete(ctx, logs...); err != nil {
		return fmt.Errorf("remote retention of %s/%d: %w", u.topic, u.part, err)
	}
	u.mu.Lock()
	u.remote = u.remote[len(victims):]
	u.mu.Unlock()
	u.metrics.deletes.Add(float64(len(victims)))
	u.metrics.remoteSize.Set(float64(size))
	u.logger.Info("tiered storage: remote retention deleted segments", "segments", len(victims),
		"first", victims[0].Base, "last", victims[len(victims)-1].Last)
	if err := u.m.cfg.Store.Delete(ctx, idx...); err != nil {
		// Left without their .log, they are deleted at the next listing.
		return fmt.Errorf("remote retention of %s/%d: delete indexes: %w", u.topic, u.part, err)
	}
	return nil
}

// limiterBurst is the token bucket's size: an eighth of a second of
// bandwidth, between 32 KiB and 1 MiB.
func limiterBurst(bps int64) int {
	return int(min(max(bps/8, 32<<10), 1<<20))
}

// limitedReader reads r at the limiter's rate. It keeps r's io.ReaderAt and
// io.Seeker, so that a store can still read parts in place.
type limitedReader struct {
	ctx context.Context
	r   *io.SectionReader
	lim *rate.Limiter
}

func (l *limitedReader) wait(n int) error {
	for n > 0 {
		k := min(n, l.lim.Burst())
		if err := l.lim.WaitN(l.ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func (l *limitedReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), l.lim.Burst())]
	n, err := l.r.Read(p)
	if werr := l.wait(n); werr != nil && err == nil {
		err = werr
	}
	return n, err
}

func (l *limitedReader) ReadAt(p []byte, off int64) (int, error) {
	if err := l.wait(len(p)); err != nil {
		return 0, err
	}
	return l.r.ReadAt(p, off)
}

func (l *limitedReader) Seek(off int64, whence int) (int64, error) { return l.r.Seek(off, whence) }

// metrics are the Manager's Prometheus metrics, labelled by partition.
type metrics struct {
	bytes, segments, failures, deletes *prometheus.CounterVec
	lag, remoteSize                    *prometheus.GaugeVec
}

type partitionMetrics struct {
	bytes, segments, failures, deletes prometheus.Counter
	lag, remoteSize                    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"topic", "partition"}
	m := &metrics{
		bytes:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_uploaded_bytes_total", Help: "Bytes uploaded to the object store (segments and their indexes), per partition."}, labels),
		segments:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_uploaded_segments_total", Help: "Segments uploaded to the object store, per partition."}, labels),
		failures:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_upload_failures_total", Help: "Failed rounds of uploads, listings or remote deletions (each is retried), per partition."}, labels),
		deletes:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_remote_deleted_segments_total", Help: "Remote segments deleted by retention, per partition."}, labels),
		lag:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_upload_lag_bytes", Help: "Bytes of closed segments not yet uploaded, per partition (leaders)."}, labels),
		remoteSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_remote_size_bytes", Help: "Bytes of the segments in the object store, per partition."}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.segments, m.failures, m.deletes, m.lag, m.remoteSize)
	}
	return m
}

func (m *metrics) partition(topic string, partition int32) partitionMetrics {
	lv := []string{topic, strconv.Itoa(int(partition))}
	return partitionMetrics{
		bytes:      m.bytes.WithLabelValues(lv...),
		segments:   m.segments.WithLabelValues(lv...),
		failures:   m.failures.WithLabelValues(lv...),
		deletes:    m.deletes.WithLabelValues(lv...),
		lag:        m.lag.WithLabelValues(lv...),
		remoteSize: m.remoteSize.WithLabelValues(lv...),
	}
}

func (m *metrics) forget(topic string, partition int32) {
	lv := []string{topic, strconv.Itoa(int(partition))}
	m.bytes.DeleteLabelValues(lv...)
	m.segments.DeleteLabelValues(lv...)
	m.failures.DeleteLabelValues(lv...)
	m.deletes.DeleteLabelValues(lv...)
	m.lag.DeleteLabelValues(lv...)
	m.remoteSize.DeleteLabelValues(lv...)
}
