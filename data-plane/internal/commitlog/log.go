package commitlog

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spatehq/spate/internal/batch"
)

// Log is the log of one partition: a folder of segments (see the package
// documentation for the layout). Open creates or recovers one.
//
// A Log is safe for concurrent use. Appends are serialized; reads, Sync,
// OffsetForTimestamp and the accessors run concurrently with them and with
// retention. A read sees only whole batches that an Append had finished
// writing when the read started.
//
// Lock order: appendMu, then deleteMu, then mu, then recoveryMu, then syncMu.
// segment.loadMu is taken with mu read-locked and nothing else after it; chMu
// is taken alone. The syncer goroutine takes only recoveryMu and syncMu, and
// never holds syncMu across an fsync; readers hold mu read-locked across
// their preads, so that retention, which deletes segments with mu
// write-locked, never closes a file under them.
type Log struct {
	dir    string
	logger *slog.Logger
	cfg    atomic.Pointer[Config]
	lock   *os.File // the flock on .lock

	// appendMu serializes Append, rolls (also from EnforceRetention) and
	// Close. It guards active (and its segment.w) and appendClosed.
	appendMu     sync.Mutex
	active       *segment
	appendClosed bool

	// deleteMu is held by retention while it drops and deletes segments,
	// and by Reset, so that Reset never creates a file that retention is
	// about to delete.
	deleteMu sync.Mutex

	// mu guards segs and closed, and the files of closed segments: they are
	// closed or dropped only with mu write-locked.
	mu     sync.RWMutex
	segs   []*segment // in offset order; the last is the active segment
	closed bool

	end     atomic.Int64 // the next offset to assign
	start   atomic.Int64 // the base offset of the first segment
	epoch   atomic.Int32 // leader epoch stamped on appended batches
	failure atomic.Pointer[error]

	// recoveryMu serializes the syncer's writes of the recovery point with
	// Reset's.
	recoveryMu sync.Mutex

	// syncMu guards the state shared with the syncer goroutine.
	syncMu     sync.Mutex
	resets     uint64        // how many Resets ran; a round that spans one publishes nothing
	syncActive *segment      // the active segment, as the syncer sees it
	unsynced   []*segment    // rolled segments not yet fsynced, oldest first
	dirDirty   bool          // a segment was created since the last fsync of the folder
	roundDone  chan struct{} // closed when the next fsync round ends
	syncClosed bool          // Close has run its final fsync
	kick       chan struct{} // wakes the syncer; capacity 1
	durable    atomic.Int64  // offsets below it are fsynced
	fsyncs     atomic.Uint64

	// chMu guards changed, changedTaken and rolled.
	chMu         sync.Mutex
	changed      chan struct{}
	changedTaken bool
	rolled       chan struct{} // closed at the next roll, Reset or Close

	// tiering state: see tiering.go.
	gate     atomic.Pointer[DeletionGate]
	held     atomic.Pointer[heldState]
	diskFull atomic.Bool // the last append failed for lack of space

	stop          chan struct{} // closed by Close to stop the goroutines
	configChanged chan struct{} // wakes the retention loop; capacity 1
	wg            sync.WaitGroup
}

// Info describes the state of a Log.
type Info struct {
	StartOffset   int64 // the first offset still stored
	EndOffset     int64 // the next offset to assign
	DurableOffset int64 // every offset below it is fsynced
	Size          int64 // bytes of all segments
	Segments      int   // number of segments, the active one included
	ActiveBase    int64 // base offset of the active segment
	LeaderEpoch   int32 // the epoch stamped on appended batches
	// Fsyncs counts the fsync rounds that fdatasynced the active segment
	// since Open, plus the segments fsynced by Close: with group commit it
	// grows much slower than the number of Syncs.
	Fsyncs uint64
	// RetentionHeldSegments and RetentionHeldBytes are the closed segments
	// that local retention would delete but keeps because the deletion
	// gate (tiering) does not yet allow it: they are not uploaded. Zero
	// without tiering.
	RetentionHeldSegments int
	RetentionHeldBytes    int64
	// DiskFull reports that the last append failed for lack of disk space
	// (ErrNoSpace); the next successful append clears it.
	DiskFull bool
}

