package engine

import (
	"context"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// stopCause says why the engine stopped a call: it did not, the time limit
// passed, or the caller's context was done.
type stopCause uint8

const (
	notStopped stopCause = iota
	stoppedTimeout
	stoppedCanceled
	stoppedClosed // the engine closed
)

// stopper enforces the time limit of the calls into an instance of a
// rewritten module (see wasmrewrite): the guest checks its stop flag every
// wasmrewrite.FuelPerCheck loop iterations, and traps with "unreachable"
// once it is 1. While a
// call runs, a timer (and the caller's context) set the flag. Its
// allocations (the timer) are made once per instance; arming costs a lock,
// a clock read and a timer reset per call.
type stopper struct {
	flag    api.MutableGlobal
	timeout time.Duration
	timer   *time.Timer
	ctxStop func() bool // stops the context.AfterFunc of the current call

	mu     sync.Mutex // guards what follows
	armed  bool
	closed bool   // by stopNow: the flag stays up
	gen    uint64 // counts the calls, for a late context callback
	start  time.Time
	cause  stopCause
}

func newStopper(flag api.MutableGlobal, timeout time.Duration) *stopper {
	s := &stopper{flag: flag, timeout: timeout}
	s.timer = time.AfterFunc(time.Hour, s.onTimeout)
	s.timer.Stop()
	return s
}

// arm starts the limit of a call: from now on the timer, or ctx being done,
// stops the guest.
func (s *stopper) arm(ctx context.Context) {
	s.mu.Lock()
	if !s.closed {
		s.cause = notStopped
	}
	s.armed, s.start = true, time.Now()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	s.timer.Reset(s.timeout)
	if ctx.Done() != nil {
		s.ctxStop = context.AfterFunc(ctx, func() { s.onCancel(gen) })
	}
}

// disarm ends the limit of a call and returns why the guest was stopped,
// if it was. When the flag was set but the call returned anyway (it ended
// as the limit passed), the flag is cleared: the instance goes on.
func (s *stopper) disarm(callErr error) stopCause {
	s.timer.Stop()
	if s.ctxStop != nil {
		s.ctxStop()
		s.ctxStop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = false
	cause := s.cause
	if cause != notStopped && callErr == nil && !s.closed {
		s.flag.Set(0)
		cause = notStopped
	}
	return cause
}

func (s *stopper) onTimeout() {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A timer that fires late for an earlier call finds the current one
	// younger than the limit (half of it, against clock jitter).
	if s.armed && s.cause == notStopped && time.Since(s.start) >= s.timeout/2 {
		s.cause = stoppedTimeout
		s.flag.Set(1)
	}
}

// stopNow stops the guest, in a call or at its next one, for good.
func (s *stopper) stopNow(cause stopCause) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.cause = cause
	s.flag.Set(1)
}

func (s *stopper) onCancel(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.armed && s.gen == gen && s.cause == notStopped {
		s.cause = stoppedCanceled
		s.flag.Set(1)
	}
}

// close releases the timer.
func (s *stopper) close() { s.timer.Stop() }
