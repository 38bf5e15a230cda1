package examples_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// A minimal host for the examples' tests: it speaks the ABI with wazero
// directly, so that these tests depend on the ABI's specification alone,
// not on the engine (smartmodule/engine) that the SPU runs modules with.

var (
	runtimeOnce sync.Once
	rt          wazero.Runtime
	compiled    sync.Map // *byte of the wasm -> wazero.CompiledModule
)

func hostRuntime(t testing.TB) wazero.Runtime {
	runtimeOnce.Do(func() {
		ctx := context.Background()
		cfg := wazero.NewRuntimeConfig()
		if cache, err := wazero.NewCompilationCacheWithDir(smtest.WazeroCacheDir(t)); err == nil {
			cfg = cfg.WithCompilationCache(cache)
		}
		rt = wazero.NewRuntimeWithConfig(ctx, cfg)
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	})
	return rt
}

// instance is one instance of a module, as one stream would have.
type instance struct {
	mod    api.Module
	alloc  api.Function
	kind   api.Function
	stderr *bytes.Buffer
}

// instantiate starts the module and calls its init with params and the
// initial accumulator (nil for none). It returns init's error, if any.
func instantiate(t testing.TB, wasm []byte, params []abi.Param, acc []byte) (*instance, error) {
	t.Helper()
	ctx := context.Background()
	r := hostRuntime(t)
	var cm wazero.CompiledModule
	if v, ok := compiled.Load(&wasm[0]); ok {
		cm = v.(wazero.CompiledModule)
	} else {
		var err error
		if cm, err = r.CompileModule(ctx, wasm); err != nil {
			t.Fatalf("compile: %v", err)
		}
		compiled.Store(&wasm[0], cm)
	}
	info, err := abi.Inspect(wasm)
	if err != nil {
		t.Fatal(err)
	}
	inst := &instance{stderr: &bytes.Buffer{}}
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().
		WithName("").WithStartFunctions(abi.ExportInitialize).WithStderr(inst.stderr))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	inst.mod = mod
	inst.alloc = mod.ExportedFunction(abi.ExportAlloc)
	inst.kind = mod.ExportedFunction(info.Kind.Export())
	_, err = inst.call(mod.ExportedFunction(abi.ExportInit), abi.AppendParams(nil, params, acc))
	return inst, err
}

// process runs one batch through the kind function.
func (inst *instance) process(recs []abi.Record) ([]abi.Output, error) {
	return inst.call(inst.kind, abi.AppendRecords(nil, recs))
}

func (inst *instance) call(fn api.Function, in []byte) ([]abi.Output, error) {
	buf, err := inst.raw(fn, in)
	if err != nil {
		return nil, err
	}
	var rr abi.ResultReader
	if _, err := rr.Reset(buf); err != nil {
		return nil, err
	}
	var outs []abi.Output
	for o, ok := rr.Next(); ok; o, ok = rr.Next() {
		if !o.Unchanged {
			o.Key, o.Value = bytes.Clone(o.Key), bytes.Clone(o.Value)
		}
		outs = append(outs, o)
	}
	return outs, rr.Err()
}

// raw writes in into the module's memory, calls fn on it and returns the
// result as it lies in guest memory (valid until the next call).
func (inst *instance) raw(fn api.Function, in []byte) ([]byte, error) {
	ctx := context.Background()
	res, err := inst.alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("alloc: %v; stderr: %s", err, inst.stderr)
	}
	ptr := uint32(res[0])
	if !inst.mod.Memory().Write(ptr, in) {
		return nil, fmt.Errorf("alloc returned %#x, out of memory", ptr)
	}
	res, err = fn.Call(ctx, uint64(ptr), uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("%s: %v; stderr: %s", fn.Definition().Name(), err, inst.stderr)
	}
	rptr, rlen := abi.Unpack(res[0])
	buf, ok := inst.mod.Memory().Read(rptr, rlen)
	if !ok {
		return nil, fmt.Errorf("result at %#x+%d is outside memory", rptr, rlen)
	}
	return buf, nil
}
