package commitlog

import (
	"errors"
	"fmt"
	"time"
)

// EnforceRetention applies the segment age and the retention settings as of
// now, and returns the number of segments deleted. It first rolls the active
// segment if its first batch was written more than Config.SegmentAge before
// now, or if Config.RetentionTime is set and all its records are older than
// that. Then it deletes closed segments from the oldest: while the newest
// record of the oldest is older than RetentionTime, or while the log is
// larger than RetentionBytes. The active segment is never deleted.
//
// With Config.Tiering, the limits are the local ones (LocalRetentionTime,
// LocalRetentionBytes, capped by the whole log's), and a segment is deleted
// only if the DeletionGate allows it: deletion stops at the first segment it
// does not, and what is kept that way is reported by Info
// (RetentionHeldSegments, RetentionHeldBytes) until it is uploaded.
//
// The background loop calls it every Config.RetentionCheckInterval; tests
// and tools call it with a chosen now. Reads running concurrently finish
// first; a read that then asks for a deleted offset fails with
// ErrOffsetOutOfRange.
func (l *Log) EnforceRetention(now time.Time) (deleted int, err error) {
	cfg := l.cfg.Load()
	retTime, retBytes := cfg.localRetention()
	cutoff := now.Add(-retTime).UnixMilli()

	l.appendMu.Lock()
	if l.appendClosed {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	if s := l.active; l.failure.Load() == nil && s.size.Load() > 0 &&
		(now.Sub(s.w.rollBase) >= cfg.SegmentAge || retTime > 0 && s.maxTs.Load() < cutoff) {
		if err := l.roll(now); err != nil {
			l.appendMu.Unlock()
			return 0, fmt.Errorf("commitlog: roll aged segment: %w", err)
		}
	}
	l.appendMu.Unlock()

	l.deleteMu.Lock()
	defer l.deleteMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	var size int64
	for _, s := range l.segs {
		size += s.size.Load()
	}
	var gate DeletionGate
	if g := l.gate.Load(); g != nil {
		gate = *g
	}
	n := 0
	var held heldState
	for i := 0; i < len(l.segs)-1; i++ {
		s := l.segs[i]
		expired := retTime > 0 && s.maxTs.Load() < cutoff
		tooLarge := retBytes > 0 && size > retBytes
		if !expired && !tooLarge {
			break
		}
		size -= s.size.Load()
		if cfg.Tiering && (held.segments > 0 || gate == nil || !gate(s.base, s.next.Load()-1)) {
			// Not uploaded yet: keep it, and every later one, which must
			// stay contiguous with it.
			held.segments++
			held.bytes += s.size.Load()
			continue
		}
		n++
	}
	if prev := l.held.Load(); held.segments > 0 || prev != nil {
		if held.segments == 0 {
			l.held.Store(nil)
			l.logger.Info("local retention no longer holds segments for upload")
		} else {
			l.held.Store(&held)
			if prev == nil {
				l.logger.Warn("local retention is holding segments until they are uploaded",
					"segments", held.segments, "bytes", held.bytes, "first", l.segs[n].base)
			}
		}
	}
	victims := l.segs[:n:n]
	if n > 0 {
		l.segs = append([]*segment(nil), l.segs[n:]...)
		l.start.Store(l.segs[0].base)
	}
	l.mu.Unlock()

	var errs []error
	for _, s := range victims {
		l.logger.Info("deleting segment", "segment", s.base, "next", s.next.Load(), "size", s.size.Load())
		if err := s.remove(); err != nil {
			errs = append(errs, fmt.Errorf("commitlog: delete segment %d: %w", s.base, err))
		}
	}
	return len(victims), errors.Join(errs...)
}

// retentionLoop is the retention goroutine: it enforces retention every
// Config.RetentionCheckInterval, and at once when the config changes, until
// stop is closed.
func (l *Log) retentionLoop() {
	defer l.wg.Done()
	interval := l.cfg.Load().RetentionCheckInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		case <-l.configChanged:
			if iv := l.cfg.Load().RetentionCheckInterval; iv != interval {
				interval = iv
				t.Reset(iv)
			}
		}
		if _, err := l.EnforceRetention(time.Now()); err != nil && !errors.Is(err, ErrClosed) {
			l.logger.Error("enforce retention", "err", err)
		}
		l.evictIdle()
	}
}

// evictIdle closes the log files and drops the indexes of closed segments
// that no read used since the last call, so that a log of thousands of
// segments holds open only those in use.
func (l *Log) evictIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.used.Swap(false) {
			continue
		}
		if f := s.file.Swap(nil); f != nil {
			f.Close()
		}
		s.index.drop()
		s.times.drop()
	}
}