// Append validates b, which holds one or more whole batches, stamps them with
// consecutive base offsets and the current leader epoch (in place, in b),
// and writes them to the active segment with a single write. It returns the
// first and last offsets assigned.
//
// Append is all or nothing. It fails, leaving the log unchanged, with a
// wrapped batch error (batch.ErrTruncated, batch.ErrCorrupt,
// batch.ErrBadMagic, batch.ErrBadCRC) when b is not well-formed batches, with
// ErrBatchTooLarge when a batch exceeds Config.MaxBatchBytes, and with an
// error wrapping ErrNoSpace when the disk is full: on a failed write the
// segment is truncated back to its size before the call. It rolls the active
// segment first when b would make it larger than Config.SegmentBytes or it
// is older than Config.SegmentAge.
//
// The batches are in the page cache when Append returns; call Sync to wait
// until they are on disk.
func (l *Log) Append(b []byte) (base, last int64, err error) {
	return l.append(b, false)
}

// AppendReplicated writes batches fetched from the partition's leader: whole
// batches whose base offsets and leader epochs are kept as the leader
// stamped them. The first must begin exactly at EndOffset and each next one
// where the previous ends; otherwise it fails with an error wrapping
// ErrNotContiguous and writes nothing. It returns the last offset written.
//
// Apart from keeping the offsets, it behaves as Append: same validation,
// rolls, single write, rollback on a failed write, and indexes.
func (l *Log) AppendReplicated(b []byte) (last int64, err error) {
	_, last, err = l.append(b, true)
	return last, err
}

// append is Append, or AppendReplicated when replicated is true.
func (l *Log) append(b []byte, replicated bool) (base, last int64, err error) {
	cfg := l.cfg.Load()
	records, err := validateBatches(b, cfg.MaxBatchBytes)
	if err != nil {
		return 0, 0, err
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.appendClosed {
		return 0, 0, ErrClosed
	}
	if p := l.failure.Load(); p != nil {
		return 0, 0, *p
	}
	base = l.end.Load()
	if replicated {
		if err := checkContiguous(b, base); err != nil {
			return 0, 0, err
		}
	}
	s := l.active
	now := time.Now()
	if size := s.size.Load(); size > 0 &&
		(size+int64(len(b)) > cfg.SegmentBytes ||
			now.Sub(s.w.rollBase) >= cfg.SegmentAge ||
			s.next.Load()+records-s.base > math.MaxUint32) {
		if err := l.roll(now); err != nil {
			l.noteNoSpace(err)
			return 0, 0, err
		}
		s = l.active
	}
	pos := s.size.Load()
	if pos+int64(len(b)) > math.MaxUint32 {
		return 0, 0, fmt.Errorf("%w: %d bytes in one append", ErrBatchTooLarge, len(b))
	}

	next := base + records
	if !replicated {
		epoch := l.epoch.Load()
		off := base
		for p := b; len(p) > 0; {
			h, _ := batch.ParseHeader(p) // validated above
			batch.SetBaseOffset(p, off)
			batch.SetLeaderEpoch(p, epoch)
			off += int64(h.RecordCount)
			p = p[h.Size():]
		}
	}
	if _, err := s.w.f.WriteAt(b, pos); err != nil {
		// Leave nothing of a partial write.
		if terr := s.w.f.Truncate(pos); terr != nil {
			l.fail(fmt.Errorf("%w: truncate segment %d after a failed write: %w", ErrFailed, s.base, terr))
		}
		err = ioError(fmt.Sprintf("append to segment %d", s.base), err)
		l.noteNoSpace(err)
		return 0, 0, err
	}

	interval := int64(cfg.IndexIntervalBytes)
	maxTs := s.maxTs.Load()
	bpos := pos
	var epoch int32
	for p := b; len(p) > 0; {
		h, _ := batch.ParseHeader(p)
		epoch = h.LeaderEpoch
		s.addIndexEntries(uint32(h.BaseOffset-s.base), bpos, h.MaxTimestamp, interval)
		maxTs = max(maxTs, h.MaxTimestamp)
		bpos += int64(h.Size())
		p = p[h.Size():]
	}
	if pos == 0 {
		s.w.rollBase = now
	}
	// Publish in the order readers rely on: size, next, maxTs, then end.
	s.size.Store(bpos)
	s.next.Store(next)
	s.maxTs.Store(maxTs)
	s.epoch.Store(int64(epoch))
	l.end.Store(next)
	if l.diskFull.Load() {
		l.diskFull.Store(false)
	}
	l.notifyChanged()
	return base, next - 1, nil
}

// checkContiguous checks that the batches in b, already validated, begin at
// end and follow each other without a gap or an overlap. (A valid batch
// spans exactly as many offsets as it holds records.)
func checkContiguous(b []byte, end int64) error {
	next := end
	for n := 0; len(b) > 0; n++ {
		h, _ := batch.ParseHeader(b)
		if h.BaseOffset != next {
			return fmt.Errorf("%w: batch %d begins at offset %d, the log continues at %d", ErrNotContiguous, n, h.BaseOffset, next)
		}
		next = h.NextOffset()
		b = b[h.Size():]
	}
	return nil
}

// validateBatches checks that b is one or more whole, well-formed batches of
// at most maxBatch bytes each and returns their record count.
func validateBatches(b []byte, maxBatch int) (records int64, err error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("commitlog: append: %w: no batch", batch.ErrTruncated)
	}
	for n := 0; len(b) > 0; n++ {
		h, err := batch.ParseHeader(b)
		if err == nil && h.Size() > maxBatch {
			return 0, fmt.Errorf("%w: batch %d is %d bytes, the limit is %d", ErrBatchTooLarge, n, h.Size(), maxBatch)
		}
		if err == nil {
			_, h, b, err = batch.Next(b)
		}
		if err == nil && h.Derived() {
			err = fmt.Errorf("%w: %w", batch.ErrCorrupt, batch.ErrDerived)
		}
		if err != nil {
			return 0, fmt.Errorf("commitlog: append: batch %d: %w", n, err)
		}
		records += int64(h.RecordCount)
	}
	return records, nil
}

