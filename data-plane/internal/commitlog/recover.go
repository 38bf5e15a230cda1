package commitlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// lockFile is the name of the file Open locks.
const lockFile = ".lock"

// Open opens the partition log in the folder dir, creating the folder and an
// empty log if needed, and recovering the log otherwise: the segments not
// known to be durable (at least the active one) are scanned batch by batch
// and truncated at the first torn or corrupt batch, missing or inconsistent
// indexes are rebuilt. It starts the syncer and the retention goroutines,
// which Close stops. A nil logger discards the log messages; what recovery
// cuts is logged at Warn level.
//
// Open fails if cfg does not validate, if another Log has dir open, or on an
// I/O error; it never opens a log it could not check.
func Open(dir string, cfg Config, logger *slog.Logger) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := makeDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:           dir,
		logger:        logger,
		lock:          lock,
		roundDone:     make(chan struct{}),
		kick:          make(chan struct{}, 1),
		changed:       make(chan struct{}),
		rolled:        make(chan struct{}),
		stop:          make(chan struct{}),
		configChanged: make(chan struct{}, 1),
	}
	l.cfg.Store(&cfg)
	recovery, err := l.recover(time.Now())
	if err != nil {
		lock.Close()
		return nil, err
	}
	l.wg.Add(2)
	go l.syncLoop(recovery)
	go l.retentionLoop()
	return l, nil
}

// makeDir creates dir if needed, and makes its creation durable.
func makeDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ioError("create log folder", err)
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return ioError("create log folder", err)
	}
	return nil
}

// segmentFiles records which files of a segment exist.
type segmentFiles struct {
	log, index, times bool
}

// recover loads the segments of the folder, scanning and truncating the
// ones not known to be durable, and returns the recovery point it wrote. On
// failure it closes what it opened.
func (l *Log) recover(now time.Time) (_ int64, err error) {
	cfg := l.cfg.Load()
	var segs []*segment
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.closeFiles()
			}
		}
	}()
	dirEntries, err := os.ReadDir(l.dir)
	if err != nil {
		return 0, fmt.Errorf("commitlog: open: %w", err)
	}
	files := map[int64]*segmentFiles{}
	for _, e := range dirEntries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(l.dir, name))
			continue
		}
		base, suffix, ok := parseSegmentName(name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		sf := files[base]
		if sf == nil {
			sf = &segmentFiles{}
			files[base] = sf
		}
		switch suffix {
		case logSuffix:
			sf.log = true
		case indexSuffix:
			sf.index = true
		case timeIndexSuffix:
			sf.times = true
		}
	}
	var bases []int64
	for base, sf := range files {
		if sf.log {
			bases = append(bases, base)
			continue
		}
		// Index files without a log: a deletion was interrupted.
		l.logger.Info("deleting index files without a segment", "segment", base)
		os.Remove(filepath.Join(l.dir, segmentName(base, indexSuffix)))
		os.Remove(filepath.Join(l.dir, segmentName(base, timeIndexSuffix)))
	}
	slices.Sort(bases)

	if len(bases) == 0 {
		s, err := createSegment(l.dir, 0, now)
		if err != nil {
			return 0, err
		}
		segs = append(segs, s)
		l.install(segs, 0)
		if err := syncDir(l.dir); err != nil {
			return 0, ioError("open", err)
		}
		if err := writeRecoveryPoint(l.dir, 0); err != nil {
			return 0, err
		}
		return 0, nil
	}

	// Segments below the recovery point were fsynced with their indexes;
	// the others, and always the last, are scanned.
	recovery := readRecoveryPoint(l.dir)
	scanFrom := len(bases) - 1
	for i, base := range bases {
		if base >= recovery {
			scanFrom = min(i, scanFrom)
			break
		}
	}
	segs = make([]*segment, 0, len(bases))
	for i := range scanFrom {
		s, err := l.loadClosed(bases[i], files[bases[i]], bases[i+1], cfg)
		if err != nil {
			return 0, err
		}
		segs = append(segs, s)
	}

	var epoch int32
	var scanned []*scanResult
	for i := scanFrom; i < len(bases); i++ {
		base := bases[i]
		if len(segs) > 0 && segs[len(segs)-1].next.Load() != base {
			l.deleteFrom(bases[i:], fmt.Sprintf("segment starts at offset %d, but the previous one ends at %d", base, segs[len(segs)-1].next.Load()))
			break
		}
		s, r, err := l.scan(base, cfg)
		if err != nil {
			return 0, err
		}
		segs = append(segs, s)
		scanned = append(scanned, r)
		if r.epoch >= 0 {
			epoch = r.epoch
		}
		if r.bad != nil {
			l.deleteFrom(bases[i+1:], "an earlier segment was truncated")
			break
		}
	}

	// Finish the scanned segments: all but the last are closed, the last
	// is the active one.
	for i, r := range scanned[:len(scanned)-1] {
		s := segs[scanFrom+i]
		times := r.closedTimes()
		s.index.set(r.index)
		s.times.set(times)
		err := s.saveIndexes(r.index, times)
		if err == nil {
			err = syncSegmentFiles(s)
		}
		if err != nil {
			return 0, ioError(fmt.Sprintf("open: write indexes of segment %d", s.base), err)
		}
	}
	active, last := segs[len(segs)-1], scanned[len(scanned)-1]
	f := active.file.Load()
	rollBase := now
	if last.batches > 0 && last.firstTs < now.UnixMilli() {
		rollBase = time.UnixMilli(last.firstTs)
	}
	if err := active.startWriter(f, last.index, last.times, last.ib, rollBase); err != nil {
		return 0, err
	}
	active.index.set(last.index)
	active.times.set(last.times)
	if err := fdatasync(f); err != nil {
		return 0, ioError("open: fsync segment", err)
	}
	if err := syncDir(l.dir); err != nil {
		return 0, ioError("open", err)
	}
	if err := writeRecoveryPoint(l.dir, active.base); err != nil {
		return 0, err
	}
	l.install(segs, epoch)
	return active.base, nil
}

