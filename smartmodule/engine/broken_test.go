package engine_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

func TestCompileRefusesWhatIsNotASmartModule(t *testing.T) {
	e := shared(t)
	tests := []struct {
		name string
		wasm []byte
		is   error
		want string
	}{
		{"not wasm", []byte("(module)"), abi.ErrNotWasm, "does not start with \\0asm"},
		{"wasm that does not compile", corruptCode(t, guest(t, "filter")), abi.ErrNotWasm, "compile"},
		{"no known export", guest(t, "noexport"), abi.ErrNoKind, "it exports none of spate_v1_filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := e.Compile(ctx, tt.wasm)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile: %v, %v; want an error wrapping %v containing %q", m, err, tt.is, tt.want)
			}
			if _, ok := e.Cached(engine.Digest(tt.wasm)); ok {
				t.Fatal("a module that failed to compile is cached")
			}
		})
	}
}

// corruptCode returns a copy of wasm with invalid opcodes in the middle of
// its code section, which abi.Inspect does not read.
func corruptCode(t *testing.T, wasm []byte) []byte {
	t.Helper()
	b := append([]byte(nil), wasm...)
	uleb := func(p int) (uint64, int) {
		var v uint64
		for shift := 0; ; shift += 7 {
			v |= uint64(b[p]&0x7f) << shift
			if b[p] < 0x80 {
				return v, p + 1
			}
			p++
		}
	}
	for p := 8; p < len(b); {
		id := b[p]
		size, body := uleb(p + 1)
		if id == 10 { // the code section
			mid := body + int(size)/2
			for i := range 256 {
				b[mid+i] = 0xff
			}
			return b
		}
		p = body + int(size)
	}
	t.Fatal("no code section")
	return nil
}

// broken is a module that fails the chain running it, and the Error it
// must fail it with.
type broken struct {
	name    string
	module  string
	params  []string
	in      []batch.Record
	message string // Error.Message starts with it
	offset  int64  // Error.Offset
	is      error  // errors.Is(err, is) when set
	roomy   bool   // run on the engine with a long time limit
}

func TestBrokenModulesEndOnlyTheirChain(t *testing.T) {
	e := newEngine(t, engine.Config{CallTimeout: 3 * time.Second, MemoryLimitBytes: 32 << 20})
	// The memory hog runs on an engine with a long time limit, so that it
	// reaches its memory limit first even on a busy machine.
	roomy := newEngine(t, engine.Config{CallTimeout: time.Minute, MemoryLimitBytes: 32 << 20})
	tests := []broken{
		{name: "Go panic", module: "trap", in: records(7, "a", "crash", "b"),
			message: "panic: the record said crash", offset: -1},
		{name: "nil pointer dereference", module: "trap", params: []string{"mode=nil"}, in: records(7, "a", "crash"),
			message: "panic: runtime error: invalid memory address or nil pointer dereference", offset: -1},
		{name: "endless loop", module: "loop", in: records(0, "a"),
			message: "call took longer than 3s (endless loop?)", offset: -1},
		{name: "allocates without end", module: "hog", in: records(0, "a"), roomy: true,
			message: "out of memory (limit 32 MiB)", offset: -1},
		{name: "its own error", module: "evenonly", in: records(40, "2", "two"),
			message: `strconv.Atoi: parsing "two": invalid syntax`, offset: 41},
		{name: "garbage result", module: "malformed", params: []string{"mode=garbage"}, in: records(0, "a"),
			message: "malformed result: abi: malformed buffer: status 7", offset: -1, is: abi.ErrMalformed},
		{name: "truncated result", module: "malformed", params: []string{"mode=truncated"}, in: records(0, "a"),
			message: "malformed result: abi: malformed buffer: 3 outputs in 0 bytes", offset: -1, is: abi.ErrMalformed},
		{name: "result past the end of memory", module: "malformed", params: []string{"mode=pastmemory"}, in: records(0, "a"),
			message: "malformed result: 65536 bytes at 4294901760 lie past the end of memory", offset: -1, is: abi.ErrMalformed},
		{name: "filter emitting a changed record", module: "malformed", params: []string{"mode=changed"}, in: records(3, "a"),
			message: "broke the ABI: emitted a changed record (a filter only keeps or drops records", offset: 3, is: abi.ErrMalformed},
		{name: "indexes going back", module: "malformed", params: []string{"mode=decreasing"}, in: records(0, "a", "b"),
			message: "broke the ABI: output 1 names record 0 after record 1", offset: -1, is: abi.ErrMalformed},
		{name: "index past the input", module: "malformed", params: []string{"mode=outofrange"}, in: records(0, "a"),
			message: "broke the ABI: output 0 names record 1048576 of a call with 1", offset: -1, is: abi.ErrMalformed},
		{name: "map returning two outputs", module: "twomaps", in: records(0, "a", "b"),
			message: "broke the ABI: returned 4 outputs for 2 records (a map emits exactly one per record)", offset: -1, is: abi.ErrMalformed},
	}
	// A healthy chain on the same engine goes on through all of it.
	healthy := chain(t, e, "count")
	var sum int
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e
			if tt.roomy {
				e = roomy
			}
			c := chain(t, e, tt.module, tt.params...)
			prefix := records(100, "kept")
			out, err := c.Process(ctx, tt.in, prefix)
			if len(out) != 1 || &out[0] != &prefix[0] {
				t.Errorf("Process returned out %s; want it as it was", show(out))
			}
			var me *engine.Error
			if !errors.As(err, &me) {
				t.Fatalf("Process: %v (%T), want an *engine.Error", err, err)
			}
			t.Logf("error: %v", err)
			if me.Module != tt.module+".wasm" || me.Kind != compile(t, e, tt.module).Kind() {
				t.Errorf("error names module %q (%s)", me.Module, me.Kind)
			}
			if !strings.HasPrefix(me.Message, tt.message) {
				t.Errorf("message %q\nwant it to start with %q", me.Message, tt.message)
			}
			if me.Offset != tt.offset || me.FirstOffset != tt.in[0].Offset || me.LastOffset != tt.in[len(tt.in)-1].Offset {
				t.Errorf("offset %d in %d to %d, want %d in %d to %d", me.Offset, me.FirstOffset, me.LastOffset, tt.offset, tt.in[0].Offset, tt.in[len(tt.in)-1].Offset)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error does not wrap %v", tt.is)
			}
			// The chain is dead: it says so again, without calling.
			if _, again := c.Process(ctx, records(0, "a"), nil); again != err {
				t.Errorf("second Process: %v, want the same error", again)
			}
			sum++
			out, err = healthy.Process(ctx, records(int64(sum), "1"), nil)
			if err != nil || len(out) != 1 || string(out[0].Value) != string(rune('0'+sum%10)) && sum < 10 {
				t.Fatalf("healthy chain after a broken one: %s, %v", show(out), err)
			}
		})
	}
}

