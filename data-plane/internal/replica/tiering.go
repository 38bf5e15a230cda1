package replica

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/upload"
)

// Option configures a Manager.
type Option func(*Manager)

// WithTiering gives the Manager the uploaders of tiered storage: the closed
// segments of every replica whose settings turn tiering on are uploaded by
// tier (by the partition's leader), and local retention deletes only what is
// uploaded. The Manager stops a replica's uploader before it closes the
// replica's log; the caller closes tier after the Manager.
//
// Without it, replicas whose settings turn tiering on keep their local
// retention as if tiering were off, and report ErrNoObjectStore.
func WithTiering(tier *upload.Manager) Option {
	return func(m *Manager) { m.tier = tier }
}

// ErrNoObjectStore is the tiering error of a replica with tiering on, on an
// SPU started without an object store.
var ErrNoObjectStore = errors.New("replica: tiering is on, but the SPU has no object store (start it with --tier-dir or --tier-s3-bucket)")

// logConfig returns the log configuration of spec: its settings over the
// defaults, without tiering when the SPU has no object store.
func (m *Manager) logConfig(spec Spec) (commitlog.Config, error) {
	cfg, err := spec.Settings.Apply(m.defaults)
	if err != nil {
		return cfg, err
	}
	if m.tier == nil {
		cfg.Tiering = false
	}
	return cfg, nil
}

// syncTiering starts, updates or stops the uploader of r to match cfg.
func (m *Manager) syncTiering(r *Replica, cfg commitlog.Config) {
	if m.tier == nil {
		return
	}
	if !cfg.Tiering {
		if r.uploader.Swap(nil) != nil {
			m.tier.Remove(r.Topic, r.Partition)
			r.Log.SetDeletionGate(nil)
		}
		return
	}
	r.mu.Lock()
	leader := !r.follower
	r.mu.Unlock()
	u, err := m.tier.Add(r.Topic, r.Partition, logSource{r.Log}, upload.Policy{RetentionTime: cfg.RetentionTime, RetentionBytes: cfg.RetentionBytes}, leader)
	if err != nil {
		m.logger.Warn("start the uploader of a replica", "topic", r.Topic, "partition", r.Partition, "err", err)
		return
	}
	r.uploader.Store(u)
	r.Log.SetDeletionGate(u.Uploaded)
}

// stopTiering stops the uploader of r, before its log is closed.
func (m *Manager) stopTiering(r *Replica) {
	if r.uploader.Swap(nil) != nil {
		m.tier.Remove(r.Topic, r.Partition)
	}
}

// TierReport is what a replica reports of its remote tier.
type TierReport struct {
	// Tiering reports whether the replica's settings turn tiering on.
	Tiering bool
	// RemoteStartOffset is the first offset in the object store, and
	// RemoteEndOffset one past the last; -1 when none is (or the remote
	// index was not read yet).
	RemoteStartOffset, RemoteEndOffset int64
	// RemoteSizeBytes is the bytes of the replica's segments in the
	// object store.
	RemoteSizeBytes int64
	// UploadLagBytes is the bytes of closed segments not yet uploaded.
	UploadLagBytes int64
	// UploadLagSegments is the number of those segments.
	UploadLagSegments int
	// RetentionHeldBytes is the bytes of closed segments that local
	// retention would delete but keeps until they are uploaded.
	RetentionHeldBytes int64
	// DiskFreeBytes is the space left on the file system of the replica's
	// log, -1 when unknown.
	DiskFreeBytes int64
	// Error says what is wrong, for an operator: uploads failing, local
	// retention holding segments, the local disk running short or full.
	// It names no path, bucket or endpoint (those are in the SPU's log).
	// Empty when all is well.
	Error string
}

// The local disk is running short, for TierReport, when less than
// LowDiskFreeBytes or LowDiskFreePercent of its file system is free.
const (
	LowDiskFreeBytes   = 1 << 30
	LowDiskFreePercent = 5
)

// TierReport returns the state of the replica's remote tier.
func (r *Replica) TierReport() TierReport {
	rep := TierReport{Tiering: r.Spec().Settings.Tiering, RemoteStartOffset: -1, RemoteEndOffset: -1, DiskFreeBytes: -1}
	if !rep.Tiering {
		return rep
	}
	u := r.uploader.Load()
	if u == nil {
		rep.Error = ErrNoObjectStore.Error()
		return rep
	}
	st := u.Status()
	rep.RemoteStartOffset = st.RemoteStartOffset
	rep.RemoteEndOffset = st.RemoteEndOffset
	rep.RemoteSizeBytes = st.RemoteSizeBytes
	rep.UploadLagBytes = st.UploadLagBytes
	rep.UploadLagSegments = st.UploadLagSegments
	info := r.Log.Info()
	rep.RetentionHeldBytes = info.RetentionHeldBytes
	free, size, ok := diskSpace(r.Log.Dir())
	if ok {
		rep.DiskFreeBytes = free
	}
	var msgs []string
	if st.Err != nil {
		msgs = append(msgs, fmt.Sprintf("uploads failing since %s: %s", st.ErrAt.UTC().Format("2006-01-02T15:04:05Z"), describeStoreError(st.Err)))
	}
	if info.RetentionHeldSegments > 0 {
		msgs = append(msgs, fmt.Sprintf("local retention is holding %d segments (%d bytes) until they are uploaded", info.RetentionHeldSegments, info.RetentionHeldBytes))
	}
	switch {
	case info.DiskFull:
		msgs = append(msgs, "the local disk is full: produce fails until segments are uploaded and deleted, or space is freed")
	case ok && lowDisk(free, size):
		msgs = append(msgs, fmt.Sprintf("the local disk is running short: %d bytes free of %d (%d closed segments, %d bytes, not uploaded yet)",
			free, size, st.UploadLagSegments, st.UploadLagBytes))
	}
	for i, msg := range msgs {
		if i > 0 {
			rep.Error += "; "
		}
		rep.Error += msg
	}
	return rep
}

