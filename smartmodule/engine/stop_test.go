package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/spatehq/spate/smartmodule/engine"
)

// The engine's own time limit (the stop flag) stops an endless loop about
// when the limit passes, and the chain stays dead.
func TestStopFlagEndsAnEndlessLoopOnTime(t *testing.T) {
	e := newEngine(t, engine.Config{CallTimeout: 200 * time.Millisecond})
	c := chain(t, e, "loop")
	start := time.Now()
	_, err := c.Process(ctx, records(0, "a"), nil)
	took := time.Since(start)
	var me *engine.Error
	if !errors.As(err, &me) || me.Message != "call took longer than 200ms (endless loop?)" {
		t.Fatalf("Process: %v", err)
	}
	if took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("stopped after %s", took)
	}
	if _, again := c.Process(ctx, records(1, "b"), nil); again != err {
		t.Fatalf("the chain goes on: %v", again)
	}
	// Many short calls on one instance: the reused timer never stops one.
	ok := chain(t, e, "count")
	for i := range 300 {
		if _, err := ok.Process(ctx, records(int64(i), "1"), nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// Closing the engine stops a call still running.
func TestCloseStopsARunningCall(t *testing.T) {
	e, err := engine.New(ctx, engine.Config{CacheDir: compilationCache(t), CallTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c := chain(t, e, "loop")
	time.AfterFunc(100*time.Millisecond, func() { e.Close(ctx) })
	start := time.Now()
	_, err = c.Process(ctx, records(0, "a"), nil)
	if !errors.Is(err, engine.ErrClosed) || time.Since(start) > 10*time.Second {
		t.Fatalf("Process: %v after %s, want ErrClosed at once", err, time.Since(start))
	}
}
