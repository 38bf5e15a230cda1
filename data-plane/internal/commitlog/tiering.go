package commitlog

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/spatehq/spate/internal/batch"
)

// unknownEpoch marks a segment whose last batch's leader epoch was not read
// yet (a closed segment loaded at Open without a scan).
const unknownEpoch = math.MinInt64

// ErrSegmentNotFound means OpenClosedSegment was asked for a segment that is
// not, or no longer, a closed segment of the log: retention or Reset
// deleted it, or it is the active segment. The caller lists the closed
// segments again.
var ErrSegmentNotFound = errors.New("commitlog: no such closed segment")

// ClosedSegment describes a closed segment of a Log: it never changes
// again, until retention or Reset deletes it.
type ClosedSegment struct {
	// Base and Last are its first and last offsets; Last is Base-1 for an
	// empty segment.
	Base, Last int64
	// Epoch is the leader epoch of its last batch, -1 when it is empty or
	// the epoch could not be read (the segment is damaged).
	Epoch int32
	// MaxTimestamp is the largest max timestamp of its batches, Unix ms,
	// math.MinInt64 when it is empty.
	MaxTimestamp int64
	// Size is the bytes of its log file.
	Size int64
	// LogPath, IndexPath and TimeIndexPath are its files. They may be gone
	// by the time the caller looks: read a segment with OpenClosedSegment,
	// which holds it.
	LogPath, IndexPath, TimeIndexPath string
}

// DeletionGate says whether local retention may delete the closed segment
// holding offsets base to last. With Config.Tiering, local retention deletes
// a segment only once the gate returns true (the segment is uploaded); with
// no gate set it deletes nothing.
//
// The gate is called with the Log's locks held: it must be quick, must not
// block and must not call the Log.
type DeletionGate func(base, last int64) bool

// heldState is what the last retention run kept because of the gate.
type heldState struct {
	segments int
	bytes    int64
}

// SetDeletionGate sets the gate of local retention under tiering; nil
// removes it (nothing is then deleted while Config.Tiering is on).
func (l *Log) SetDeletionGate(g DeletionGate) {
	if g == nil {
		l.gate.Store(nil)
		return
	}
	l.gate.Store(&g)
	select { // retention may now delete what it held
	case l.configChanged <- struct{}{}:
	default:
	}
}

// Rolled returns a channel that is closed at the next roll of the active
// segment, that is when a segment closes, and also at Reset and Close. A
// watcher takes the channel, then reads ClosedSegments, then waits on it,
// so that it misses no segment.
func (l *Log) Rolled() <-chan struct{} {
	l.chMu.Lock()
	defer l.chMu.Unlock()
	return l.rolled
}

func (l *Log) notifyRolled() {
	l.chMu.Lock()
	defer l.chMu.Unlock()
	if l.rolled == closedChan {
		return // closed
	}
	close(l.rolled)
	l.rolled = make(chan struct{})
}

// noteNoSpace records a failure for lack of disk space, for Info.DiskFull.
func (l *Log) noteNoSpace(err error) {
	if errors.Is(err, ErrNoSpace) {
		l.diskFull.Store(true)
	}
}

// ClosedSegments returns the closed segments of the log, oldest first: all
// but the active one. It is a snapshot, consistent with itself: retention or
// Reset may delete segments right after it returns. It reads the last batch
// header of segments whose leader epoch is not known yet (once per segment).
// After Close it returns nil.
func (l *Log) ClosedSegments() []ClosedSegment {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil
	}
	out := make([]ClosedSegment, 0, len(l.segs)-1)
	for _, s := range l.segs[:len(l.segs)-1] {
		epoch, err := l.segmentEpoch(s)
		if err != nil {
			s.warn(l.logger, "could not read the leader epoch of the last batch", "err", err)
			epoch = -1
		}
		out = append(out, l.describe(s, epoch))
	}
	return out
}

func (l *Log) describe(s *segment, epoch int32) ClosedSegment {
	return ClosedSegment{
		Base:          s.base,
		Last:          s.next.Load() - 1,
		Epoch:         epoch,
		MaxTimestamp:  s.maxTs.Load(),
		Size:          s.size.Load(),
		LogPath:       s.path(logSuffix),
		IndexPath:     s.path(indexSuffix),
		TimeIndexPath: s.path(timeIndexSuffix),
	}
}

// segmentEpoch returns the leader epoch of the last batch of the closed
// segment s, reading it from the file the first time. The caller holds mu.
func (l *Log) segmentEpoch(s *segment) (int32, error) {
	if e := s.epoch.Load(); e != unknownEpoch {
		return int32(e), nil
	}
	if s.size.Load() == 0 {
		s.epoch.Store(-1)
		return -1, nil
	}
	f, index, err := s.load(l.cfg.Load(), l.logger)
	if err != nil {
		return -1, err
	}
	pos := int64(0)
	if len(index) > 0 {
		pos = int64(index[len(index)-1].pos)
	}
	size := s.size.Load()
	w := window{f: f, limit: size, chunk: 64 << 10}
	epoch := int32(-1)
	for pos < size {
		hb, err := w.peek(pos, batch.HeaderSize)
		if err != nil {
			return -1, s.readError(pos, err)
		}
		h, err := batch.ParseHeader(hb)
		if err != nil {
			return -1, s.readError(pos, err)
		}
		epoch = h.LeaderEpoch
		pos += int64(h.Size())
	}
	s.epoch.Store(int64(epoch))
	return epoch, nil
}

