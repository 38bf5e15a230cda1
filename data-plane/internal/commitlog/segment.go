package commitlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spatehq/spate/internal/batch"
)

// File name suffixes of a segment's files.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
)

// segmentName returns the file name of the segment with base offset base and
// the given suffix: 20 digits, zero-padded.
func segmentName(base int64, suffix string) string {
	return fmt.Sprintf("%020d%s", base, suffix)
}

// parseSegmentName returns the base offset and suffix of a segment file name,
// or ok false for any other name.
func parseSegmentName(name string) (base int64, suffix string, ok bool) {
	if len(name) < 21 {
		return 0, "", false
	}
	digits, suffix := name[:20], name[20:]
	if suffix != logSuffix && suffix != indexSuffix && suffix != timeIndexSuffix {
		return 0, "", false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, "", false
		}
	}
	base, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return base, suffix, true
}

// segment is one segment of the log: a .log file and its two indexes.
//
// size, next and maxTs are published with atomic stores by the appender (in
// the order index entries, size, next, maxTs, then Log.end) and read without
// locks; a reader that has seen Log.end sees at least as much of the
// segment. A closed segment no longer changes them.
type segment struct {
	base int64
	dir  string

	size  atomic.Int64 // bytes of whole batches in the log file
	next  atomic.Int64 // offset after the segment's last batch
	maxTs atomic.Int64 // largest max timestamp of its batches, math.MinInt64 when empty
	// epoch is the leader epoch of the last batch: -1 when the segment is
	// empty, unknownEpoch until read (closed segments loaded without a
	// scan). See Log.segmentEpoch.
	epoch atomic.Int64

	// file, index and times are always set for the active segment. For a
	// closed one they are loaded on first use under loadMu, and dropped
	// when unused (Log.evictIdle, under Log.mu write-locked, so that no
	// reader uses them).
	file   atomic.Pointer[os.File]
	index  entries[offsetEntry]
	times  entries[timeEntry]
	used   atomic.Bool // set by readers, cleared by Log.evictIdle
	loadMu sync.Mutex  // serializes loading file, index and times

	// w is the write state of the active segment, nil once it is closed.
	// It belongs to the appender (Log.appendMu).
	w *segmentWriter
}

func (s *segment) path(suffix string) string {
	return filepath.Join(s.dir, segmentName(s.base, suffix))
}

func (s *segment) offsets() int64 { return s.next.Load() - s.base }

// touch marks the segment as used, without writing to a shared cache line
// when it already is.
func (s *segment) touch() {
	if !s.used.Load() {
		s.used.Store(true)
	}
}

// indexBuilder decides which batches get index entries, following the rules
// in the package documentation. Appends and index rebuilds share it, so that
// a rebuilt index is the one the appends would have written.
type indexBuilder struct {
	lastIndexPos int64  // position of the batch of the last offset entry, 0 for none
	lastTimePos  int64  // position of the batch of the last time entry, 0 for none
	timeTs       int64  // timestamp of the last time entry, math.MinInt64 for none
	maxTs        int64  // largest max timestamp so far, math.MinInt64 when empty
	maxRel       uint32 // relative offset of the batch that set maxTs
}

func newIndexBuilder() indexBuilder {
	return indexBuilder{timeTs: math.MinInt64, maxTs: math.MinInt64}
}

// add accounts for the batch at pos with relative offset rel and max
// timestamp maxTs, and returns the entries to append to the indexes.
func (b *indexBuilder) add(rel uint32, pos, maxTs, interval int64) (oe offsetEntry, addOffset bool, te timeEntry, addTime bool) {
	if pos-b.lastIndexPos >= interval {
		oe, addOffset = offsetEntry{rel: rel, pos: uint32(pos)}, true
		b.lastIndexPos = pos
	}
	if maxTs > b.maxTs {
		b.maxTs, b.maxRel = maxTs, rel
		if pos-b.lastTimePos >= interval {
			te, addTime = timeEntry{ts: maxTs, rel: rel}, true
			b.lastTimePos, b.timeTs = pos, maxTs
		}
	}
	return
}

// finish returns the last time entry to write when the segment is closed,
// if its max timestamp grew since the last entry.
func (b *indexBuilder) finish() (timeEntry, bool) {
	if b.maxTs > b.timeTs {
		b.timeTs = b.maxTs
		return timeEntry{ts: b.maxTs, rel: b.maxRel}, true
	}
	return timeEntry{}, false
}

