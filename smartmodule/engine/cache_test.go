package engine_test

import (
	"errors"
	"os"
	"testing"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

func TestCompileIsCachedByDigest(t *testing.T) {
	e := newEngine(t, engine.Config{})
	wasm := guest(t, "filter")
	m1, err := e.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := e.Compile(ctx, append([]byte(nil), wasm...))
	if err != nil || m2 != m1 {
		t.Fatalf("second Compile: %p, %v; want the first module %p", m2, err, m1)
	}
	if m1.Digest() != engine.Digest(wasm) || m1.Kind() != abi.KindFilter || m1.Size() != len(wasm) {
		t.Fatalf("digest %s, kind %s, size %d", m1.Digest(), m1.Kind(), m1.Size())
	}
	if m, ok := e.Cached(m1.Digest()); !ok || m != m1 {
		t.Fatalf("Cached: %p, %v", m, ok)
	}
	if _, ok := e.Cached("sha256:0000"); ok {
		t.Fatal("Cached found an unknown digest")
	}
}

func TestEvictionWaitsForChains(t *testing.T) {
	e := newEngine(t, engine.Config{MaxModules: 1})
	a := compile(t, e, "filter")
	c, err := e.NewChain(ctx, engine.Spec{Module: a, Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	compile(t, e, "uppercase") // evicts a
	if _, ok := e.Cached(a.Digest()); ok {
		t.Fatal("a is still cached beyond MaxModules")
	}
	// The chain of a runs on; a new chain needs a new Compile.
	if out, err := c.Process(ctx, records(0, "x"), nil); err != nil || len(out) != 1 {
		t.Fatalf("chain of the evicted module: %s, %v", show(out), err)
	}
	// While a chain holds a, a can start more chains; once none does, it
	// is released.
	more, err := e.NewChain(ctx, engine.Spec{Module: a})
	if err != nil {
		t.Fatalf("NewChain of an evicted module still in use: %v", err)
	}
	more.Close(ctx)
	c.Close(ctx)
	if _, err := e.NewChain(ctx, engine.Spec{Module: a}); !errors.Is(err, engine.ErrEvicted) {
		t.Fatalf("NewChain of an evicted module: %v, want ErrEvicted", err)
	}
	a2 := compile(t, e, "filter")
	c2, err := e.NewChain(ctx, engine.Spec{Module: a2})
	if err != nil {
		t.Fatalf("NewChain after compiling again: %v", err)
	}
	c2.Close(ctx)
}

func TestDiskCacheOutlivesTheEngine(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		e, err := engine.New(ctx, engine.Config{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		m := compile(t, e, "filter")
		c, err := e.NewChain(ctx, engine.Spec{Module: m})
		if err != nil {
			t.Fatalf("engine %d: %v", i, err)
		}
		if out, err := c.Process(ctx, records(0, "x"), nil); err != nil || len(out) != 1 {
			t.Fatalf("engine %d: %s, %v", i, show(out), err)
		}
		c.Close(ctx)
		if err := e.Close(ctx); err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			t.Fatalf("engine %d left nothing in the cache folder", i)
		}
	}
}

func TestClosedEngine(t *testing.T) {
	e, err := engine.New(ctx, engine.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m := compile(t, e, "filter")
	c, err := e.NewChain(ctx, engine.Spec{Module: m})
	if err != nil {
		t.Fatal(err)
	}
	e.Close(ctx)
	if _, err := c.Process(ctx, records(0, "x"), nil); err == nil {
		t.Fatal("Process on a closed engine succeeded")
	}
	if _, err := e.Compile(ctx, guest(t, "filter")); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("Compile on a closed engine: %v, want ErrClosed", err)
	}
	if _, err := e.NewChain(ctx, engine.Spec{Module: m}); !errors.Is(err, engine.ErrClosed) {
		t.Fatalf("NewChain on a closed engine: %v, want ErrClosed", err)
	}
	c.Close(ctx)
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []engine.Config{{MemoryLimitBytes: -1}, {MemoryLimitBytes: 5 << 30}, {CallTimeout: -1}, {MaxModules: -1}} {
		if _, err := engine.New(ctx, cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}
