package engine_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/engine"
)

var (
	guestMu    sync.Mutex
	guestBuilt = map[string][]byte{}
)

// guest returns the WebAssembly of the test module testdata/name, built
// with the standard toolchain once per source version: the build is kept in
// the user's cache folder across test runs.
func guest(tb testing.TB, name string) []byte {
	tb.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guestBuilt[name]; ok {
		return b
	}
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version())
	for _, dir := range []string{filepath.Join("testdata", name), filepath.Join("testdata", "guest"), filepath.Join("..", "abi")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("sources of %s: %v", dir, err)
		}
		slices.Sort(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			fmt.Fprintf(h, "%s %d\n", f, len(b))
			h.Write(b)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	out := filepath.Join(cache, "spate-engine-testdata", name+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".wasm")
	if b, err := os.ReadFile(out); err == nil {
		guestBuilt[name] = b
		return b
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		tb.Fatal(err)
	}
	tmp := out + ".tmp" + fmt.Sprint(os.Getpid())
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", tmp, "./"+filepath.ToSlash(filepath.Join("testdata", name)))
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build testdata/%s: %v\n%s", name, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	guestBuilt[name] = b
	return b
}

// compilationCache is a folder for wazero's compilation cache shared by the
// tests (and kept across runs), keyed by wazero's version as go.mod gives
// it: a test binary carries no build information, so wazero cannot tell
// its own version and would mix the output of several.
func compilationCache(tb testing.TB) string {
	version := ""
	if mod, err := os.ReadFile("../../go.mod"); err == nil {
		for line := range strings.Lines(string(mod)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/tetratelabs/wazero" {
				version = f[1]
			}
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil || version == "" {
		return tb.TempDir()
	}
	return filepath.Join(cache, "spate-engine-testdata", "wazero-"+version+"-"+runtime.GOARCH)
}

// newEngine starts an engine closed at the end of the test. Unless cfg
// says otherwise, it shares the tests' compilation cache.
func newEngine(tb testing.TB, cfg engine.Config) *engine.Engine {
	tb.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = compilationCache(tb)
	}
	e, err := engine.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(context.Background()) })
	return e
}

var (
	sharedOnce   sync.Once
	sharedEngine *engine.Engine
)

// shared returns an engine with the default configuration shared by the
// tests, so that each module compiles once per test process.
func shared(tb testing.TB) *engine.Engine {
	sharedOnce.Do(func() {
		e, err := engine.New(context.Background(), engine.Config{CacheDir: compilationCache(tb)})
		if err != nil {
			panic(err)
		}
		sharedEngine = e
	})
	return sharedEngine
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEngine != nil {
		sharedEngine.Close(context.Background())
	}
	os.Exit(code)
}

// compile compiles the test module name.
func compile(tb testing.TB, e *engine.Engine, name string) *engine.Module {
	tb.Helper()
	m, err := e.Compile(context.Background(), guest(tb, name))
	if err != nil {
		tb.Fatalf("Compile %s: %v", name, err)
	}
	return m
}

// chain starts a chain of one test module with params ("k=v"), closed at
// the end of the test.
func chain(tb testing.TB, e *engine.Engine, name string, params ...string) *engine.Chain {
	tb.Helper()
	c, err := e.NewChain(context.Background(), spec(tb, e, name, params...))
	if err != nil {
		tb.Fatalf("NewChain %s: %v", name, err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func spec(tb testing.TB, e *engine.Engine, name string, params ...string) engine.Spec {
	tb.Helper()
	sp := engine.Spec{Module: compile(tb, e, name), Name: name + ".wasm"}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		sp.Params = append(sp.Params, abiParam(k, v))
	}
	return sp
}

// records makes records at offsets from first on with the given values,
// keys "k<offset>", timestamps 1000+offset and one header.
func records(first int64, values ...string) []batch.Record {
	recs := make([]batch.Record, len(values))
	for i, v := range values {
		off := first + int64(i)
		recs[i] = batch.Record{
			Offset:    off,
			Timestamp: 1000 + off,
			Key:       fmt.Appendf(nil, "k%d", off),
			Value:     []byte(v),
			Headers:   []batch.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", off)}},
		}
	}
	return recs
}

// show writes records as "offset:key=value" for comparisons.
func show(recs []batch.Record) string {
	s := make([]string, len(recs))
	for i, r := range recs {
		key := "null"
		if r.Key != nil {
			key = string(r.Key)
		}
		s[i] = fmt.Sprintf("%d:%s=%s", r.Offset, key, r.Value)
	}
	return strings.Join(s, " ")
}
