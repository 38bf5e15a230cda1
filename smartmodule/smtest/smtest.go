// Package smtest gives tests the SmartModules they run: the examples in
// smartmodule/examples, or any package main of a test's own (a testdata
// guest), built with smartmodule/build.
//
// A module is built at most once per test process and kept in a folder
// cache, os.UserCacheDir()/spate-smtest/<key>, where the key hashes the
// module's sources, the guest SDK's sources, go.mod, go.sum and the Go
// version. Repeated test runs, and the test processes of other packages,
// reuse it instead of spending seconds in the compiler. Concurrent
// processes may build the same module at the same time; each writes its own
// temporary file and renames it into place, so no reader sees half a
// module.
package smtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spatehq/spate/smartmodule/build"
)

// Examples lists the example modules Example builds.
var Examples = []string{"keepall", "keep1pct", "jsonfilter", "uppercase", "flatten", "filtermap", "sum"}

// Example returns the WebAssembly of the example module name (one of
// Examples), building it if no cached build matches its sources. A build
// failure fails the test. The returned slice is shared: do not modify it.
func Example(tb testing.TB, name string) []byte {
	tb.Helper()
	if !slices.Contains(Examples, name) {
		tb.Fatalf("smtest: no example module %q (have %s)", name, strings.Join(Examples, ", "))
	}
	root, err := sdkRoot()
	if err != nil {
		tb.Fatalf("smtest: %v", err)
	}
	return Module(tb, filepath.Join(root, "examples", name))
}

var (
	mu    sync.Mutex
	built = map[string]*entry{} // absolute dir -> its build in this process
)

type entry struct {
	once sync.Once
	wasm []byte
	err  error
}

// Module returns the WebAssembly of the package main in dir (a guest that
// uses the SDK, or one written directly against smartmodule/abi), building
// it if no cached build matches its sources. A build failure fails the test
// with the compiler's output. The returned slice is shared: do not modify
// it.
func Module(tb testing.TB, dir string) []byte {
	tb.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatalf("smtest: %v", err)
	}
	mu.Lock()
	e, ok := built[abs]
	if !ok {
		e = &entry{}
		built[abs] = e
	}
	mu.Unlock()
	e.once.Do(func() { e.wasm, e.err = load(abs) })
	if e.err != nil {
		tb.Fatalf("smtest: %v", e.err)
	}
	return e.wasm
}

// WazeroCacheDir returns a folder for wazero's compilation cache
// (wazero.NewCompilationCacheWithDir, or engine.Config.CacheDir) shared by
// the tests of every package and every run, so that compiling a module to
// machine code, which takes seconds for a Go module and far longer under
// the race detector, happens once per wazero version. wazero writes each
// entry to a temporary file and renames it into place, so concurrent test
// processes may share the folder.
func WazeroCacheDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(cacheRoot(), "wazero")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("smtest: %v", err)
	}
	return dir
}

func cacheRoot() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "spate-smtest")
}

// load returns the cached build of dir, building it when there is none.
func load(dir string) ([]byte, error) {
	key, err := cacheKey(dir)
	if err != nil {
		return nil, err
	}
	folder := filepath.Join(cacheRoot(), key)
	file := filepath.Join(folder, filepath.Base(dir)+".wasm")
	if wasm, err := os.ReadFile(file); err == nil {
		return wasm, nil
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, err
	}
	if err := build.Build(context.Background(), dir, file); err != nil {
		return nil, err
	}
	return os.ReadFile(file)
}

// cacheKey hashes everything a build of dir depends on that may change
// between test runs: its Go files, the SDK's, the module's go.mod and
// go.sum, and the Go version.
func cacheKey(dir string) (string, error) {
	root, err := sdkRoot()
	if err != nil {
		return "", err
	}
	v, err := goVersion()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", v, dir)
	add := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", path, len(b))
		h.Write(b)
		return nil
	}
	if err := walkGo(dir, nil, add); err != nil {
		return "", err
	}
	// The SDK: everything under smartmodule but what a guest never links
	// (the engine, the build and test helpers) and the examples, whose
	// shared helpers are added below when dir is an example.
	if err := walkGo(root, []string{"engine", "build", "smtest", "examples"}, add); err != nil {
		return "", err
	}
	if strings.HasPrefix(dir, filepath.Join(root, "examples")+string(filepath.Separator)) {
		if err := walkGo(filepath.Join(root, "examples", "internal"), nil, add); err != nil {
			return "", err
		}
	}
	modRoot := filepath.Dir(root)
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := add(filepath.Join(modRoot, f)); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// walkGo calls fn for each non-test .go file under dir, in lexical order,
// skipping the folders of dir named in skip, and testdata folders.
func walkGo(dir string, skip []string, fn func(path string) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (d.Name() == "testdata" || filepath.Dir(path) == dir && slices.Contains(skip, d.Name())) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			return fn(path)
		}
		return nil
	})
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// sdkRoot returns the folder of package smartmodule: from this file's path
// when the test binary was built without -trimpath, else from `go list`.
func sdkRoot() (string, error) {
	rootOnce.Do(func() {
		if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
			dir := filepath.Dir(filepath.Dir(file))
			if _, err := os.Stat(filepath.Join(dir, "doc.go")); err == nil {
				root = dir
				return
			}
		}
		out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/spatehq/spate/smartmodule").Output()
		if err != nil {
			rootErr = fmt.Errorf("find the smartmodule package: go list: %v", err)
			return
		}
		root = strings.TrimSpace(string(out))
	})
	return root, rootErr
}

var (
	versionOnce sync.Once
	version     string
	versionErr  error
)

// goVersion returns the version of the go command that builds the modules
// (which may differ from the one that built the test binary).
func goVersion() (string, error) {
	versionOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOVERSION").Output()
		if err != nil {
			versionErr = fmt.Errorf("go env GOVERSION: %v (is the go command on the PATH?)", err)
			return
		}
		version = strings.TrimSpace(string(out))
	})
	return version, versionErr
}