// segmentWriter is the write state of the active segment.
type segmentWriter struct {
	f          *os.File // the log file, read-write
	indexFile  *os.File
	timeFile   *os.File
	indexBuf   *bufio.Writer
	timeBuf    *bufio.Writer
	indexErr   error // the first failure to write the index files; recovery rebuilds them
	ib         indexBuilder
	rollBase   time.Time // when the segment's first batch was written
	entryBytes [timeEntrySize]byte
}

// addIndexEntries appends the entries for the batch at pos to the published
// indexes and to the index files' buffers.
func (s *segment) addIndexEntries(rel uint32, pos, maxTs, interval int64) {
	w := s.w
	oe, addOffset, te, addTime := w.ib.add(rel, pos, maxTs, interval)
	if addOffset {
		s.index.add(oe)
		oe.put(w.entryBytes[:offsetEntrySize])
		w.writeIndex(w.indexBuf, w.entryBytes[:offsetEntrySize])
	}
	if addTime {
		s.times.add(te)
		te.put(w.entryBytes[:])
		w.writeIndex(w.timeBuf, w.entryBytes[:])
	}
}

func (w *segmentWriter) writeIndex(b *bufio.Writer, p []byte) {
	if w.indexErr != nil {
		return
	}
	if _, err := b.Write(p); err != nil {
		w.indexErr = err
	}
}

// closeWriter finishes the active segment when it is rolled or the log is
// closed: it writes the last time entry, flushes and closes the index files.
// The log file stays open for readers. Index write errors are returned for
// logging only: indexes are rebuilt when found short.
func (s *segment) closeWriter() error {
	w := s.w
	if w == nil {
		return nil
	}
	s.w = nil
	if te, ok := w.ib.finish(); ok {
		s.times.add(te)
		te.put(w.entryBytes[:])
		w.writeIndex(w.timeBuf, w.entryBytes[:])
	}
	if w.indexErr == nil {
		w.indexErr = errors.Join(w.indexBuf.Flush(), w.timeBuf.Flush())
	}
	err := errors.Join(w.indexErr, w.indexFile.Close(), w.timeFile.Close())
	if err != nil {
		// The files on disk may be short, and a short time index would
		// understate the segment's newest timestamp. Delete them: the
		// published entries are right, and a reload rebuilds the files.
		os.Remove(s.path(indexSuffix))
		os.Remove(s.path(timeIndexSuffix))
		return fmt.Errorf("write indexes of segment %d: %w", s.base, err)
	}
	return nil
}

// createSegment creates the files of a new, empty active segment.
func createSegment(dir string, base int64, now time.Time) (*segment, error) {
	s := &segment{base: base, dir: dir}
	s.next.Store(base)
	s.maxTs.Store(math.MinInt64)
	s.epoch.Store(-1)
	f, err := os.OpenFile(s.path(logSuffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, ioError("create segment", err)
	}
	if err := s.startWriter(f, nil, nil, newIndexBuilder(), now); err != nil {
		f.Close()
		os.Remove(s.path(logSuffix))
		return nil, err
	}
	s.index.set(nil)
	s.times.set(nil)
	return s, nil
}

// startWriter makes s the active segment writing to f, with index files
// rewritten to hold index and times.
func (s *segment) startWriter(f *os.File, index []offsetEntry, times []timeEntry, ib indexBuilder, rollBase time.Time) error {
	indexFile, err := writeIndexFile(s.path(indexSuffix), encodeOffsetIndex(index))
	if err != nil {
		return err
	}
	timeFile, err := writeIndexFile(s.path(timeIndexSuffix), encodeTimeIndex(times))
	if err != nil {
		indexFile.Close()
		os.Remove(s.path(indexSuffix))
		return err
	}
	s.file.Store(f)
	s.w = &segmentWriter{
		f:         f,
		indexFile: indexFile,
		timeFile:  timeFile,
		indexBuf:  bufio.NewWriterSize(indexFile, 4096),
		timeBuf:   bufio.NewWriterSize(timeFile, 4096),
		ib:        ib,
		rollBase:  rollBase,
	}
	return nil
}

// writeIndexFile replaces the file at path with b and returns it open for
// appending.
func writeIndexFile(path string, b []byte) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, ioError("create index", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, ioError("write index", err)
	}
	return f, nil
}