// install makes segs the log's segments, the last one active.
func (l *Log) install(segs []*segment, epoch int32) {
	active := segs[len(segs)-1]
	l.segs = segs
	l.active = active
	l.syncActive = active
	l.start.Store(segs[0].base)
	l.end.Store(active.next.Load())
	l.durable.Store(active.next.Load())
	l.epoch.Store(epoch)
}

// scan opens the segment at base read-write, checks it batch by batch, and
// truncates it at the first bad batch. The returned segment keeps the log
// file open; the caller writes the indexes found.
func (l *Log) scan(base int64, cfg *Config) (*segment, *scanResult, error) {
	s := &segment{base: base, dir: l.dir}
	f, err := os.OpenFile(s.path(logSuffix), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("commitlog: open segment %d: %w", base, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("commitlog: open segment %d: %w", base, err)
	}
	size := fi.Size()
	r := scanSegment(f, base, size, int64(cfg.IndexIntervalBytes), true)
	if r.err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("commitlog: scan segment %d: %w", base, r.err)
	}
	if r.size < size {
		if r.bad == nil {
			r.bad = errors.New("segment too large to index")
		}
		l.logger.Warn("truncating a torn or corrupt segment tail",
			"segment", base, "position", r.size, "offset", r.next, "bytes", size-r.size, "reason", r.bad)
		if err := f.Truncate(r.size); err != nil {
			f.Close()
			return nil, nil, ioError(fmt.Sprintf("truncate segment %d", base), err)
		}
	}
	s.file.Store(f)
	s.size.Store(r.size)
	s.next.Store(r.next)
	s.maxTs.Store(r.maxTs)
	s.epoch.Store(int64(r.epoch))
	return s, &r, nil
}