// diskSpace returns the bytes free and the size of the file system that
// holds a path (tests replace it).
var diskSpace = statfsSpace

// lowDisk reports whether free bytes of a file system of size bytes is
// running short.
func lowDisk(free, size int64) bool {
	return free < LowDiskFreeBytes || free < size/100*LowDiskFreePercent
}

// describeStoreError says what kind of failure err is, without the details
// (bucket, endpoint, paths) that stay in the SPU's log.
func describeStoreError(err error) string {
	switch {
	case errors.Is(err, objstore.ErrUnavailable):
		return "the object store is unavailable"
	case errors.Is(err, objstore.ErrPermission):
		return "the object store refused the SPU's credentials"
	case errors.Is(err, objstore.ErrNotFound):
		return "the object store's bucket or folder is missing"
	default:
		return "the object store failed (see the SPU's log)"
	}
}

// logSource is a commit log as an upload.Source.
type logSource struct{ l *commitlog.Log }

var _ upload.Source = logSource{}

func (s logSource) Segments() []upload.Segment {
	cs := s.l.ClosedSegments()
	out := make([]upload.Segment, len(cs))
	for i, c := range cs {
		out[i] = upload.Segment{Base: c.Base, Last: c.Last, Epoch: c.Epoch, MaxTimestamp: c.MaxTimestamp, Size: c.Size}
	}
	return out
}

func (s logSource) Open(base, from int64) (*upload.SegmentData, error) {
	if from > base {
		from = s.batchBase(base, from)
	}
	d, err := s.l.OpenClosedSegment(base, from)
	if errors.Is(err, commitlog.ErrSegmentNotFound) || errors.Is(err, commitlog.ErrClosed) {
		return nil, fmt.Errorf("%w: %w", upload.ErrSegmentGone, err)
	}
	if err != nil {
		return nil, err
	}
	return &upload.SegmentData{
		Segment:   upload.Segment{Base: d.Base, Last: d.Last, Epoch: d.Epoch, MaxTimestamp: d.MaxTimestamp, Size: d.Size},
		Log:       d.Log,
		Index:     d.Index,
		TimeIndex: d.TimeIndex,
		Closer:    d,
	}, nil
}

// batchBase returns the base offset of the batch that holds offset, in the
// segment of base offset base: offset itself when it begins a batch, or
// when the batch cannot be read (OpenClosedSegment then says why).
func (s logSource) batchBase(base, offset int64) int64 {
	b, err := s.l.Read(offset, 1, nil)
	if err != nil || len(b) < batch.HeaderSize {
		return offset
	}
	h, err := batch.ParseHeader(b)
	if err != nil || h.BaseOffset > offset || h.BaseOffset < base || h.LastOffset() < offset {
		return offset
	}
	return h.BaseOffset
}

func (s logSource) Rolled() <-chan struct{} { return s.l.Rolled() }

// storageCollector exports, per replica, what local retention holds for
// upload and whether the disk is full.
type storageCollector struct {
	m                            *Manager
	held, full, diskFree, diskSz *prometheus.Desc
}

func newStorageCollector(m *Manager) *storageCollector {
	labels := []string{"topic", "partition"}
	return &storageCollector{
		m:        m,
		held:     prometheus.NewDesc("spate_spu_retention_held_bytes", "Bytes of closed segments that local retention keeps because they are not uploaded yet (tiering), per partition.", labels, nil),
		full:     prometheus.NewDesc("spate_spu_disk_full", "1 when the last append to the partition failed for lack of disk space.", labels, nil),
		diskFree: prometheus.NewDesc("spate_spu_disk_free_bytes", "Bytes free on the file system of the SPU's data folder (for unprivileged users).", nil, nil),
		diskSz:   prometheus.NewDesc("spate_spu_disk_size_bytes", "Size of the file system of the SPU's data folder.", nil, nil),
	}
}

func (c *storageCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.held
	ch <- c.full
	ch <- c.diskFree
	ch <- c.diskSz
}

func (c *storageCollector) Collect(ch chan<- prometheus.Metric) {
	if free, size, ok := diskSpace(c.m.dir); ok {
		ch <- prometheus.MustNewConstMetric(c.diskFree, prometheus.GaugeValue, float64(free))
		ch <- prometheus.MustNewConstMetric(c.diskSz, prometheus.GaugeValue, float64(size))
	}
	for _, r := range c.m.List("") {
		info := r.Log.Info()
		p := strconv.Itoa(int(r.Partition))
		ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, float64(info.RetentionHeldBytes), r.Topic, p)
		full := 0.0
		if info.DiskFull {
			full = 1
		}
		ch <- prometheus.MustNewConstMetric(c.full, prometheus.GaugeValue, full, r.Topic, p)
	}
}