// saveIndexes replaces the index files of a closed segment. On failure it
// deletes them rather than leave them short, so that they are rebuilt.
func (s *segment) saveIndexes(index []offsetEntry, times []timeEntry) error {
	err := errors.Join(
		os.WriteFile(s.path(indexSuffix), encodeOffsetIndex(index), 0o644),
		os.WriteFile(s.path(timeIndexSuffix), encodeTimeIndex(times), 0o644),
	)
	if err != nil {
		os.Remove(s.path(indexSuffix))
		os.Remove(s.path(timeIndexSuffix))
	}
	return err
}

func encodeOffsetIndex(es []offsetEntry) []byte {
	b := make([]byte, len(es)*offsetEntrySize)
	for i, e := range es {
		e.put(b[i*offsetEntrySize:])
	}
	return b
}

func encodeTimeIndex(es []timeEntry) []byte {
	b := make([]byte, len(es)*timeEntrySize)
	for i, e := range es {
		e.put(b[i*timeEntrySize:])
	}
	return b
}

// closeFiles closes every file of the segment.
func (s *segment) closeFiles() error {
	var errs []error
	if s.w != nil {
		errs = append(errs, s.closeWriter())
	}
	if f := s.file.Swap(nil); f != nil {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// remove closes and deletes the segment's files, the log file first, so that
// a crash in between leaves index files without a log, which Open deletes.
func (s *segment) remove() error {
	err := s.closeFiles()
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if e := os.Remove(s.path(suffix)); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, e)
		}
	}
	return err
}

