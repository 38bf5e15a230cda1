package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/wasmrewrite"
)

// stderrTail is how much of a call's stderr and stdout an instance keeps.
const stderrTail = 8 << 10

// tail keeps the last bytes written to it, up to stderrTail.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*stderrTail {
		t.buf = t.buf[:copy(t.buf, t.buf[len(t.buf)-stderrTail:])]
	}
	return len(p), nil
}

func (t *tail) String() string {
	if len(t.buf) > stderrTail {
		return string(t.buf[len(t.buf)-stderrTail:])
	}
	return string(t.buf)
}

func (t *tail) reset() { t.buf = t.buf[:0] }

// instance is one instantiation of a module, for one chain.
type instance struct {
	e      *Engine
	name   string
	kind   abi.Kind
	mod    api.Module
	mem    api.Memory
	alloc  api.Function
	fn     api.Function
	stderr tail
	stack  []uint64
	// stop enforces the time limit of a rewritten module; nil for a
	// module of the fallback runtime, whose calls run under a context
	// with the limit as deadline.
	stop *stopper
}

// failure is what went wrong in a call, before the stage names the
// records: the Error fields but the module, kind and offsets.
type failure struct {
	index   uint32 // the input record the module named, or abi.NoRecord
	message string
	stderr  string
	err     error
}

func (f *failure) Error() string { return f.message }

// instantiate instantiates m and runs _initialize.
func (e *Engine) instantiate(ctx context.Context, m *Module, name string) (*instance, *failure) {
	in := &instance{e: e, name: name, kind: m.kind, stack: make([]uint64, 2)}
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize runs below, under the time limit
		WithStderr(&in.stderr).
		WithStdout(&in.stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	callCtx, cancel := context.WithTimeout(ctx, e.cfg.CallTimeout)
	defer cancel()
	mod, err := m.rt.InstantiateModule(callCtx, m.compiled, cfg)
	if err != nil {
		return nil, in.classify(ctx, err, notStopped)
	}
	in.mod = mod
	in.mem = mod.ExportedMemory(abi.ExportMemory)
	in.alloc = mod.ExportedFunction(abi.ExportAlloc)
	in.fn = mod.ExportedFunction(m.kind.Export())
	if in.mem == nil || in.alloc == nil || in.fn == nil {
		mod.Close(ctx)
		return nil, &failure{index: abi.NoRecord, message: "instantiated module lacks " + abi.ExportMemory + ", " + abi.ExportAlloc + " or " + m.kind.Export()}
	}
	if m.stoppable {
		flag, ok := mod.ExportedGlobal(wasmrewrite.StopExport).(api.MutableGlobal)
		if !ok {
			mod.Close(ctx)
			return nil, &failure{index: abi.NoRecord, message: "instantiated module lacks its stop flag " + wasmrewrite.StopExport}
		}
		in.stop = newStopper(flag, e.cfg.CallTimeout)
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			mod.Close(ctx)
			return nil, &failure{index: abi.NoRecord, message: "stopped: " + ErrClosed.Error(), err: ErrClosed}
		}
		e.live[in.stop] = struct{}{}
		e.mu.Unlock()
	}
	if init := mod.ExportedFunction(abi.ExportInitialize); init != nil {
		callCtx, cancel := in.arm(ctx)
		err := init.CallWithStack(callCtx, in.stack)
		if cause := in.disarm(cancel, err); err != nil {
			in.close(ctx)
			return nil, in.classify(ctx, err, cause)
		}
	}
	return in, nil
}

func (in *instance) close(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
	}
	if in.stop != nil {
		in.stop.close()
		in.e.mu.Lock()
		delete(in.e.live, in.stop)
		in.e.mu.Unlock()
	}
}

// arm starts the time limit of a call and returns the context to make it
// with, and what ends it for disarm: the caller's own context with the
// stop flag, or one with the deadline in the fallback runtime.
func (in *instance) arm(ctx context.Context) (context.Context, context.CancelFunc) {
	if in.stop != nil {
		in.stop.arm(ctx)
		return ctx, nil
	}
	return context.WithTimeout(ctx, in.e.cfg.CallTimeout)
}

// disarm ends what arm started and returns why the engine stopped the call
// (notStopped in the fallback runtime, where the exit code tells).
func (in *instance) disarm(cancel context.CancelFunc, callErr error) stopCause {
	if in.stop != nil {
		return in.stop.disarm(callErr)
	}
	cancel()
	return notStopped
}

