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
// The background loop calls it every Config.RetentionCheckInterval; tests
// and tools call it with a chosen now. Reads running concurrently finish
// first; a read that then asks for a deleted offset fails with
// ErrOffsetOutOfRange.
func (l *Log) EnforceRetention(now time.Time) (deleted int, err error) {
	cfg := l.cfg.Load()
	cutoff := now.Add(-cfg.RetentionTime).UnixMilli()

	l.appendMu.Lock()
	if l.appendClosed {
		l.appendMu.Unlock()
		return 0, ErrClosed
	}
	if s := l.active; l.failure.Load() == nil && s.size.Load() > 0 &&
		(now.Sub(s.w.rollBase) >= cfg.SegmentAge || cfg.RetentionTime > 0 && s.maxTs.Load() < cutoff) {
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
	n := 0
	for ; n < len(l.segs)-1; n++ {
		s := l.segs[n]
		expired := cfg.RetentionTime > 0 && s.maxTs.Load() < cutoff
		tooLarge := cfg.RetentionBytes > 0 && size > cfg.RetentionBytes
		if !expired && !tooLarge {
			break
		}
		size -= s.size.Load()
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