// deleteFrom deletes the segments at bases, which follow a truncated or
// inconsistent segment, saying why.
func (l *Log) deleteFrom(bases []int64, reason string) {
	for _, base := range bases {
		l.logger.Warn("deleting a segment after the end of the log", "segment", base, "reason", reason)
		s := &segment{base: base, dir: l.dir}
		if err := s.remove(); err != nil {
			l.logger.Warn("could not delete segment", "segment", base, "err", err)
		}
	}
}

// loadClosed loads a closed segment below the recovery point without
// reading its log: its size from the file system and its newest timestamp
// from the last time index entry. Indexes whose size or last entry is wrong
// are rebuilt now, others are checked in full when first loaded.
func (l *Log) loadClosed(base int64, sf *segmentFiles, next int64, cfg *Config) (*segment, error) {
	s := &segment{base: base, dir: l.dir}
	fi, err := os.Stat(s.path(logSuffix))
	if err != nil {
		return nil, fmt.Errorf("commitlog: open segment %d: %w", base, err)
	}
	size := fi.Size()
	s.size.Store(size)
	s.next.Store(next)
	s.epoch.Store(unknownEpoch)
	offsets := next - base

	var reason error
	switch {
	case offsets < 0 || offsets > math.MaxUint32:
		return nil, fmt.Errorf("commitlog: open segment %d: %w: it would hold %d offsets", base, ErrCorrupt, offsets)
	case !sf.index || !sf.times:
		reason = errors.New("an index file is missing")
	default:
		// Whether the index is short is checked when it is loaded.
		if b, err := readLastEntry(s.path(indexSuffix), offsetEntrySize); err != nil {
			reason = err
		} else if b != nil {
			if e := decodeOffsetEntry(b); int64(e.pos) >= size || int64(e.rel) >= offsets {
				reason = fmt.Errorf("last index entry (offset +%d at %d) does not fit the segment", e.rel, e.pos)
			}
		}
		if reason != nil {
			break
		}
		b, err := readLastEntry(s.path(timeIndexSuffix), timeEntrySize)
		switch {
		case err != nil:
			reason = err
		case b == nil && size > 0:
			reason = errors.New("time index is empty")
		case b == nil:
			s.maxTs.Store(math.MinInt64)
		default:
			e := decodeTimeEntry(b)
			if int64(e.rel) >= offsets {
				reason = fmt.Errorf("last time index entry (offset +%d) is past the segment", e.rel)
			}
			s.maxTs.Store(e.ts)
		}
	}
	if reason == nil {
		return s, nil
	}
	l.logger.Warn("rebuilding segment indexes", "segment", base, "reason", reason)
	f, err := os.Open(s.path(logSuffix))
	if err != nil {
		return nil, fmt.Errorf("commitlog: open segment %d: %w", base, err)
	}
	defer f.Close()
	r := scanSegment(f, base, size, int64(cfg.IndexIntervalBytes), false)
	if r.err != nil {
		return nil, fmt.Errorf("commitlog: scan segment %d: %w", base, r.err)
	}
	if r.bad != nil || r.next != next {
		l.logger.Error("closed segment is damaged; reads of the damaged part fail",
			"segment", base, "position", r.size, "offset", r.next, "reason", r.bad)
	}
	s.maxTs.Store(r.maxTs)
	if r.next == next {
		s.epoch.Store(int64(r.epoch))
	}
	times := r.closedTimes()
	if err := s.saveIndexes(r.index, times); err != nil {
		l.logger.Warn("could not save rebuilt indexes", "segment", base, "err", err)
	}
	return s, nil
}

// readLastEntry returns the last entry of the index file at path, nil if the
// file is empty, and an error if it is not a whole number of entries.
func readLastEntry(path string, entrySize int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size%int64(entrySize) != 0 {
		return nil, fmt.Errorf("index of %d bytes is not a whole number of %d-byte entries", size, entrySize)
	}
	if size == 0 {
		return nil, nil
	}
	b := make([]byte, entrySize)
	if _, err := f.ReadAt(b, size-int64(entrySize)); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}
