package examples_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// The examples through the engine the SPU runs them with: SDK and engine
// agree on the ABI, and what users read when a module fails names it.

var (
	engineOnce sync.Once
	shared     *engine.Engine
	engineErr  error
)

// newEngine returns the engine these tests share, so that each module is
// compiled once (the engine caches compiled modules by digest).
func newEngine(t *testing.T) *engine.Engine {
	t.Helper()
	engineOnce.Do(func() {
		shared, engineErr = engine.New(context.Background(), engine.Config{CacheDir: smtest.WazeroCacheDir(t)})
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		shared.Close(context.Background())
	}
	os.Exit(code)
}

func spec(t *testing.T, e *engine.Engine, name string, wasm []byte, ps []abi.Param, acc []byte) engine.Spec {
	t.Helper()
	m, err := e.Compile(context.Background(), wasm)
	if err != nil {
		t.Fatal(err)
	}
	return engine.Spec{Module: m, Name: name, Params: ps, InitialAccumulator: acc}
}

func batchOf(offset int64, vs ...string) []batch.Record {
	recs := make([]batch.Record, len(vs))
	for i, v := range vs {
		recs[i] = batch.Record{Offset: offset + int64(i), Timestamp: 1700000000000, Key: []byte(fmt.Sprint("k", i)), Value: []byte(v),
			Headers: []batch.RecordHeader{{Key: "trace", Value: []byte(fmt.Sprint(i))}}}
	}
	return recs
}

func TestAChainOfExamplesKeepsOffsetsAndHeaders(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	chain, err := e.NewChain(ctx,
		spec(t, e, "acme/jsonfilter@1.0.0", smtest.Example(t, "jsonfilter"), params("field", "level", "equals", "error"), nil),
		spec(t, e, "acme/uppercase@1.0.0", smtest.Example(t, "uppercase"), nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close(ctx)
	out, err := chain.Process(ctx, batchOf(500, `{"level":"error","msg":"a"}`, `{"level":"info"}`, `{"level":"error","msg":"b"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out {
		got = append(got, fmt.Sprintf("%d %s %s trace=%s", r.Offset, r.Key, r.Value, r.Headers[0].Value))
	}
	want := []string{`500 k0 {"LEVEL":"ERROR","MSG":"A"} trace=0`, `502 k2 {"LEVEL":"ERROR","MSG":"B"} trace=2`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("outputs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSumThroughTheEngineKeepsItsAccumulatorForTheStream(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	chain, err := e.NewChain(ctx, spec(t, e, "sum.wasm", smtest.Example(t, "sum"), nil, []byte("100")))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close(ctx)
	var got []string
	for _, b := range [][]batch.Record{batchOf(0, "1", "2"), batchOf(2, "3")} {
		out, err := chain.Process(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out {
			got = append(got, fmt.Sprintf("%d:%s", r.Offset, r.Value))
		}
	}
	if strings.Join(got, " ") != "0:101 1:103 2:106" {
		t.Fatalf("outputs = %q", got)
	}
}

func TestAModuleErrorReadsWithTheModuleKindAndOffset(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	_, err := e.NewChain(ctx, spec(t, e, "acme/jsonfilter@1.0.0", smtest.Example(t, "jsonfilter"), params("field", "level"), nil))
	if err == nil || err.Error() != `smartmodule acme/jsonfilter@1.0.0 (filter) failed in init: missing parameter "equals" (give it with -e equals=VALUE)` {
		t.Fatalf("init error = %v", err)
	}

	chain, err := e.NewChain(ctx, spec(t, e, "panics.wasm", smtest.Module(t, "testdata/panics"), nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close(ctx)
	_, err = chain.Process(ctx, batchOf(7000, "fine", "panic"), nil)
	var ee *engine.Error
	if !errors.As(err, &ee) || ee.Offset != 7001 ||
		!strings.HasPrefix(err.Error(), "smartmodule panics.wasm (filter) failed at offset 7001: panic: runtime error: invalid memory address or nil pointer dereference (at ") {
		t.Fatalf("error = %v", err)
	}
	t.Logf("a panic reads: %v", err)
}