// SegmentData is a closed segment, or its tail, opened for reading (by an
// uploader): its log bytes and its two indexes, in the formats of the
// package documentation. It stays readable when retention or Reset deletes
// the segment meanwhile. Close it.
type SegmentData struct {
	// ClosedSegment describes what Log holds: for a tail, Base is the
	// first offset of the tail and Size, MaxTimestamp and Epoch are the
	// tail's.
	ClosedSegment
	// Log reads the log bytes (Size of them); it is an io.ReaderAt and an
	// io.Seeker.
	Log *io.SectionReader
	// Index and TimeIndex are the offset and time indexes of Log, relative
	// to Base.
	Index, TimeIndex []byte

	file *os.File
}

// Close closes the segment's file.
func (d *SegmentData) Close() error { return d.file.Close() }

// OpenClosedSegment opens the closed segment whose base offset is base, from
// offset from (base for the whole segment; a later offset for its tail, which
// must be the base offset of one of its batches). A tail gets indexes and a
// max timestamp of its own, computed by reading its batch headers.
//
// It fails with ErrSegmentNotFound when base is not a closed segment (any
// more), with ErrOffsetOutOfRange when from is outside the segment or not at
// a batch boundary, with ErrCorrupt when the segment is damaged, and with
// ErrClosed after Close.
func (l *Log) OpenClosedSegment(base, from int64) (*SegmentData, error) {
	d, pos, err := l.openClosed(base, from)
	if err != nil || from == base {
		return d, err
	}
	// Index the tail from the open file, without holding the log's locks:
	// it may be long, and the file stays readable whatever retention does.
	last, size := d.Last, d.Size
	tail := io.NewSectionReader(d.file, pos, size-pos)
	r := scanSegment(tail, from, size-pos, int64(l.cfg.Load().IndexIntervalBytes), false)
	if r.err == nil && (r.bad != nil || r.next != last+1) {
		r.err = fmt.Errorf("%w: segment %d: tail from offset %d ends at %d, not %d: %v", ErrCorrupt, base, from, r.next-1, last, r.bad)
	}
	if r.err != nil {
		d.file.Close()
		return nil, r.err
	}
	d.Base, d.Size, d.MaxTimestamp, d.Epoch = from, size-pos, r.maxTs, r.epoch
	d.Log = tail
	d.Index = encodeOffsetIndex(r.index)
	d.TimeIndex = encodeTimeIndex(r.closedTimes())
	return d, nil
}

// openClosed is OpenClosedSegment under mu: it returns the whole segment,
// and, when from is later than base, the byte position of from's batch.
func (l *Log) openClosed(base, from int64) (*SegmentData, int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, 0, ErrClosed
	}
	var s *segment
	for _, c := range l.segs[:len(l.segs)-1] {
		if c.base == base {
			s = c
			break
		}
	}
	if s == nil {
		return nil, 0, fmt.Errorf("%w: base offset %d", ErrSegmentNotFound, base)
	}
	last := s.next.Load() - 1
	if from < base || from > last {
		return nil, 0, fmt.Errorf("%w: offset %d is not in segment %d (offsets %d to %d)", ErrOffsetOutOfRange, from, base, base, last)
	}
	cfg := l.cfg.Load()
	epoch, err := l.segmentEpoch(s)
	if err != nil {
		return nil, 0, err
	}
	_, index, err := s.load(cfg, l.logger)
	if err != nil {
		return nil, 0, err
	}
	times, err := s.loadTimes(cfg, l.logger)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(logSuffix))
	if err != nil {
		return nil, 0, fmt.Errorf("commitlog: open segment %d: %w", base, err)
	}
	size := s.size.Load()
	d := &SegmentData{ClosedSegment: l.describe(s, epoch), file: f}
	if from == base {
		d.Log = io.NewSectionReader(f, 0, size)
		d.Index = encodeOffsetIndex(index)
		d.TimeIndex = encodeTimeIndex(times)
		return d, 0, nil
	}
	pos, err := s.batchPosition(f, index, from)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return d, pos, nil
}

// batchPosition returns the byte position of the batch whose base offset is
// offset, or ErrOffsetOutOfRange when no batch begins there.
func (s *segment) batchPosition(f *os.File, index []offsetEntry, offset int64) (int64, error) {
	_, pos := lookupOffset(index, uint32(offset-s.base))
	limit := s.size.Load()
	w := window{f: f, limit: limit, chunk: 64 << 10}
	for pos < limit {
		hb, err := w.peek(pos, batch.HeaderSize)
		if err != nil {
			return 0, s.readError(pos, err)
		}
		h, err := batch.ParseHeader(hb)
		if err != nil {
			return 0, s.readError(pos, err)
		}
		switch {
		case h.BaseOffset == offset:
			return pos, nil
		case h.BaseOffset > offset || h.NextOffset() > offset:
			return 0, fmt.Errorf("%w: offset %d is inside a batch of segment %d, not at its start", ErrOffsetOutOfRange, offset, s.base)
		}
		pos += int64(h.Size())
	}
	return 0, fmt.Errorf("%w: offset %d is past segment %d", ErrOffsetOutOfRange, offset, s.base)
}