// call makes one call of fn (init or the kind function): it asks the
// module for a buffer of size bytes, lets fill encode the input there and
// calls fn, under the time limit. It returns the result, which aliases
// guest memory until the next call.
func (in *instance) call(ctx context.Context, fn api.Function, size int, fill func([]byte) []byte) ([]byte, *failure) {
	if size > 1<<31-1 {
		return nil, &failure{index: abi.NoRecord, message: fmt.Sprintf("input of %d bytes is too large for one call", size)}
	}
	in.stderr.reset()
	if err := ctx.Err(); err != nil {
		return nil, &failure{index: abi.NoRecord, message: "stopped: " + context.Cause(ctx).Error(), err: err}
	}
	callCtx, cancel := in.arm(ctx)
	in.stack[0] = api.EncodeU32(uint32(size))
	if err := in.alloc.CallWithStack(callCtx, in.stack); err != nil {
		return nil, in.classify(ctx, err, in.disarm(cancel, err))
	}
	ptr := api.DecodeU32(in.stack[0])
	buf, ok := in.mem.Read(ptr, uint32(size))
	if !ok {
		in.disarm(cancel, nil)
		return nil, &failure{index: abi.NoRecord, message: fmt.Sprintf("malformed result: %s returned a buffer of %d bytes at %d, past the end of memory (%d bytes)", abi.ExportAlloc, size, ptr, in.mem.Size()), err: abi.ErrMalformed}
	}
	if got := fill(buf[:0]); len(got) != size || size > 0 && &got[0] != &buf[0] {
		panic(fmt.Sprintf("smartmodule engine: encoded %d bytes, computed %d", len(got), size))
	}
	in.stack[0], in.stack[1] = api.EncodeU32(ptr), api.EncodeU32(uint32(size))
	err := fn.CallWithStack(callCtx, in.stack)
	if cause := in.disarm(cancel, err); err != nil {
		return nil, in.classify(ctx, err, cause)
	}
	rptr, rlen := abi.Unpack(in.stack[0])
	res, ok := in.mem.Read(rptr, rlen)
	if !ok {
		return nil, &failure{index: abi.NoRecord, message: fmt.Sprintf("malformed result: %d bytes at %d lie past the end of memory (%d bytes)", rlen, rptr, in.mem.Size()), err: abi.ErrMalformed}
	}
	return res, nil
}

// classify turns what a call returned into a failure a person can act on;
// cause says whether the engine stopped it.
func (in *instance) classify(ctx context.Context, err error, cause stopCause) *failure {
	f := &failure{index: abi.NoRecord, stderr: in.stderr.String()}
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	limit := in.e.cfg.MemoryLimitBytes
	var memSize int64
	if in.mem != nil {
		memSize = int64(in.mem.Size())
	}
	switch {
	case cause == stoppedTimeout:
		f.message = fmt.Sprintf("call took longer than %s (endless loop?)", in.e.cfg.CallTimeout)
	case cause == stoppedCanceled:
		f.message = "stopped: " + context.Cause(ctx).Error()
		f.err = ctx.Err()
	case cause == stoppedClosed:
		f.message = "stopped: " + ErrClosed.Error()
		f.err = ErrClosed
	case isExit && exit.ExitCode() == sys.ExitCodeDeadlineExceeded && ctx.Err() == nil:
		f.message = fmt.Sprintf("call took longer than %s (endless loop?)", in.e.cfg.CallTimeout)
	case isExit && (exit.ExitCode() == sys.ExitCodeContextCanceled || exit.ExitCode() == sys.ExitCodeDeadlineExceeded):
		f.message = "stopped: " + context.Cause(ctx).Error()
		f.err = ctx.Err()
	case strings.Contains(f.stderr, "out of memory") || f.stderr == "" && memSize > 0 && memSize+limit/16 >= limit:
		// A Go guest says so on stderr; another one traps when it
		// cannot grow, with its memory at the limit.
		f.message = fmt.Sprintf("out of memory (limit %s)", bytesString(limit))
		if g := gist(f.stderr); g != "" && !strings.Contains(g, "out of memory") {
			f.message += ": " + g
		}
	case isExit:
		if g := gist(f.stderr); g != "" {
			f.message = g
		} else {
			f.message = fmt.Sprintf("exited with code %d", exit.ExitCode())
		}
	default:
		// A trap: wazero's message starts with "wasm error: ...", then
		// the wasm stack trace. A Go guest that panics writes the panic
		// to stderr and then traps: its own words come first.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		msg = "trap: " + strings.TrimPrefix(msg, "wasm error: ")
		switch g := gist(f.stderr); {
		case strings.HasPrefix(g, "panic: ") || strings.HasPrefix(g, "fatal error: "):
			f.message = g
		case g != "":
			f.message = msg + "; the module wrote: " + g
		default:
			f.message = msg
		}
	}
	return f
}

// bytesString writes a memory size as a person reads it: "64 MiB".
func bytesString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// since returns the seconds since start.
func since(start time.Time) float64 { return time.Since(start).Seconds() }