// roll closes the active segment and starts a new one at the end offset. The
// caller holds appendMu.
func (l *Log) roll(now time.Time) error {
	old := l.active
	ns, err := createSegment(l.dir, l.end.Load(), now)
	if err != nil {
		return err
	}
	if err := old.closeWriter(); err != nil {
		l.logger.Warn("could not write segment indexes; they will be rebuilt", "segment", old.base, "err", err)
	}
	l.mu.Lock()
	l.segs = append(l.segs, ns)
	l.mu.Unlock()
	l.active = ns
	l.syncMu.Lock()
	l.unsynced = append(l.unsynced, old)
	l.syncActive = ns
	l.dirDirty = true
	l.syncMu.Unlock()
	l.kickSyncer() // rolled segments are fsynced whatever the durability
	l.notifyRolled()
	l.logger.Debug("rolled segment", "segment", old.base, "size", old.size.Load(), "next", ns.base)
	return nil
}

// fail makes every later Append and Sync fail with err.
func (l *Log) fail(err error) {
	if l.failure.CompareAndSwap(nil, &err) {
		l.logger.Error("log failed; reopen it to recover", "err", err)
	}
}

func (l *Log) notifyChanged() {
	l.chMu.Lock()
	if l.changedTaken {
		close(l.changed)
		l.changed = make(chan struct{})
		l.changedTaken = false
	}
	l.chMu.Unlock()
}

// Changed returns a channel that is closed at the next successful Append (or
// at Close). A consumer at the end of the log takes the channel, checks
// EndOffset, and then waits on the channel, so that it misses no append.
func (l *Log) Changed() <-chan struct{} {
	l.chMu.Lock()
	defer l.chMu.Unlock()
	l.changedTaken = true
	return l.changed
}

// StartOffset returns the first offset the log still stores. It grows when
// retention deletes segments.
func (l *Log) StartOffset() int64 { return l.start.Load() }

// EndOffset returns the log end offset: the offset the next appended record
// will get. The log holds offsets StartOffset to EndOffset-1.
func (l *Log) EndOffset() int64 { return l.end.Load() }

// SetLeaderEpoch sets the leader epoch stamped on the batches appended from
// now on. Open sets it to the epoch of the last batch of the active segment.
func (l *Log) SetLeaderEpoch(e int32) { l.epoch.Store(e) }

// Config returns the current configuration, defaults filled in.
func (l *Log) Config() Config { return *l.cfg.Load() }

// SetConfig changes the configuration of the live log. Size and age limits
// apply from the next append, retention from the next check, which runs at
// once; index intervals apply to the entries written from now on. It fails,
// changing nothing, if cfg does not validate.
func (l *Log) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	l.cfg.Store(&cfg)
	select {
	case l.configChanged <- struct{}{}:
	default:
	}
	return nil
}