func TestErrorReadsWell(t *testing.T) {
	e := newEngine(t, engine.Config{CallTimeout: 500 * time.Millisecond})
	for _, tt := range []struct {
		module string
		params []string
		in     []batch.Record
		want   string
	}{
		{"evenonly", nil, records(1234, "x"), `smartmodule evenonly.wasm (filter-map) failed at offset 1234: strconv.Atoi: parsing "x": invalid syntax`},
		{"loop", nil, records(0, "a", "b"), "smartmodule loop.wasm (filter) failed in the batch of offsets 0 to 1: call took longer than 500ms (endless loop?)"},
		{"trap", nil, records(5, "crash"), "smartmodule trap.wasm (filter) failed at offset 5: panic: the record said crash; at main.filter.func1 (main.go:"},
	} {
		c := chain(t, e, tt.module, tt.params...)
		_, err := c.Process(ctx, tt.in, nil)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("got  %v\nwant %s", err, tt.want)
		}
	}
}

func TestTrapKeepsTheGuestsStderr(t *testing.T) {
	c := chain(t, shared(t), "trap")
	_, err := c.Process(ctx, records(0, "crash"), nil)
	var me *engine.Error
	if !errors.As(err, &me) || !strings.Contains(me.Stderr, "goroutine") || !strings.Contains(me.Stderr, "panic: the record said crash") {
		t.Fatalf("Stderr %q, want the Go panic and its stack", me.Stderr)
	}
}

func TestBrokenChainDoesNotStopTheSameModulesOtherChains(t *testing.T) {
	e := shared(t)
	a, b := chain(t, e, "trap"), chain(t, e, "trap")
	if _, err := a.Process(ctx, records(0, "crash"), nil); err == nil {
		t.Fatal("no error from the crash")
	}
	out, err := b.Process(ctx, records(0, "fine"), nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("the other chain of the module: %s, %v", show(out), err)
	}
}

func TestCanceledContextStopsTheCall(t *testing.T) {
	e := newEngine(t, engine.Config{CallTimeout: time.Minute})
	c := chain(t, e, "loop")
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	_, err := c.Process(cctx, records(0, "a"), nil)
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Process: %v, want an error wrapping context.Canceled", err)
	}
}

func TestConcurrentChains(t *testing.T) {
	e := shared(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.NewChain(ctx, spec(t, e, "count"))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for j := range 50 {
				out, err := c.Process(ctx, records(int64(j), "1"), nil)
				if err != nil || string(out[0].Value) != strings.TrimSpace(strings.Repeat(" ", 0)+itoa(j+1)) {
					errs <- errors.Join(err, errors.New("chain "+itoa(i)+": got "+show(out)))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