// load returns the log file and offset index of the segment, opening and
// loading them if the segment is closed and they were dropped. The caller
// holds Log.mu read-locked, so they stay valid until it unlocks.
func (s *segment) load(cfg *Config, logger *slog.Logger) (*os.File, []offsetEntry, error) {
	s.touch()
	f := s.file.Load()
	index, ok := s.index.load()
	if f != nil && ok {
		return f, index, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	f, err := s.openFile()
	if err != nil {
		return nil, nil, err
	}
	if index, ok = s.index.load(); ok {
		return f, index, nil
	}
	b, err := os.ReadFile(s.path(indexSuffix))
	if err == nil {
		index, err = decodeOffsetIndex(b, s.size.Load(), s.offsets())
	}
	if err == nil {
		err = checkIndexTail(f, index, s.size.Load(), int64(cfg.IndexIntervalBytes))
	}
	if err != nil {
		s.warn(logger, "rebuilding offset index", "reason", err)
		if index, err = s.rebuildLocked(f, cfg, logger); err != nil {
			return nil, nil, err
		}
	}
	s.index.set(index)
	return f, index, nil
}

// loadTimes returns the time index of the segment, loading it if needed, as
// load does for the offset index.
func (s *segment) loadTimes(cfg *Config, logger *slog.Logger) ([]timeEntry, error) {
	s.touch()
	if times, ok := s.times.load(); ok {
		return times, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if times, ok := s.times.load(); ok {
		return times, nil
	}
	b, err := os.ReadFile(s.path(timeIndexSuffix))
	var times []timeEntry
	if err == nil {
		times, err = decodeTimeIndex(b, s.offsets())
	}
	if err != nil {
		s.warn(logger, "rebuilding time index", "reason", err)
		f, err := s.openFile()
		if err != nil {
			return nil, err
		}
		if _, err = s.rebuildLocked(f, cfg, logger); err != nil {
			return nil, err
		}
		times, _ = s.times.load()
		return times, nil
	}
	s.times.set(times)
	return times, nil
}

// openFile returns the log file, opening it read-only if needed. The caller
// holds loadMu.
func (s *segment) openFile() (*os.File, error) {
	if f := s.file.Load(); f != nil {
		return f, nil
	}
	f, err := os.Open(s.path(logSuffix))
	if err != nil {
		return nil, fmt.Errorf("commitlog: open segment %d: %w", s.base, err)
	}
	s.file.Store(f)
	return f, nil
}

// rebuildLocked rebuilds both indexes of the closed segment from its log
// file, publishes them and saves them, best effort. The caller holds loadMu.
func (s *segment) rebuildLocked(f *os.File, cfg *Config, logger *slog.Logger) ([]offsetEntry, error) {
	sc := scanSegment(f, s.base, s.size.Load(), int64(cfg.IndexIntervalBytes), false)
	if sc.err != nil {
		return nil, sc.err
	}
	if sc.bad != nil {
		// A closed segment was checked when written; only the disk can
		// have damaged it. Index what is readable.
		s.warn(logger, "segment is damaged; indexing up to the damage", "position", sc.size, "reason", sc.bad)
	}
	times := sc.closedTimes()
	s.index.set(sc.index)
	s.times.set(times)
	if err := s.saveIndexes(sc.index, times); err != nil {
		s.warn(logger, "could not save rebuilt indexes", "err", err)
	}
	return sc.index, nil
}

// warn logs a warning about the segment; key-value pairs follow the message.
func (s *segment) warn(logger *slog.Logger, msg string, args ...any) {
	logger.Warn(msg, append([]any{"segment", s.base}, args...)...)
}

// window reads a file through a buffer: peek returns the bytes at a position,
// reading a chunk from there when they are not already buffered.
type window struct {
	f     io.ReaderAt
	limit int64 // bytes of the file that may be read
	chunk int   // how much to read at once
	buf   []byte
	off   int64 // file position of buf[0]
	n     int   // valid bytes in buf
}

// errPastLimit means a read past the window's limit: the data ends there.
var errPastLimit = errors.New("past the end of the data")

// peek returns the size bytes at file position pos, valid until the next
// call. It returns errPastLimit when they extend past the limit.
func (w *window) peek(pos int64, size int) ([]byte, error) {
	if pos >= w.off && pos+int64(size) <= w.off+int64(w.n) {
		i := int(pos - w.off)
		return w.buf[i : i+size], nil
	}
	if pos < 0 || pos+int64(size) > w.limit {
		return nil, errPastLimit
	}
	want := int(min(int64(max(size, w.chunk)), w.limit-pos))
	if cap(w.buf) < want {
		w.buf = make([]byte, want)
	}
	w.buf = w.buf[:want]
	n, err := w.f.ReadAt(w.buf, pos)
	if n < size {
		w.n = 0
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: segment file shorter than its data (%d bytes at %d)", ErrCorrupt, size, pos)
		}
		return nil, err
	}
	w.off, w.n = pos, n
	return w.buf[:size], nil
}

// scanResult is what scanSegment found in a log file.
type scanResult struct {
	index   []offsetEntry
	times   []timeEntry
	ib      indexBuilder
	size    int64 // bytes of good batches from the start
	next    int64 // offset after the last good batch
	maxTs   int64 // largest max timestamp of the good batches
	firstTs int64 // max timestamp of the first batch, math.MinInt64 if none
	batches int
	epoch   int32 // leader epoch of the last good batch, -1 if none
	bad     error // why the scan stopped before size, nil if it did not
	err     error // an I/O error: nothing is known
}

// scanSegment walks the batches of the log file f from its start up to size
// bytes, building the segment's indexes with the given index interval. With
// verify, it checks every batch as recovery does (CRC, offsets following on
// from base); without, only the headers, as an index rebuild does. It stops
// at the first bad batch and says why in bad.
func scanSegment(f io.ReaderAt, base, size, interval int64, verify bool) scanResult {
	r := scanResult{next: base, maxTs: math.MinInt64, firstTs: math.MinInt64, epoch: -1, ib: newIndexBuilder()}
	w := window{f: f, limit: size, chunk: 1 << 20}
	pos := int64(0)
	for pos < size {
		hb, err := w.peek(pos, batch.HeaderSize)
		if err != nil {
			if errors.Is(err, errPastLimit) {
				r.bad = fmt.Errorf("%w: torn batch header: %d bytes at the end", batch.ErrTruncated, size-pos)
			} else {
				r.err = err
			}
			break
		}
		h, err := batch.ParseHeader(hb)
		if err != nil {
			r.bad = err
			break
		}
		if h.BaseOffset != r.next {
			r.bad = fmt.Errorf("batch has base offset %d, expected %d", h.BaseOffset, r.next)
			break
		}
		if int64(h.Size()) > size-pos {
			r.bad = fmt.Errorf("%w: torn batch: %d of %d bytes", batch.ErrTruncated, size-pos, h.Size())
			break
		}
		if h.NextOffset()-base > math.MaxUint32 || pos+int64(h.Size()) > math.MaxUint32 {
			r.bad = fmt.Errorf("batch at offset %d lies beyond what a segment can address", h.BaseOffset)
			break
		}
		if verify {
			b, err := w.peek(pos, h.Size())
			if err != nil {
				r.err = err
				break
			}
			if _, err := batch.Validate(b); err != nil {
				r.bad = err
				break
			}
		}
		oe, addOffset, te, addTime := r.ib.add(uint32(h.BaseOffset-base), pos, h.MaxTimestamp, interval)
		if addOffset {
			r.index = append(r.index, oe)
		}
		if addTime {
			r.times = append(r.times, te)
		}
		if r.batches == 0 {
			r.firstTs = h.MaxTimestamp
		}
		r.batches++
		r.epoch = h.LeaderEpoch
		r.maxTs = max(r.maxTs, h.MaxTimestamp)
		r.next = h.NextOffset()
		pos += int64(h.Size())
		r.size = pos
	}
	return r
}

// closedTimes returns the time index of a closed segment: the scanned entries
// plus the last one that closing the segment writes.
func (r *scanResult) closedTimes() []timeEntry {
	ib := r.ib
	if te, ok := ib.finish(); ok {
		return append(r.times, te)
	}
	return r.times
}

// errIndexMismatch means an offset index entry does not point at the batch
// it names: the index must be rebuilt.
var errIndexMismatch = errors.New("offset index does not match the log")

// read returns the whole batches of the segment from the one holding offset,
// up to maxBytes in all but at least one batch, as Log.Read documents. It
// walks the batch headers from the index entry below offset, reading chunks
// of slack bytes, then reads the batches into buf[0:] if they fit.
//
// It returns only batches below end, the log end offset the caller read:
// Append grows the segment's size before it publishes the new end offset,
// so the segment may already hold batches that readers must not see yet.
func (s *segment) read(f *os.File, index []offsetEntry, offset, end int64, maxBytes int, buf []byte, slack int) ([]byte, error) {
	limit := s.size.Load()
	rel, pos := lookupOffset(index, uint32(offset-s.base))
	buf = buf[:cap(buf)]
	if len(buf) >= batch.HeaderSize {
		slack = min(slack, len(buf)) // read less rather than allocate
	}
	w := window{f: f, limit: limit, chunk: slack, buf: buf}
	var h batch.Header
	for first := true; ; first = false {
		hb, err := w.peek(pos, batch.HeaderSize)
		if err != nil {
			return nil, s.readError(pos, err)
		}
		if h, err = batch.ParseHeader(hb); err != nil {
			if first {
				return nil, fmt.Errorf("%w: %w", errIndexMismatch, err)
			}
			return nil, s.readError(pos, err)
		}
		if first && h.BaseOffset != s.base+int64(rel) {
			return nil, fmt.Errorf("%w: batch with base offset %d at byte %d, index says %d", errIndexMismatch, h.BaseOffset, pos, s.base+int64(rel))
		}
		if h.BaseOffset > offset {
			return nil, s.readError(pos, fmt.Errorf("%w: batch with base offset %d where offset %d was expected", batch.ErrCorrupt, h.BaseOffset, offset))
		}
		if h.NextOffset() > offset {
			break
		}
		pos += int64(h.Size())
	}
	want := max(maxBytes, 0)
	if len(buf) >= batch.HeaderSize {
		want = min(want, len(buf)) // read less rather than allocate
	}
	want = int(min(limit-pos, int64(max(h.Size(), want))))
	d := w.buf[:cap(w.buf)]
	if len(d) < want {
		d = make([]byte, want)
	}
	d = d[:want]
	if n, err := f.ReadAt(d, pos); n < want {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: segment file shorter than its data", ErrCorrupt)
		}
		return nil, s.readError(pos, err)
	}
	q := h.Size()
	for q+batch.HeaderSize <= len(d) {
		h, err := batch.ParseHeader(d[q:])
		if err != nil || q+h.Size() > len(d) || q+h.Size() > maxBytes || h.BaseOffset >= end {
			break
		}
		q += h.Size()
	}
	return d[:q], nil
}

func (s *segment) readError(pos int64, err error) error {
	if errors.Is(err, errPastLimit) || errors.Is(err, batch.ErrTruncated) || errors.Is(err, batch.ErrCorrupt) || errors.Is(err, batch.ErrBadMagic) {
		return fmt.Errorf("%w: segment %d at byte %d: %w", ErrCorrupt, s.base, pos, err)
	}
	return fmt.Errorf("commitlog: read segment %d: %w", s.base, err)
}

// offsetForTimestamp returns the base offset of the first batch of the
// segment whose max timestamp is at least ts, or -1 if there is none.
func (s *segment) offsetForTimestamp(f *os.File, index []offsetEntry, times []timeEntry, ts int64) (int64, error) {
	limit := s.size.Load()
	_, pos := lookupOffset(index, lookupTime(times, ts))
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
		if h.MaxTimestamp >= ts {
			return h.BaseOffset, nil
		}
		pos += int64(h.Size())
	}
	return -1, nil
}