// Read returns whole batches, the bytes exactly as stored, starting with the
// batch that holds offset: as many as fit in maxBytes, but always at least
// that first batch, however large. It never returns a batch that an
// Append had not finished writing when Read started. The batches of one
// call all come from one segment, so a read may return fewer bytes than
// maxBytes even when more batches follow.
//
// Read reads into buf when it is large enough, and then data is buf[:n]: a
// consumer that passes the same buf to every call reads without allocating.
// A buf with a capacity of at least maxBytes gets full reads; a smaller one
// makes Read return less (but still a whole first batch, in a new slice if
// buf cannot hold it); a nil buf makes Read allocate.
//
// Offset EndOffset returns no data and no error: the consumer is at the end,
// and may wait on Changed. An offset below StartOffset or above EndOffset
// fails with ErrOffsetOutOfRange; data the index or the log does not agree
// on fails with ErrCorrupt.
func (l *Log) Read(offset int64, maxBytes int, buf []byte) (data []byte, err error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	end := l.end.Load()
	if offset == end {
		return buf[:0], nil
	}
	if start := l.segs[0].base; offset < start || offset > end {
		return nil, fmt.Errorf("%w: offset %d, the log holds %d to %d", ErrOffsetOutOfRange, offset, start, end-1)
	}
	i := l.segmentIndex(offset)
	s := l.segs[i]
	cfg := l.cfg.Load()
	slack := min(cfg.IndexIntervalBytes, 256<<10) + batch.HeaderSize
	for attempt := 0; ; attempt++ {
		f, index, err := s.load(cfg, l.logger)
		if err != nil {
			return nil, err
		}
		data, err = s.read(f, index, offset, end, maxBytes, buf, slack)
		if errors.Is(err, errIndexMismatch) {
			if attempt == 0 && i < len(l.segs)-1 {
				l.logger.Warn("rebuilding offset index", "segment", s.base, "reason", err)
				s.loadMu.Lock()
				_, err = s.rebuildLocked(f, cfg, l.logger)
				s.loadMu.Unlock()
				if err == nil {
					continue
				}
			}
			return nil, fmt.Errorf("%w: segment %d: %w", ErrCorrupt, s.base, err)
		}
		return data, err
	}
}

// segmentIndex returns the index in segs of the segment holding offset. The
// caller holds mu and has checked that offset is in the log.
func (l *Log) segmentIndex(offset int64) int {
	return sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
}

// OffsetForTimestamp returns the base offset of the first batch whose max
// timestamp (Unix milliseconds) is at least ts, or EndOffset if there is
// none. Since timestamps need not grow with offsets, later batches may be
// older than ts.
func (l *Log) OffsetForTimestamp(ts int64) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return 0, ErrClosed
	}
	end := l.end.Load()
	cfg := l.cfg.Load()
	for _, s := range l.segs {
		if s.maxTs.Load() < ts {
			continue
		}
		f, index, err := s.load(cfg, l.logger)
		if err != nil {
			return 0, err
		}
		times, err := s.loadTimes(cfg, l.logger)
		if err != nil {
			return 0, err
		}
		off, err := s.offsetForTimestamp(f, index, times, ts)
		if err != nil {
			return 0, err
		}
		if off >= 0 && off < end {
			return off, nil
		}
	}
	return end, nil
}

// Info returns the state of the log.
func (l *Log) Info() Info {
	l.mu.RLock()
	defer l.mu.RUnlock()
	info := Info{
		StartOffset:   l.segs[0].base,
		EndOffset:     l.end.Load(),
		DurableOffset: l.durable.Load(),
		Segments:      len(l.segs),
		ActiveBase:    l.segs[len(l.segs)-1].base,
		LeaderEpoch:   l.epoch.Load(),
		Fsyncs:        l.fsyncs.Load(),
		DiskFull:      l.diskFull.Load(),
	}
	if h := l.held.Load(); h != nil {
		info.RetentionHeldSegments, info.RetentionHeldBytes = h.segments, h.bytes
	}
	for _, s := range l.segs {
		info.Size += s.size.Load()
	}
	return info
}

// Dir returns the folder of the log.
func (l *Log) Dir() string { return l.dir }

