// Package modules turns the SmartModule invocations of a produce or consume
// request into a running chain: it resolves registry names through the
// control plane's SmartModuleService, fetches the WebAssembly bytes by
// digest, caches them on disk, compiles them once in the engine and checks
// each module's kind against the one the caller expects.
//
// # Caches
//
//   - name → module: "group/name@version" is immutable in the registry, so
//     its resolution is kept for the life of the process; "group/name"
//     (the highest version) is asked again after UnversionedTTL, so that a
//     new version is picked up within seconds.
//   - digest → bytes: DIR/<hex>.wasm, written atomically after the
//     download's SHA-256 matched its digest, and checked again on every
//     read (a damaged file is fetched again).
//   - digest → compiled module: the engine's (in memory, and its own disk
//     cache of compiled code across restarts).
//
// A module deleted from the registry keeps running in the streams that
// use it, and its resolution by versioned name stays cached until the SPU
// restarts.
//
// # Errors
//
// Every error is a *connect.Error the SPU may return as it is:
// NOT_FOUND "smartmodule acme/x not found"; INVALID_ARGUMENT for a module
// of another kind than asked ("acme/x@1.0.0 is a map, not a filter"), a
// module that does not compile or whose init fails, a malformed
// invocation; UNIMPLEMENTED for a name on an SPU without a control plane
// (not FAILED_PRECONDITION, which clients retry); UNAVAILABLE when the control plane cannot be reached.
package modules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/singleflight"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/internal/h2c"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

// MaxWasmBytes is the largest module accepted, inline or from the registry.
const MaxWasmBytes = 32 << 20

// MaxChain is the longest chain of modules one request may ask for.
const MaxChain = 16

// UnversionedTTL is how long the resolution of a name without a version
// is kept.
const UnversionedTTL = 10 * time.Second

// Config configures a Resolver.
type Config struct {
	// Engine compiles and runs the modules. Required.
	Engine *engine.Engine
	// Dir holds the downloaded modules' bytes, by digest. Required.
	Dir string
	// ControlPlane is the URL of the control plane whose registry names
	// resolve in; empty refuses names (inline modules still run).
	ControlPlane string
	// HTTPClient calls the control plane: with the SPU's client
	// certificate under TLS, h2c without. Default h2c.
	HTTPClient connect.HTTPClient
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the name cache; default time.Now.
	Now func() time.Time
}

// Resolver resolves invocations to engine specs and builds chains. It is
// safe for concurrent use.
type Resolver struct {
	cfg      Config
	registry controlplanev1connect.SmartModuleServiceClient // nil without a control plane
	group    singleflight.Group                             // one resolution or download per key at a time

	mu    sync.Mutex
	names map[string]resolved // by name as asked
}

// resolved is what a registry name resolved to.
type resolved struct {
	ref     string // "group/name@version"
	digest  string // "sha256:<hex>"
	expires time.Time
}

// New returns a Resolver. It creates cfg.Dir.
func New(cfg Config) (*Resolver, error) {
	if cfg.Engine == nil {
		return nil, errors.New("modules: an engine is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("modules: a cache folder is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Resolver{cfg: cfg, names: map[string]resolved{}}
	if cfg.ControlPlane != "" {
		hc := cfg.HTTPClient
		if hc == nil {
			hc = h2c.NewClient()
		}
		r.registry = controlplanev1connect.NewSmartModuleServiceClient(hc, cfg.ControlPlane,
			connect.WithReadMaxBytes(MaxWasmBytes+1<<20))
	}
	return r, nil
}

// Chain resolves invs, in order, and starts a chain of them (instances
// initialised with their parameters). The caller closes it.
func (r *Resolver) Chain(ctx context.Context, invs []*dataplanev1.SmartModuleInvocation) (*engine.Chain, error) {
	plan, err := r.Plan(ctx, invs)
	if err != nil {
		return nil, err
	}
	return r.Start(ctx, plan)
}

// Plan is a chain of invocations resolved to compiled modules, ready to
// start as many times as a stream has partitions.
type Plan struct {
	invs  []*dataplanev1.SmartModuleInvocation
	mu    sync.Mutex
	specs []engine.Spec
}

// Plan resolves invs, in order. It refuses an empty chain.
func (r *Resolver) Plan(ctx context.Context, invs []*dataplanev1.SmartModuleInvocation) (*Plan, error) {
	specs, err := r.specs(ctx, invs)
	if err != nil {
		return nil, err
	}
	return &Plan{invs: invs, specs: specs}, nil
}

// Start starts a chain of the plan's modules. A module the engine evicted
// from its cache since the plan was made is compiled again (from the disk
// cache).
func (r *Resolver) Start(ctx context.Context, p *Plan) (*engine.Chain, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := r.cfg.Engine.NewChain(ctx, p.specs...)
	if errors.Is(err, engine.ErrEvicted) {
		specs, rerr := r.specs(ctx, p.invs)
		if rerr != nil {
			return nil, rerr
		}
		p.specs = specs
		c, err = r.cfg.Engine.NewChain(ctx, p.specs...)
	}
	if err != nil {
		return nil, ChainError(err)
	}
	return c, nil
}

// ChainError returns the *connect.Error a client sees for an error of a
// chain (starting it or running it): the engine's message, which names the
// module, its kind, the offset and the module's own words, with
// INVALID_ARGUMENT so that clients do not retry it; cancellation stays
// CANCELED, and a closed engine (the SPU stopping) is UNAVAILABLE.
func ChainError(err error) *connect.Error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, engine.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, errors.New("the SPU is shutting down; retry"))
	}
	return connect.NewError(connect.CodeInvalidArgument, err)
}

