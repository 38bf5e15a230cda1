package modules_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/data-plane/internal/modules"
	"github.com/spatehq/spate/smartmodule/engine"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// registry is a SmartModuleService holding modules in memory, counting the
// calls the resolver makes: the caches under test are the resolver's.
type registry struct {
	controlplanev1connect.UnimplementedSmartModuleServiceHandler
	mu        sync.Mutex
	modules   map[string]*controlplanev1.SmartModule // by "group/name@version" and "group/name"
	wasm      map[string][]byte                      // by digest
	gets      int
	downloads int
	corrupt   bool // Download answers bytes of another digest
}

func (r *registry) add(name, version, kind string, wasm []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := &controlplanev1.SmartModule{Name: name, Version: version, Kind: kind, Digest: engine.Digest(wasm)}
	r.modules[name+"@"+version] = m
	r.modules[name] = m
	r.wasm[m.Digest] = wasm
}

func (r *registry) GetSmartModule(_ context.Context, req *connect.Request[controlplanev1.GetSmartModuleRequest]) (*connect.Response[controlplanev1.GetSmartModuleResponse], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gets++
	m, ok := r.modules[req.Msg.Name]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such module"))
	}
	return connect.NewResponse(&controlplanev1.GetSmartModuleResponse{Smartmodule: m}), nil
}

func (r *registry) DownloadSmartModule(_ context.Context, req *connect.Request[controlplanev1.DownloadSmartModuleRequest]) (*connect.Response[controlplanev1.DownloadSmartModuleResponse], error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.downloads++
	b, ok := r.wasm[req.Msg.GetDigest()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such digest"))
	}
	if r.corrupt {
		b = append([]byte(nil), b...)
		b[len(b)-1]++
	}
	return connect.NewResponse(&controlplanev1.DownloadSmartModuleResponse{Wasm: b}), nil
}

func (r *registry) counts() (gets, downloads int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gets, r.downloads
}

type fixture struct {
	reg   *registry
	url   string
	dir   string
	now   time.Time
	srv   *httptest.Server
	upper []byte
}