// Close stops the background goroutines and waits for them, fsyncs
// everything written, and closes the files. Syncs waiting on offsets that
// the final fsync covers return nil, others ErrClosed. Appends, reads and
// Syncs after Close fail with ErrClosed, and so does a second Close.
func (l *Log) Close() error {
	l.appendMu.Lock()
	if l.appendClosed {
		l.appendMu.Unlock()
		return ErrClosed
	}
	l.appendClosed = true
	l.appendMu.Unlock()

	close(l.stop)
	l.wg.Wait() // the syncer and the retention loop

	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	l.closed = true
	segs := l.segs
	l.mu.Unlock()

	var errs []error
	active := l.active
	if err := active.closeWriter(); err != nil {
		l.logger.Warn("could not write segment indexes; they will be rebuilt", "segment", active.base, "err", err)
	}
	syncErr := l.finalSync(active)
	errs = append(errs, syncErr)
	for _, s := range segs {
		if err := s.closeFiles(); err != nil {
			errs = append(errs, fmt.Errorf("commitlog: close segment %d: %w", s.base, err))
		}
	}
	l.syncMu.Lock()
	l.syncClosed = true
	close(l.roundDone)
	l.syncMu.Unlock()

	l.chMu.Lock()
	if l.changed != nil {
		close(l.changed)
		l.changed = closedChan
		l.changedTaken = false
	}
	if l.rolled != closedChan {
		close(l.rolled)
		l.rolled = closedChan
	}
	l.chMu.Unlock()
	errs = append(errs, l.lock.Close())
	return errors.Join(errs...)
}

// Reset discards the whole log and starts it again, empty, at offset 0. It
// is for followers that diverged from their leader: they fetch everything
// again.
//
// It deletes every segment and index file, newest first, creates an empty
// active segment at base 0, makes that durable with the recovery point 0,
// and then sets the start, end and durable offsets to 0 and wakes the
// Changed waiters. It holds every lock of the log meanwhile, so concurrent
// appends, reads, Syncs, retention and the syncer see the old log or the
// new one, never a mix: a read of an offset of the old log then fails with
// ErrOffsetOutOfRange, and so does a Sync waiting for one. A crash during
// Reset leaves a prefix of the old log, or an empty one. The leader epoch
// stamped on appends is kept.
//
// Reset fails with ErrClosed after Close, and with the log's failure once
// it failed. An I/O error while it deletes or creates files fails the log
// (ErrFailed): it must be reopened.
func (l *Log) Reset() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.appendClosed {
		return ErrClosed
	}
	if p := l.failure.Load(); p != nil {
		return *p
	}
	if err := l.resetLocked(); err != nil {
		return err
	}
	l.notifyChanged()
	l.notifyRolled()
	return nil
}

// resetLocked is Reset with appendMu held: it takes the other locks.
func (l *Log) resetLocked() error {
	l.deleteMu.Lock()
	defer l.deleteMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.recoveryMu.Lock()
	defer l.recoveryMu.Unlock()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()

	old := l.segs
	l.logger.Warn("resetting the log: deleting every segment",
		"start_offset", l.start.Load(), "end_offset", l.end.Load(), "segments", len(old))
	var errs []error
	for i := len(old) - 1; i >= 0; i-- {
		if err := old[i].remove(); err != nil {
			errs = append(errs, fmt.Errorf("delete segment %d: %w", old[i].base, err))
		}
	}
	var ns *segment
	if len(errs) == 0 {
		var err error
		if ns, err = createSegment(l.dir, 0, time.Now()); err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, syncDir(l.dir), writeRecoveryPoint(l.dir, 0))
		}
	}
	if err := errors.Join(errs...); err != nil {
		// The old segments are closed and maybe partly deleted: reads
		// fail, and the failure stops appends and Syncs.
		if ns != nil {
			ns.closeFiles()
		}
		err = fmt.Errorf("%w: reset: %w", ErrFailed, err)
		l.fail(err)
		return err
	}
	l.segs = []*segment{ns}
	l.active = ns
	l.syncActive = ns
	l.unsynced = nil
	l.dirDirty = false
	l.start.Store(0)
	l.end.Store(0)
	l.durable.Store(0)
	l.resets++
	// Wake the waiting Syncs: they find their offsets out of range.
	close(l.roundDone)
	l.roundDone = make(chan struct{})
	return nil
}

// closedChan is what Changed returns after Close.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Remove closes the log and deletes its folder with everything in it.
func (l *Log) Remove() error {
	if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("commitlog: remove: %w", err)
	}
	return nil
}
