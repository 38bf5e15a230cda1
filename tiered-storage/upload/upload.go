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
	// from: base for the whole segment, or a later offset of the segment
	// for its tail from the batch that holds from (whose base offset may be
	// below from: SegmentData.Base says where the tail begins). It fails
	// with an error wrapping ErrSegmentGone when the segment is no longer
	// in the log.
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
	// DefaultShadowGrace is long enough for every reader to have listed
	// again (remote.DefaultIndexTTL is 30 s) and to finish a read begun
	// with the older listing.
	DefaultShadowGrace      = 5 * time.Minute
	DefaultFullListInterval = 10 * time.Minute
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
	// told that a segment closed: remote retention runs, shadowed objects
	// are deleted, and a follower that holds closed segments not known to
	// be uploaded lists what the leader uploaded since its last listing (a
	// follower that finds nothing new waits twice as long the next time,
	// up to 8 PollIntervals). Default DefaultPollInterval.
	PollInterval time.Duration
	// ShadowGrace is how long an object that the remote index no longer
	// uses (layout.Index.Shadowed: its offsets are all in other objects,
	// of a higher epoch or longer) is kept before the leader deletes it,
	// so that readers holding an older listing can finish with it.
	// Default DefaultShadowGrace.
	ShadowGrace time.Duration
	// FullListInterval is how often a partition lists its whole prefix
	// again (besides at start and when its replica becomes the leader), to
	// see what other SPUs wrote or deleted: a former leader's late uploads
	// (leader), remote retention's deletions (follower). Default
	// DefaultFullListInterval.
	FullListInterval time.Duration
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
	if c.Concurrency < 0 || c.BytesPerSecond < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.PollInterval < 0 || c.ShadowGrace < 0 || c.FullListInterval < 0 {
		errs = append(errs, errors.New("concurrency, bytes per second, backoffs, intervals and grace must not be negative"))
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
	if c.ShadowGrace == 0 {
		c.ShadowGrace = DefaultShadowGrace
	}
	if c.FullListInterval == 0 {
		c.FullListInterval = DefaultFullListInterval
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

	mu          sync.Mutex // guards the fields below
	listed      bool
	objects     []layout.Segment // every .log object known, chain or shadowed
	remote      []layout.Segment // the remote index (its chain), oldest first
	shadowed    []layout.Segment // objects the index does not use
	shadowSince map[string]time.Time
	lastErr     error
	errAt       time.Time
	fullListAt  time.Time     // of the last full listing
	nextPoll    time.Time     // a follower's next incremental listing
	pollEvery   time.Duration // a follower's wait between incremental listings
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
	// RemoteSizeBytes and RemoteSegments are the remote .log objects of
	// the remote index.
	RemoteSizeBytes int64
	RemoteSegments  int
	// ShadowedSegments and ShadowedBytes are the .log objects that the
	// remote index does not use (their offsets are in other objects),
	// which the leader deletes after Config.ShadowGrace.
	ShadowedSegments int
	ShadowedBytes    int64
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
	st.ShadowedSegments = len(u.shadowed)
	for _, s := range u.shadowed {
		st.ShadowedBytes += s.Size
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
		lagBytes, lagSegs := u.lag(u.src.Segments())
		u.metrics.lag.Set(float64(lagBytes))
		u.metrics.lagSegments.Set(float64(lagSegs))
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

func (u *Uploader) fail(err error) {
	u.metrics.failures.Inc()
	u.metrics.failing.Set(1)
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
	u.metrics.failing.Set(0)
	u.mu.Lock()
	was := u.lastErr
	u.lastErr = nil
	u.mu.Unlock()
	if was != nil {
		u.logger.Info("tiered storage: uploads resumed", "was", was)
	}
}

// round does what is due: list the remote index if needed, upload the
// closed segments past the watermark (leader), apply remote retention and
// delete shadowed objects (leader).
func (u *Uploader) round(ctx context.Context) error {
	leader := u.leader.Load()
	u.mu.Lock()
	listed, fullAt, nextPoll := u.listed, u.fullListAt, u.nextPoll
	u.mu.Unlock()
	now := u.m.cfg.Now()
	switch {
	case !listed || u.relist.Swap(false) || now.Sub(fullAt) >= u.m.cfg.FullListInterval:
		if err := u.list(ctx, leader); err != nil {
			u.relist.Store(true)
			return err
		}
	case !leader && !now.Before(nextPoll):
		if err := u.poll(ctx); err != nil {
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
	if err := u.enforceRetention(ctx); err != nil {
		return err
	}
	return u.deleteShadowed(ctx)
}

// setObjects makes objs the known .log objects and recomputes the remote
// index from them; it returns the index. The caller holds u.mu.
func (u *Uploader) setObjects(objs []layout.Segment) layout.Index {
	idx := layout.NewIndex(objs)
	u.objects = objs
	u.remote = idx.Segments
	u.shadowed = idx.Shadowed
	u.metrics.remoteSize.Set(float64(idx.Size()))
	var shadowed int64
	for _, s := range idx.Shadowed {
		shadowed += s.Size
	}
	u.metrics.shadowedSize.Set(float64(shadowed))
	return idx
}

// addObjects adds objs to the known .log objects (an object already known
// under the same key is replaced) and recomputes the remote index; it
// returns the index. The caller holds u.mu.
func (u *Uploader) addObjects(objs ...layout.Segment) layout.Index {
	if len(objs) == 1 && len(u.shadowed) == 0 && (len(u.remote) == 0 || objs[0].Base > u.remote[len(u.remote)-1].Last) {
		// The usual upload, past every known object: the index grows by it.
		u.objects = append(u.objects, objs[0])
		u.remote = append(u.remote[:len(u.remote):len(u.remote)], objs[0])
		x := layout.Index{Segments: u.remote}
		u.metrics.remoteSize.Set(float64(x.Size()))
		return x
	}
	all := make([]layout.Segment, 0, len(u.objects)+len(objs))
	keys := make(map[string]bool, len(objs))
	for _, o := range objs {
		keys[o.Key(layout.LogSuffix)] = true
	}
	for _, o := range u.objects {
		if !keys[o.Key(layout.LogSuffix)] {
			all = append(all, o)
		}
	}
	return u.setObjects(append(all, objs...))
}

// removeObjects drops the objects of keys (.log keys) from the known ones
// and recomputes the remote index. The caller holds u.mu.
func (u *Uploader) removeObjects(keys map[string]bool) {
	kept := make([]layout.Segment, 0, len(u.objects))
	for _, o := range u.objects {
		if !keys[o.Key(layout.LogSuffix)] {
			kept = append(kept, o)
		}
	}
	u.setObjects(kept)
}

// listing is what one listing of (part of) the prefix found.
type listing struct {
	logs   []layout.Segment
	stems  map[string]bool // stems that have a .log
	others []orphan        // index objects
}

type orphan struct {
	key  string
	last int64
}

// listFrom lists the partition's objects after startAfter.
func (u *Uploader) listFrom(ctx context.Context, startAfter string) (listing, error) {
	u.metrics.lists.Inc()
	objs, err := u.m.cfg.Store.List(ctx, u.prefix, startAfter, 0)
	if err != nil {
		return listing{}, fmt.Errorf("list the remote index of %s/%d: %w", u.topic, u.part, err)
	}
	l := listing{stems: map[string]bool{}}
	for _, o := range objs {
		s, suffix, ok := layout.Parse(o.Key)
		if !ok || s.Topic != u.topic || s.Partition != u.part {
			continue
		}
		stem := strings.TrimSuffix(o.Key, suffix)
		if suffix == layout.LogSuffix {
			s.Size = o.Size
			l.logs = append(l.logs, s)
			l.stems[stem] = true
			continue
		}
		l.others = append(l.others, orphan{key: o.Key, last: s.Last})
	}
	return l, nil
}

// list reads the partition's whole remote index from the store and sets
// the watermark to its end (never lowering it). A leader deletes the index
// objects left without their .log below the watermark (uploads or
// deletions cut short).
func (u *Uploader) list(ctx context.Context, leader bool) error {
	l, err := u.listFrom(ctx, "")
	if err != nil {
		return err
	}
	now := u.m.cfg.Now()
	u.mu.Lock()
	idx := u.setObjects(l.logs)
	u.listed = true
	u.fullListAt = now
	u.pollEvery = u.m.cfg.PollInterval
	u.nextPoll = now.Add(u.pollEvery)
	u.mu.Unlock()
	if end := idx.End(); end > u.watermark.Load() {
		u.watermark.Store(end)
	}
	if !leader {
		return nil
	}
	var stale []string
	wm := u.watermark.Load()
	for _, o := range l.others {
		_, suffix, _ := layout.Parse(o.key)
		if !l.stems[strings.TrimSuffix(o.key, suffix)] && o.last < wm {
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

// poll is a follower's cheap listing: only when some closed local segment
// is not known to be uploaded (nothing else depends on it: the watermark is
// the follower's deletion gate), and only the keys from the newest known
// segment's base offset on, since the leader's uploads sort after it. It
// backs off while it finds nothing new. The full listing every
// FullListInterval sees the rest (deletions, uploads that began lower).
func (u *Uploader) poll(ctx context.Context) error {
	_, pending := u.lag(u.src.Segments())
	now := u.m.cfg.Now()
	if pending == 0 {
		u.mu.Lock()
		u.nextPoll = now.Add(u.m.cfg.PollInterval)
		u.mu.Unlock()
		return nil
	}
	u.mu.Lock()
	after := ""
	if n := len(u.objects); n > 0 {
		newest := u.objects[0].Base
		for _, o := range u.objects[1:] {
			newest = max(newest, o.Base)
		}
		after = fmt.Sprintf("%s%020d", u.prefix, newest)
	}
	u.mu.Unlock()
	l, err := u.listFrom(ctx, after)
	if err != nil {
		return err
	}
	wm := u.watermark.Load()
	u.mu.Lock()
	idx := u.addObjects(l.logs...)
	if idx.End() > wm {
		u.pollEvery = u.m.cfg.PollInterval
	} else {
		u.pollEvery = min(2*u.pollEvery, 8*u.m.cfg.PollInterval)
	}
	u.nextPoll = now.Add(u.pollEvery)
	u.mu.Unlock()
	if end := idx.End(); end > wm {
		u.watermark.Store(end)
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
		// The tail could not be opened (a damaged segment?): upload the
		// whole segment; the remote index resolves the overlap.
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
	u.addObjects(seg)
	u.mu.Unlock()
	u.watermark.Store(max(u.watermark.Load(), seg.Last+1))
	n := d.Size + int64(len(d.Index)+len(d.TimeIndex))
	u.metrics.bytes.Add(float64(n))
	u.metrics.segments.Inc()
	if seg.Base < from {
		u.logger.Info("tiered storage: uploaded a tail from the batch straddling the remote end", "segment", seg.Base, "last", seg.Last,
			"remote_end", from, "epoch", seg.Epoch)
	}
	u.logger.Debug("tiered storage: uploaded segment", "segment", seg.Base, "last", seg.Last, "epoch", seg.Epoch,
		"bytes", n, "seconds", time.Since(start).Seconds())
	return nil
}

// enforceRetention deletes the remote segments past the policy, oldest
// first: the .log objects first, so a segment stops counting as remote
// before its indexes go. Shadowed objects that begin at or below the last
// offset deleted go with them (without a grace period, like the segments
// they shadow): what they hold above it is in the rest of the index.
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
	segments := len(victims)
	if segments > 0 {
		cut := victims[len(victims)-1].Last
		for _, s := range u.shadowed {
			if s.Base <= cut {
				victims = append(victims, s)
			}
		}
	}
	u.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	err := u.deleteSegments(ctx, victims, func() { u.metrics.deletes.Add(float64(segments)) })
	if err != nil {
		return fmt.Errorf("remote retention of %s/%d: %w", u.topic, u.part, err)
	}
	u.logger.Info("tiered storage: remote retention deleted segments", "segments", segments, "shadowed", len(victims)-segments,
		"first", victims[0].Base, "last", victims[segments-1].Last)
	return nil
}

// deleteShadowed deletes the objects that the remote index has not used
// for Config.ShadowGrace (as this Uploader has seen it).
func (u *Uploader) deleteShadowed(ctx context.Context) error {
	now := u.m.cfg.Now()
	grace := u.m.cfg.ShadowGrace
	u.mu.Lock()
	since := make(map[string]time.Time, len(u.shadowed))
	var victims []layout.Segment
	for _, s := range u.shadowed {
		k := s.Key(layout.LogSuffix)
		t, ok := u.shadowSince[k]
		if !ok {
			t = now
		}
		since[k] = t
		if now.Sub(t) >= grace {
			victims = append(victims, s)
		}
	}
	u.shadowSince = since
	u.mu.Unlock()
	if len(victims) == 0 {
		return nil
	}
	err := u.deleteSegments(ctx, victims, func() { u.metrics.shadowDeletes.Add(float64(len(victims))) })
	if err != nil {
		return fmt.Errorf("delete shadowed objects of %s/%d: %w", u.topic, u.part, err)
	}
	u.logger.Info("tiered storage: deleted objects whose offsets other objects hold", "segments", len(victims),
		"first", victims[0].Base, "grace", grace)
	return nil
}

// deleteSegments deletes the objects of segs: their .log objects, then
// (after calling deleted, and taking the segments out of the known
// objects) their indexes.
func (u *Uploader) deleteSegments(ctx context.Context, segs []layout.Segment, deleted func()) error {
	logs := make([]string, 0, len(segs))
	idx := make([]string, 0, 2*len(segs))
	gone := make(map[string]bool, len(segs))
	for _, s := range segs {
		k := s.Key(layout.LogSuffix)
		logs = append(logs, k)
		gone[k] = true
		idx = append(idx, s.Key(layout.IndexSuffix), s.Key(layout.TimeIndexSuffix))
	}
	if err := u.m.cfg.Store.Delete(ctx, logs...); err != nil {
		return err
	}
	deleted()
	u.mu.Lock()
	u.removeObjects(gone)
	u.mu.Unlock()
	if err := u.m.cfg.Store.Delete(ctx, idx...); err != nil {
		// Left without their .log, they are deleted at the next listing.
		return fmt.Errorf("delete indexes: %w", err)
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
	bytes, segments, failures, deletes, shadowDeletes, lists *prometheus.CounterVec
	lag, lagSegments, failing, remoteSize, shadowedSize      *prometheus.GaugeVec
}

type partitionMetrics struct {
	bytes, segments, failures, deletes, shadowDeletes, lists prometheus.Counter
	lag, lagSegments, failing, remoteSize, shadowedSize      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	labels := []string{"topic", "partition"}
	m := &metrics{
		bytes:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_uploaded_bytes_total", Help: "Bytes uploaded to the object store (segments and their indexes), per partition."}, labels),
		segments:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_uploaded_segments_total", Help: "Segments uploaded to the object store, per partition."}, labels),
		failures:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_upload_failures_total", Help: "Failed rounds of uploads, listings or remote deletions (each is retried), per partition."}, labels),
		deletes:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_remote_deleted_segments_total", Help: "Remote segments deleted by retention, per partition."}, labels),
		shadowDeletes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_shadowed_deleted_segments_total", Help: "Remote segments deleted because other objects hold all their offsets (after a leader change), per partition."}, labels),
		lists:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spate_tier_uploader_lists_total", Help: "Listings of the object store by the uploaders, per partition."}, labels),
		lag:           prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_upload_lag_bytes", Help: "Bytes of closed segments not known to be uploaded, per partition: on a leader, what it has yet to upload; on a follower, what its local retention waits for."}, labels),
		lagSegments:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_upload_lag_segments", Help: "Closed segments not known to be uploaded, per partition."}, labels),
		failing:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_upload_failing", Help: "1 while the partition's uploads, listings or remote deletions fail (they are retried; segments stay on local disk), else 0."}, labels),
		remoteSize:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_remote_size_bytes", Help: "Bytes of the segments in the object store, per partition."}, labels),
		shadowedSize:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "spate_tier_shadowed_size_bytes", Help: "Bytes of remote segments that other objects shadow, awaiting deletion, per partition."}, labels),
	}
	if reg != nil {
		reg.MustRegister(m.bytes, m.segments, m.failures, m.deletes, m.shadowDeletes, m.lists, m.lag, m.lagSegments, m.failing, m.remoteSize, m.shadowedSize)
	}
	return m
}

func (m *metrics) partition(topic string, partition int32) partitionMetrics {
	lv := []string{topic, strconv.Itoa(int(partition))}
	return partitionMetrics{
		bytes:         m.bytes.WithLabelValues(lv...),
		segments:      m.segments.WithLabelValues(lv...),
		failures:      m.failures.WithLabelValues(lv...),
		deletes:       m.deletes.WithLabelValues(lv...),
		shadowDeletes: m.shadowDeletes.WithLabelValues(lv...),
		lists:         m.lists.WithLabelValues(lv...),
		lag:           m.lag.WithLabelValues(lv...),
		lagSegments:   m.lagSegments.WithLabelValues(lv...),
		failing:       m.failing.WithLabelValues(lv...),
		remoteSize:    m.remoteSize.WithLabelValues(lv...),
		shadowedSize:  m.shadowedSize.WithLabelValues(lv...),
	}
}

func (m *metrics) forget(topic string, partition int32) {
	lv := []string{topic, strconv.Itoa(int(partition))}
	m.bytes.DeleteLabelValues(lv...)
	m.segments.DeleteLabelValues(lv...)
	m.failures.DeleteLabelValues(lv...)
	m.deletes.DeleteLabelValues(lv...)
	m.shadowDeletes.DeleteLabelValues(lv...)
	m.lists.DeleteLabelValues(lv...)
	m.lag.DeleteLabelValues(lv...)
	m.lagSegments.DeleteLabelValues(lv...)
	m.failing.DeleteLabelValues(lv...)
	m.remoteSize.DeleteLabelValues(lv...)
	m.shadowedSize.DeleteLabelValues(lv...)
}