func newFixture(t *testing.T) *fixture {
	reg := &registry{modules: map[string]*controlplanev1.SmartModule{}, wasm: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.Handle(controlplanev1connect.NewSmartModuleServiceHandler(reg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f := &fixture{reg: reg, url: srv.URL, dir: t.TempDir(), now: time.Unix(1e9, 0), srv: srv, upper: smtest.Example(t, "uppercase")}
	reg.add("acme/upper", "1.0.0", "map", f.upper)
	return f
}

// resolver returns a Resolver with its own engine over f's cache folder,
// as an SPU after a restart.
func (f *fixture) resolver(t *testing.T) *modules.Resolver {
	// The shared compile cache: compiling a module under the race detector
	// takes tens of seconds.
	eng, err := engine.New(context.Background(), engine.Config{CacheDir: smtest.WazeroCacheDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(context.Background()) })
	r, err := modules.New(modules.Config{Engine: eng, Dir: f.dir, ControlPlane: f.url, HTTPClient: f.srv.Client(), Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func named(name, kind string) []*dataplanev1.SmartModuleInvocation {
	return []*dataplanev1.SmartModuleInvocation{{Module: &dataplanev1.SmartModuleInvocation_Name{Name: name}, Kind: kind}}
}

func TestAVersionedNameResolvesOnceAndAnUnversionedOneEveryTenSeconds(t *testing.T) {
	f := newFixture(t)
	r := f.resolver(t)
	ctx := context.Background()
	for range 3 {
		if _, err := r.Plan(ctx, named("acme/upper@1.0.0", "map")); err != nil {
			t.Fatal(err)
		}
	}
	if gets, downloads := f.reg.counts(); gets != 1 || downloads != 1 {
		t.Fatalf("three plans of acme/upper@1.0.0 made %d Gets and %d Downloads; want 1 and 1", gets, downloads)
	}
	for range 2 {
		if _, err := r.Plan(ctx, named("acme/upper", "")); err != nil {
			t.Fatal(err)
		}
	}
	if gets, _ := f.reg.counts(); gets != 2 {
		t.Fatalf("two plans of acme/upper within 10s made %d Gets in all; want 2", gets)
	}
	// A new version is picked up once the resolution is older than 10s.
	f.reg.add("acme/upper", "1.1.0", "filter", smtest.Example(t, "keepall"))
	f.now = f.now.Add(modules.UnversionedTTL + time.Second)
	_, err := r.Plan(ctx, named("acme/upper", "map"))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "acme/upper@1.1.0 is a filter, not a map") {
		t.Fatalf("plan of acme/upper after a filter 1.1.0 was added = %v; want INVALID_ARGUMENT saying it is a filter", err)
	}
}

func TestModulesAreCachedOnDiskByDigestAndCheckedOnRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.resolver(t).Plan(ctx, named("acme/upper@1.0.0", "")); err != nil {
		t.Fatal(err)
	}
	// After a restart, the bytes come from the disk.
	if _, err := f.resolver(t).Plan(ctx, named("acme/upper@1.0.0", "")); err != nil {
		t.Fatal(err)
	}
	if _, downloads := f.reg.counts(); downloads != 1 {
		t.Fatalf("downloads after a restart = %d; want 1", downloads)
	}
	// A damaged file is downloaded again.
	files, _ := filepath.Glob(filepath.Join(f.dir, "*.wasm"))
	if len(files) != 1 || filepath.Base(files[0]) != strings.TrimPrefix(engine.Digest(f.upper), "sha256:")+".wasm" {
		t.Fatalf("cache folder holds %v; want one file named by the digest", files)
	}
	if err := os.WriteFile(files[0], []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := f.resolver(t)
	plan, err := r.Plan(ctx, named("acme/upper@1.0.0", ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, downloads := f.reg.counts(); downloads != 2 {
		t.Fatalf("downloads after the cached file was damaged = %d; want 2", downloads)
	}
	chain, err := r.Start(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	chain.Close(ctx)
}

func TestResolutionErrorsSayWhatIsWrong(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	r := f.resolver(t)
	for _, tc := range []struct {
		name string
		invs []*dataplanev1.SmartModuleInvocation
		code connect.Code
		says string
	}{
		{"missing", named("acme/nope", ""), connect.CodeNotFound, "smartmodule acme/nope not found"},
		{"another kind", named("acme/upper@1.0.0", "filter"), connect.CodeInvalidArgument, "acme/upper@1.0.0 is a map, not a filter"},
		{"unknown kind", named("acme/upper@1.0.0", "sort"), connect.CodeInvalidArgument, `kind "sort"`},
		{"accumulator for a map", []*dataplanev1.SmartModuleInvocation{{Module: &dataplanev1.SmartModuleInvocation_Name{Name: "acme/upper@1.0.0"}, InitialAccumulator: []byte("0")}},
			connect.CodeInvalidArgument, "only an aggregate takes an initial accumulator"},
		{"inline garbage", []*dataplanev1.SmartModuleInvocation{{Module: &dataplanev1.SmartModuleInvocation_Wasm{Wasm: []byte("garbage")}}}, connect.CodeInvalidArgument, "inline module sha256:"},
		{"nothing", []*dataplanev1.SmartModuleInvocation{{}}, connect.CodeInvalidArgument, "needs a registry name or the module's bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Plan(ctx, tc.invs)
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Plan = %v; want %v saying %q", err, tc.code, tc.says)
			}
		})
	}

	f.reg.mu.Lock()
	f.reg.corrupt = true
	f.reg.mu.Unlock()
	f.reg.add("acme/other", "1.0.0", "filter", smtest.Example(t, "keepall"))
	if _, err := r.Plan(ctx, named("acme/other@1.0.0", "")); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("Plan of a module whose download is damaged = %v; want UNAVAILABLE", err)
	}

	f.srv.Close()
	if _, err := r.Plan(ctx, named("acme/gone@1.0.0", "")); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "registry cannot be reached") {
		t.Fatalf("Plan with the control plane down = %v; want UNAVAILABLE", err)
	}
}
