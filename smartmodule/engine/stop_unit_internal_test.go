package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// fakeFlag is a stop flag outside any module.
type fakeFlag struct {
	api.MutableGlobal // for the methods wazero reserves; never called
	v                 atomic.Uint64
}

func (f *fakeFlag) Set(v uint64) { f.v.Store(v) }
func (f *fakeFlag) Get() uint64  { return f.v.Load() }

func waitFlag(t *testing.T, f *fakeFlag) {
	t.Helper()
	for start := time.Now(); f.Get() != 1; time.Sleep(time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the flag was never set")
		}
	}
}

func TestStopper(t *testing.T) {
	ctx := context.Background()
	trap := errors.New("wasm error: unreachable")
	f := &fakeFlag{}
	s := newStopper(f, 20*time.Millisecond)
	defer s.close()

	// A call that ends in time: the flag stays down, even when the timer
	// would have fired since.
	s.arm(ctx)
	if c := s.disarm(nil); c != notStopped || f.Get() != 0 {
		t.Fatalf("quick call: cause %d, flag %d", c, f.Get())
	}
	time.Sleep(40 * time.Millisecond)
	if f.Get() != 0 {
		t.Fatal("a disarmed timer set the flag")
	}

	// A call past the limit.
	s.arm(ctx)
	waitFlag(t, f)
	if c := s.disarm(trap); c != stoppedTimeout {
		t.Fatalf("cause %d, want the time limit", c)
	}

	// A call that returns as the flag goes up: the flag is cleared and
	// the call counts as done.
	f.Set(0)
	s.arm(ctx)
	waitFlag(t, f)
	if c := s.disarm(nil); c != notStopped || f.Get() != 0 {
		t.Fatalf("call done at the limit: cause %d, flag %d", c, f.Get())
	}

	// The caller's context, done during the call or before.
	cctx, cancel := context.WithCancel(ctx)
	s.timeout = time.Hour
	s.arm(cctx)
	cancel()
	waitFlag(t, f)
	if c := s.disarm(trap); c != stoppedCanceled {
		t.Fatalf("cause %d, want canceled", c)
	}
	f.Set(0)
	s.arm(cctx)
	waitFlag(t, f)
	if c := s.disarm(trap); c != stoppedCanceled {
		t.Fatalf("cause %d, want canceled", c)
	}
}
