package commitlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// recoveryPointFile is the name of the file holding the recovery point.
const recoveryPointFile = "recovery-point"

// Sync returns once every batch up to and including offset is on disk: the
// segment holding it was fdatasynced, and the folder too if the segment is
// new. It is the acknowledgement point of Durability Fsync.
//
// Syncs are grouped: one goroutine fsyncs, and every Sync waiting when an
// fsync starts is served by it, so N concurrent Syncs (or the pipelined
// appends of one producer) cost far fewer than N fsyncs.
//
// Sync fails with ErrOffsetOutOfRange for an offset not yet appended, with
// ctx's error when ctx is done first, with ErrClosed when the log is closed
// before offset was fsynced, and with an error wrapping ErrFailed when an
// fsync failed: then nothing after the last good fsync is known to be on
// disk, and every later Sync and Append fails the same way until the log is
// reopened.
func (l *Log) Sync(ctx context.Context, offset int64) error {
	for {
		if offset < l.durable.Load() {
			return nil
		}
		if p := l.failure.Load(); p != nil {
			return *p
		}
		l.syncMu.Lock()
		closed, done := l.syncClosed, l.roundDone
		l.syncMu.Unlock()
		// Check again: a round may have ended before we took done.
		if offset < l.durable.Load() {
			return nil
		}
		if closed {
			return ErrClosed
		}
		if end := l.end.Load(); offset >= end {
			return fmt.Errorf("%w: sync offset %d, but the end offset is %d", ErrOffsetOutOfRange, offset, end)
		}
		l.kickSyncer()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *Log) kickSyncer() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// syncer is the state of the syncer goroutine.
type syncer struct {
	f        *os.File // a read-only handle on the active segment's log file
	base     int64    // the base offset of f's segment
	pending  []*segment
	recovery int64  // the recovery point last written
	resets   uint64 // Log.resets when f, base and recovery were set
}

// syncLoop is the syncer goroutine: it runs an fsync round each time it is
// kicked, until stop is closed. Close then runs the last round.
func (l *Log) syncLoop(recovery int64) {
	defer l.wg.Done()
	st := syncer{base: -1, recovery: recovery}
	defer func() {
		if st.f != nil {
			st.f.Close()
		}
	}()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		}
		l.syncRound(&st)
	}
}

// syncRound fsyncs what was written before it started: the rolled segments
// not yet fsynced (log and indexes), the active segment's log, and the folder
// if segments were created. Then it publishes the durable offset, wakes the
// waiting Syncs, and advances the recovery point.
func (l *Log) syncRound(st *syncer) {
	// Read end with syncMu held: a roll, which needs syncMu, cannot run
	// in between, so the bytes below target are in st's active segment or
	// in unsynced; and target belongs to the same generation as resets.
	l.syncMu.Lock()
	target := l.end.Load()
	resets := l.resets
	if resets != st.resets {
		// A Reset deleted the segments: st.f is an unlinked file, and
		// Reset wrote the recovery point 0.
		if st.f != nil {
			st.f.Close()
			st.f = nil
		}
		st.base, st.recovery, st.resets = -1, 0, resets
	}
	active := l.syncActive
	st.pending = append(st.pending[:0], l.unsynced...)
	dir := l.dirDirty
	l.dirDirty = false
	l.syncMu.Unlock()

	var errs []error
	for _, s := range st.pending {
		if err := syncSegmentFiles(s); err != nil {
			errs = append(errs, err)
		}
	}
	if target > l.durable.Load() || len(st.pending) > 0 {
		if st.base != active.base {
			if st.f != nil {
				st.f.Close()
				st.f = nil
			}
			// A segment that retention deleted meanwhile needs no fsync.
			f, err := os.Open(active.path(logSuffix))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			} else if err == nil {
				st.f, st.base = f, active.base
			}
		}
		if st.f != nil {
			errs = append(errs, fdatasync(st.f))
			l.fsyncs.Add(1)
		}
	}
	if dir {
		errs = append(errs, syncDir(l.dir))
	}
	err := errors.Join(errs...)

	l.recoveryMu.Lock()
	defer l.recoveryMu.Unlock()
	l.syncMu.Lock()
	if l.resets != resets {
		// A Reset ran during the round: what it fsynced is gone, and
		// target and recovery would be stale. Reset woke the waiters.
		l.syncMu.Unlock()
		clear(st.pending)
		return
	}
	var recovery int64
	if err != nil {
		l.dirDirty = l.dirDirty || dir
	} else {
		l.unsynced = l.unsynced[len(st.pending):]
		if target > l.durable.Load() {
			l.durable.Store(target)
		}
		recovery = active.base
		if len(l.unsynced) > 0 {
			recovery = l.unsynced[0].base
		}
	}
	close(l.roundDone)
	l.roundDone = make(chan struct{})
	l.syncMu.Unlock()
	clear(st.pending)

	if err != nil {
		// The kernel may have dropped the dirty pages that failed to
		// write: retrying the fsync could succeed without the data.
		l.fail(fmt.Errorf("%w: fsync: %w", ErrFailed, err))
		return
	}
	if recovery > st.recovery {
		if err := writeRecoveryPoint(l.dir, recovery); err != nil {
			l.logger.Warn("could not write the recovery point; the next open scans more", "err", err)
			return
		}
		st.recovery = recovery
	}
}

// finalSync is the last fsync round, run by Close after the syncer stopped,
// with the active segment's index files flushed and closed.
func (l *Log) finalSync(active *segment) error {
	l.syncMu.Lock()
	pending := append(l.unsynced, active)
	l.unsynced = nil
	dir := l.dirDirty
	l.syncMu.Unlock()
	var errs []error
	for _, s := range pending {
		errs = append(errs, syncSegmentFiles(s))
	}
	l.fsyncs.Add(uint64(len(pending)))
	if dir {
		errs = append(errs, syncDir(l.dir))
	}
	if err := errors.Join(errs...); err != nil {
		err = fmt.Errorf("%w: fsync: %w", ErrFailed, err)
		l.fail(err)
		return err
	}
	l.durable.Store(l.end.Load())
	if l.failure.Load() != nil {
		// An earlier fsync failed: what it covered may be lost, so the
		// next Open must scan everything that was not known durable.
		return nil
	}
	return writeRecoveryPoint(l.dir, active.base)
}

// syncSegmentFiles fsyncs the log and index files of s, through new handles:
// fsync flushes the file, whichever handle it goes through. A segment that
// retention deleted meanwhile needs no fsync.
func syncSegmentFiles(s *segment) error {
	for _, suffix := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		f, err := os.Open(s.path(suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = fdatasync(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncDir fsyncs the folder dir, making the creation, renaming and deletion
// of its files durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync folder: %w", err)
	}
	return nil
}

// writeRecoveryPoint durably replaces the recovery-point file of dir with
// offset.
func writeRecoveryPoint(dir string, offset int64) error {
	path := filepath.Join(dir, recoveryPointFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return ioError("write recovery point", err)
	}
	_, err = f.WriteString(strconv.FormatInt(offset, 10) + "\n")
	if err == nil {
		err = fdatasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return ioError("write recovery point", err)
	}
	return nil
}

// readRecoveryPoint returns the recovery point of dir, or -1 when the file is
// missing or unreadable: then every segment must be scanned.
func readRecoveryPoint(dir string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, recoveryPointFile))
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}
