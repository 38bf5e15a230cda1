package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/wasmrewrite"
)

// Defaults of Config.
const (
	DefaultMemoryLimitBytes = 64 << 20
	DefaultCallTimeout      = 5 * time.Second
	DefaultMaxModules       = 64
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 1 << 16

// Config configures an Engine. The zero Config is valid: every zero field
// takes its default.
type Config struct {
	// CacheDir, when set, is a folder where compiled modules are kept
	// across restarts (wazero's compilation cache), so that a restarted
	// SPU does not compile them again. It is created if missing. The
	// engine must be its only user.
	CacheDir string
	// MemoryLimitBytes bounds the linear memory of each instance
	// (rounded up to 64 KiB pages). A module that grows past it fails its
	// chain with "out of memory (limit 64 MiB)". Default 64 MiB; at most
	// 4 GiB.
	MemoryLimitBytes int64
	// CallTimeout bounds each call into a module: _initialize, init, and
	// each batch of records. A module that runs longer fails its chain
	// with "call took longer than 5s (endless loop?)". Default 5s.
	CallTimeout time.Duration
	// MaxModules bounds how many compiled modules the engine keeps in
	// memory; the least recently used beyond it is released once no chain
	// uses it. Default 64.
	MaxModules int
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, receives the engine's metrics:
	// spate_smartmodule_records_in_total, _records_out_total,
	// _seconds_total and _errors_total, labelled with module (the Spec's
	// Name) and kind; spate_smartmodule_instances and
	// spate_smartmodule_compiles_total.
	Registerer prometheus.Registerer
}

// Validate checks the fields that have no default.
func (c Config) Validate() error {
	switch {
	case c.MemoryLimitBytes < 0 || c.MemoryLimitBytes > 1<<32:
		return fmt.Errorf("smartmodule engine: memory limit %d bytes out of range (0 for the default, at most 4 GiB)", c.MemoryLimitBytes)
	case c.CallTimeout < 0:
		return fmt.Errorf("smartmodule engine: negative call timeout %s", c.CallTimeout)
	case c.MaxModules < 0:
		return fmt.Errorf("smartmodule engine: negative MaxModules %d", c.MaxModules)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MemoryLimitBytes == 0 {
		c.MemoryLimitBytes = DefaultMemoryLimitBytes
	}
	c.MemoryLimitBytes = (c.MemoryLimitBytes + pageSize - 1) / pageSize * pageSize
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.MaxModules == 0 {
		c.MaxModules = DefaultMaxModules
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine compiles SmartModules and runs chains of them. It is safe for
// concurrent use; the chains it makes are not (one per stream).
type Engine struct {
	cfg     Config
	rt      wazero.Runtime // runs modules with a stop flag (wasmrewrite)
	cache   wazero.CompilationCache
	metrics *metrics

	// fallback runs the modules the rewriter refuses, with wazero's own
	// close-on-context-done; started on first use.
	fallbackMu  sync.Mutex
	fallback    wazero.Runtime
	fallbackErr error
	// noRewrite (for tests) sends every module to the fallback runtime.
	noRewrite bool

	mu      sync.Mutex        // guards what follows
	modules map[string]*entry // by digest, compiling or compiled
	clock   uint64            // ticks on every use, for least-recently-used eviction
	closed  bool
	live    map[*stopper]struct{} // of the instances with a stop flag, stopped on Close
}

// entry is a module in the cache: being compiled until done is closed.
type entry struct {
	done    chan struct{}
	m       *Module
	err     error
	lastUse uint64
}

// New starts an engine: a wazero runtime (compiler where the platform has
// one) with WASI preview 1 and the memory limit. The time limit is the
// engine's own (see stopper); a second runtime with wazero's
// close-on-context-done starts when a module needs it.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	var (
		cache wazero.CompilationCache
		err   error
	)
	if cfg.CacheDir != "" {
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("smartmodule engine: compilation cache in %s: %w", cfg.CacheDir, err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	rt, err := newRuntime(ctx, cfg, cache, false)
	if err != nil {
		cache.Close(ctx)
		return nil, err
	}
	return &Engine{
		cfg:     cfg,
		rt:      rt,
		cache:   cache,
		metrics: newMetrics(cfg.Registerer),
		modules: map[string]*entry{},
		live:    map[*stopper]struct{}{},
	}, nil
}

// newRuntime starts a wazero runtime with WASI. closeOnDone makes wazero
// enforce the time limit itself, at a cost at every loop iteration.
//
// The two runtimes of an engine share its compilation cache: wazero keys
// compiled code by the module's bytes and closeOnDone, and the rewritten
// bytes differ from the given ones anyway.
func newRuntime(ctx context.Context, cfg Config, cache wazero.CompilationCache, closeOnDone bool) (wazero.Runtime, error) {
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(closeOnDone).
		WithMemoryLimitPages(uint32(cfg.MemoryLimitBytes / pageSize)).
		WithCompilationCache(cache)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("smartmodule engine: WASI: %w", err)
	}
	return rt, nil
}

// fallbackRuntime returns the runtime with close-on-context-done, started
// on first use.
func (e *Engine) fallbackRuntime(ctx context.Context) (wazero.Runtime, error) {
	e.fallbackMu.Lock()
	defer e.fallbackMu.Unlock()
	if e.fallback == nil && e.fallbackErr == nil {
		e.fallback, e.fallbackErr = newRuntime(ctx, e.cfg, e.cache, true)
	}
	return e.fallback, e.fallbackErr
}

// Close closes the engine: every chain fails with ErrClosed from then on
// (close them anyway), and compiled modules are released. The disk cache
// stays.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.modules = nil
	// A call still running when its machine code goes stops at its next
	// loop iteration (wazero closes the modules, but only a runtime with
	// close-on-context-done checks that in the guest).
	for s := range e.live {
		s.stopNow(stoppedClosed)
	}
	e.live = nil
	e.mu.Unlock()
	err := e.rt.Close(ctx)
	e.fallbackMu.Lock()
	if e.fallback != nil {
		err = errors.Join(err, e.fallback.Close(ctx))
	}
	e.fallbackErr = ErrClosed
	e.fallbackMu.Unlock()
	return errors.Join(err, e.cache.Close(ctx))
}

// Module is a compiled SmartModule, shared by every chain that runs it.
type Module struct {
	e        *Engine
	digest   string
	kind     abi.Kind
	size     int
	compiled wazero.CompiledModule
	rt       wazero.Runtime // the runtime that compiled it
	// stoppable: the module is rewritten with a stop flag
	// (wasmrewrite.StopExport) and runs in e.rt; otherwise it runs in the
	// fallback runtime, which enforces the time limit itself.
	stoppable bool

	// Guarded by e.mu: chains holding the module, whether the cache
	// holds it, and whether compiled is released.
	refs     int
	cached   bool
	released bool
}

// Digest returns the module's digest, "sha256:<hex>" of its bytes.
func (m *Module) Digest() string { return m.digest }

// Kind returns the module's kind.
func (m *Module) Kind() abi.Kind { return m.kind }

// Size returns the size of the module's WebAssembly binary in bytes.
func (m *Module) Size() int { return m.size }

// Digest returns the digest Compile gives wasm: "sha256:<hex>".
func Digest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Compile checks that wasm is a SmartModule this engine can run
// (abi.Inspect, then the signatures of its exports and that it imports
// nothing but WASI) and compiles it, or returns the module compiled
// before under the same digest. Concurrent calls for the same bytes
// compile once. Errors wrap abi.ErrNotWasm (not WebAssembly, or wazero
// cannot compile it), abi.ErrNoKind (no known kind, or exports of the wrong
// shape, or imports the host does not provide) or abi.ErrVersion; a failure
// is not cached.
func (e *Engine) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	digest := Digest(wasm)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	if en, ok := e.modules[digest]; ok {
		e.clock++
		en.lastUse = e.clock
		e.mu.Unlock()
		select {
		case <-en.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return en.m, en.err
	}
	en := &entry{done: make(chan struct{})}
	e.clock++
	en.lastUse = e.clock
	e.modules[digest] = en
	e.mu.Unlock()

	m, err := e.compile(ctx, wasm, digest)
	e.mu.Lock()
	en.m, en.err = m, err
	close(en.done)
	switch {
	case e.closed && m != nil:
		m.compiled.Close(ctx)
		m.released = true
		m, err = nil, ErrClosed
	case err != nil:
		delete(e.modules, digest)
	default:
		m.cached = true
		e.evictLocked(ctx)
	}
	e.mu.Unlock()
	return m, err
}

func (e *Engine) compile(ctx context.Context, wasm []byte, digest string) (*Module, error) {
	info, err := abi.Inspect(wasm)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rt, stoppable := e.rt, true
	rewritten, st, err := wasmrewrite.AddStopFlag(wasm)
	if e.noRewrite {
		err = errors.New("rewriting disabled")
	}
	var compiled wazero.CompiledModule
	if err == nil {
		compiled, err = rt.CompileModule(ctx, rewritten)
		if err != nil {
			err = fmt.Errorf("wazero refuses the rewritten module: %w", err)
		}
	}
	if err != nil {
		e.cfg.Logger.Warn("smartmodule without a stop flag: its time limit costs speed", "digest", digest, "reason", err)
		stoppable = false
		if rt, err = e.fallbackRuntime(ctx); err != nil {
			return nil, err
		}
		if compiled, err = rt.CompileModule(ctx, wasm); err != nil {
			return nil, fmt.Errorf("%w: compile: %v", abi.ErrNotWasm, err)
		}
	}
	if err := checkShape(compiled, info.Kind); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	e.metrics.compiles.Inc()
	e.cfg.Logger.Info("compiled smartmodule", "digest", digest, "kind", info.Kind.String(), "bytes", len(wasm), "took", time.Since(start), "stop_flag", stoppable, "loops", st.Loops)
	return &Module{e: e, digest: digest, kind: info.Kind, size: len(wasm), compiled: compiled, rt: rt, stoppable: stoppable}, nil
}

// checkShape checks what abi.Inspect cannot see: the types of the exports
// and the imports.
func checkShape(c wazero.CompiledModule, kind abi.Kind) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := []struct {
		name            string
		params, results []api.ValueType
		optional        bool
	}{
		{abi.ExportInitialize, nil, nil, true},
		{abi.ExportAlloc, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{abi.ExportInit, []api.ValueType{i32, i32}, []api.ValueType{i64}, false},
		{kind.Export(), []api.ValueType{i32, i32}, []api.ValueType{i64}, false},
	}
	defs := c.ExportedFunctions()
	for _, w := range want {
		d, ok := defs[w.name]
		if !ok {
			if w.optional {
				continue
			}
			return fmt.Errorf("%w: it does not export %s", abi.ErrNoKind, w.name)
		}
		if !slices.Equal(d.ParamTypes(), w.params) || !slices.Equal(d.ResultTypes(), w.results) {
			return fmt.Errorf("%w: export %s has type %s, want %s", abi.ErrNoKind, w.name, signature(d.ParamTypes(), d.ResultTypes()), signature(w.params, w.results))
		}
	}
	for _, f := range c.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			return fmt.Errorf("%w: it imports %s.%s; a SmartModule may import only %s", abi.ErrNoKind, mod, name, wasi_snapshot_preview1.ModuleName)
		}
	}
	if len(c.ImportedMemories()) > 0 {
		return fmt.Errorf("%w: it imports its memory; a SmartModule exports it as %q", abi.ErrNoKind, abi.ExportMemory)
	}
	return nil
}