// specs resolves invs to engine specs, in order.
func (r *Resolver) specs(ctx context.Context, invs []*dataplanev1.SmartModuleInvocation) ([]engine.Spec, error) {
	switch {
	case len(invs) == 0:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("a chain of no SmartModules"))
	case len(invs) > MaxChain:
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("a chain of %d SmartModules is longer than the limit of %d", len(invs), MaxChain))
	}
	specs := make([]engine.Spec, 0, len(invs))
	for _, inv := range invs {
		s, err := r.Spec(ctx, inv)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// Spec resolves one invocation: its module, compiled, checked against the
// kind asked for, with its parameters.
func (r *Resolver) Spec(ctx context.Context, inv *dataplanev1.SmartModuleInvocation) (engine.Spec, error) {
	var want abi.Kind
	if k := inv.GetKind(); k != "" {
		var err error
		if want, err = abi.ParseKind(k); err != nil {
			return engine.Spec{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("smartmodule kind %q: use filter, map, filter-map, array-map or aggregate", k))
		}
	}
	var (
		m    *engine.Module
		name string
		err  error
	)
	switch mod := inv.GetModule().(type) {
	case *dataplanev1.SmartModuleInvocation_Name:
		m, name, err = r.named(ctx, mod.Name)
	case *dataplanev1.SmartModuleInvocation_Wasm:
		m, name, err = r.inline(ctx, mod.Wasm)
	default:
		err = connect.NewError(connect.CodeInvalidArgument, errors.New("a SmartModule invocation needs a registry name or the module's bytes"))
	}
	if err != nil {
		return engine.Spec{}, err
	}
	if want != 0 && m.Kind() != want {
		return engine.Spec{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is %s %s, not %s %s", name, article(m.Kind()), m.Kind(), article(want), want))
	}
	if inv.InitialAccumulator != nil && m.Kind() != abi.KindAggregate {
		return engine.Spec{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is %s %s: only an aggregate takes an initial accumulator", name, article(m.Kind()), m.Kind()))
	}
	spec := engine.Spec{Module: m, Name: name, InitialAccumulator: inv.InitialAccumulator}
	for _, p := range inv.GetParams() {
		spec.Params = append(spec.Params, abi.Param{Name: p.GetName(), Value: p.GetValue()})
	}
	return spec, nil
}

// article returns "an" before a kind that starts with a vowel, else "a".
func article(k abi.Kind) string {
	if s := k.String(); s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an"
	}
	return "a"
}

// inline compiles a module sent with the request. Its name, in errors and
// metrics, is "inline module sha256:" and the first 12 hex digits of its
// digest.
func (r *Resolver) inline(ctx context.Context, wasm []byte) (*engine.Module, string, error) {
	if len(wasm) > MaxWasmBytes {
		return nil, "", connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the SmartModule sent is %d bytes; the limit is %d (32 MiB)", len(wasm), MaxWasmBytes))
	}
	sum := sha256.Sum256(wasm)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	name := "inline module " + digest[:len("sha256:")+12]
	if m, ok := r.cfg.Engine.Cached(digest); ok {
		return m, name, nil
	}
	m, err := r.cfg.Engine.Compile(ctx, wasm)
	if err != nil {
		return nil, "", compileError(ctx, name, err)
	}
	return m, name, nil
}

// compileError is the error for a module that does not compile.
func compileError(ctx context.Context, name string, err error) *connect.Error {
	if ctx.Err() != nil {
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("smartmodule %s cannot run: %w", name, err))
}

// named resolves a registry name and returns its compiled module and its
// full reference.
func (r *Resolver) named(ctx context.Context, name string) (*engine.Module, string, error) {
	res, err := r.resolve(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if m, ok := r.cfg.Engine.Cached(res.digest); ok {
		return m, res.ref, nil
	}
	v, err, _ := r.group.Do("module "+res.digest, func() (any, error) {
		if m, ok := r.cfg.Engine.Cached(res.digest); ok {
			return m, nil
		}
		wasm, err := r.bytes(ctx, res)
		if err != nil {
			return nil, err
		}
		m, err := r.cfg.Engine.Compile(ctx, wasm)
		if err != nil {
			return nil, compileError(ctx, res.ref, err)
		}
		return m, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(*engine.Module), res.ref, nil
}

// resolve returns what name resolves to in the registry, from the cache
// when it holds an answer young enough.
func (r *Resolver) resolve(ctx context.Context, name string) (resolved, error) {
	if r.registry == nil {
		return resolved{}, connect.NewError(connect.CodeUnimplemented, fmt.Errorf(
			"smartmodule %s: this SPU runs without a control plane, so it has no registry; send the module's bytes instead (--smartmodule-path)", name))
	}
	now := r.cfg.Now()
	r.mu.Lock()
	res, ok := r.names[name]
	r.mu.Unlock()
	if ok && (res.expires.IsZero() || now.Before(res.expires)) {
		return res, nil
	}
	v, err, _ := r.group.Do("name "+name, func() (any, error) {
		resp, err := r.registry.GetSmartModule(ctx, connect.NewRequest(&controlplanev1.GetSmartModuleRequest{Name: name}))
		if err != nil {
			return nil, registryError(ctx, name, err)
		}
		sm := resp.Msg.GetSmartmodule()
		res := resolved{ref: sm.GetName() + "@" + sm.GetVersion(), digest: sm.GetDigest()}
		if !strings.HasPrefix(res.digest, "sha256:") {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("smartmodule %s: the registry answered a digest %q that is not a sha256 digest", name, res.digest))
		}
		if !strings.Contains(name, "@") {
			res.expires = r.cfg.Now().Add(UnversionedTTL)
		}
		r.mu.Lock()
		r.names[name] = res
		r.mu.Unlock()
		return res, nil
	})
	if err != nil {
		return resolved{}, err
	}
	return v.(resolved), nil
}

// registryError turns an error of the control plane into what the client
// sees.
func registryError(ctx context.Context, name string, err error) *connect.Error {
	var ce *connect.Error
	switch connect.CodeOf(err) {
	case connect.CodeNotFound:
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("smartmodule %s not found", name))
	case connect.CodeInvalidArgument:
		// A malformed name: the registry's reason is the user's.
		if errors.As(err, &ce) {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("smartmodule %s: %s", name, ce.Message()))
		}
	}
	if ctx.Err() != nil {
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("smartmodule %s: the registry cannot be reached (%v); retry later", name, err))
}

// bytes returns the module's bytes: from the disk cache when the file
// there matches its digest, else downloaded (and cached).
func (r *Resolver) bytes(ctx context.Context, res resolved) ([]byte, error) {
	hexSum := strings.TrimPrefix(res.digest, "sha256:")
	path := filepath.Join(r.cfg.Dir, hexSum+".wasm")
	if b, err := os.ReadFile(path); err == nil {
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == hexSum {
			return b, nil
		}
		r.cfg.Logger.Warn("cached smartmodule does not match its digest; downloading it again", "module", res.ref, "path", path)
	}
	resp, err := r.registry.DownloadSmartModule(ctx, connect.NewRequest(&controlplanev1.DownloadSmartModuleRequest{
		Ref: &controlplanev1.DownloadSmartModuleRequest_Digest{Digest: res.digest},
	}))
	if err != nil {
		return nil, registryError(ctx, res.ref, err)
	}
	b := resp.Msg.GetWasm()
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != res.digest {
		r.cfg.Logger.Error("downloaded smartmodule does not match its digest", "module", res.ref, "digest", res.digest, "bytes", len(b))
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("smartmodule %s: the download does not match its digest; retry later", res.ref))
	}
	if err := writeAtomic(path, b); err != nil {
		// Not fatal: the module runs, and is downloaded again next time.
		r.cfg.Logger.Warn("cannot cache smartmodule on disk", "module", res.ref, "path", path, "err", err)
	}
	return b, nil
}

// writeAtomic writes b to path through a temporary file and a rename, so
// that a reader never sees half a file.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