func signature(params, results []api.ValueType) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(params) + " -> " + names(results)
}

// Cached returns the compiled module of digest ("sha256:<hex>") if the
// engine holds it, so that a caller that knows the digest (from the
// registry) need not fetch the bytes again.
func (e *Engine) Cached(digest string) (*Module, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.modules[digest]
	if !ok || en.m == nil {
		return nil, false
	}
	e.clock++
	en.lastUse = e.clock
	return en.m, true
}

// evictLocked drops the least recently used compiled modules beyond
// MaxModules from the cache, releasing each unless a chain still uses it.
func (e *Engine) evictLocked(ctx context.Context) {
	for len(e.modules) > e.cfg.MaxModules {
		var (
			oldest string
			min    uint64
		)
		for d, en := range e.modules {
			if en.m != nil && (oldest == "" || en.lastUse < min) {
				oldest, min = d, en.lastUse
			}
		}
		if oldest == "" {
			return // all still compiling
		}
		m := e.modules[oldest].m
		delete(e.modules, oldest)
		m.cached = false
		e.releaseLocked(ctx, m)
	}
}

// acquire takes a reference to m for a chain.
func (e *Engine) acquire(m *Module) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.closed:
		return ErrClosed
	case m.released:
		return fmt.Errorf("%w: %s; compile it again", ErrEvicted, m.digest)
	}
	m.refs++
	return nil
}

// release gives back a chain's reference to m.
func (e *Engine) release(ctx context.Context, m *Module) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m.refs--
	e.releaseLocked(ctx, m)
}

func (e *Engine) releaseLocked(ctx context.Context, m *Module) {
	if m.refs == 0 && !m.cached && !m.released && !e.closed {
		m.compiled.Close(ctx)
		m.released = true
		e.cfg.Logger.Debug("released smartmodule", "digest", m.digest)
	}
}
