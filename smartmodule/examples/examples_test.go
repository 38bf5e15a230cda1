package examples_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/smtest"
)

// Each example module is built with the standard toolchain (once, then
// cached by smtest) and run inside WebAssembly.

func values(vs ...string) []abi.Record {
	recs := make([]abi.Record, len(vs))
	for i, v := range vs {
		recs[i] = abi.Record{Offset: int64(1000 + i), Timestamp: 1700000000000, Key: []byte(fmt.Sprint("k", i)), Value: []byte(v)}
	}
	return recs
}

// describe renders outputs as "index:value" ("index:=" for unchanged) for
// comparison.
func describe(outs []abi.Output) string {
	var s []string
	for _, o := range outs {
		if o.Unchanged {
			s = append(s, fmt.Sprintf("%d:=", o.Index))
		} else {
			s = append(s, fmt.Sprintf("%d:%s", o.Index, o.Value))
		}
	}
	return strings.Join(s, " ")
}

func params(kv ...string) []abi.Param {
	var ps []abi.Param
	for i := 0; i < len(kv); i += 2 {
		ps = append(ps, abi.Param{Name: kv[i], Value: kv[i+1]})
	}
	return ps
}

// moduleError asserts err is the module's own error about record index,
// containing msg.
func moduleError(t *testing.T, err error, index uint32, msg string) {
	t.Helper()
	var me *abi.ModuleError
	if !errors.As(err, &me) || me.Index != index || !strings.Contains(me.Message, msg) {
		t.Fatalf("error = %v, want the module's error about record %d containing %q", err, index, msg)
	}
}

func TestEveryExampleIsAModuleOfItsKind(t *testing.T) {
	want := map[string]abi.Kind{
		"keepall": abi.KindFilter, "keep1pct": abi.KindFilter, "jsonfilter": abi.KindFilter,
		"uppercase": abi.KindMap, "flatten": abi.KindArrayMap, "filtermap": abi.KindFilterMap, "sum": abi.KindAggregate,
	}
	for _, name := range smtest.Examples {
		info, err := abi.Inspect(smtest.Example(t, name))
		if err != nil || info.Kind != want[name] {
			t.Errorf("%s: Inspect = %v, %v; want kind %v", name, info.Kind, err, want[name])
		}
	}
}

func TestKeepAllKeepsEveryRecordUnchanged(t *testing.T) {
	m, err := instantiate(t, smtest.Example(t, "keepall"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.process(values("a", "", "c"))
	if got := describe(outs); err != nil || got != "0:= 1:= 2:=" {
		t.Fatalf("outputs = %q, %v", got, err)
	}
}

func TestKeep1PctKeepsOffsetsThatAreMultiplesOfEvery(t *testing.T) {
	recs := make([]abi.Record, 1000)
	for i := range recs {
		recs[i] = abi.Record{Offset: int64(i), Value: []byte("v")}
	}
	m, err := instantiate(t, smtest.Example(t, "keep1pct"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if outs, err := m.process(recs); err != nil || len(outs) != 10 || outs[1].Index != 100 {
		t.Fatalf("default: %d outputs, %v; want 10 (every 100th)", len(outs), err)
	}
	m, err = instantiate(t, smtest.Example(t, "keep1pct"), params("every", "250"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if outs, err := m.process(recs); err != nil || describe(outs) != "0:= 250:= 500:= 750:=" {
		t.Fatalf("every=250: %q, %v", describe(outs), err)
	}
	_, err = instantiate(t, smtest.Example(t, "keep1pct"), params("every", "0"), nil)
	moduleError(t, err, abi.NoRecord, `parameter every="0": want a whole number of at least 1`)
}

func TestJSONFilterKeepsObjectsWhoseFieldEquals(t *testing.T) {
	wasm := smtest.Example(t, "jsonfilter")
	m, err := instantiate(t, wasm, params("field", "level", "equals", "error"), nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.process(values(
		`{"level":"error","msg":"disk full"}`,
		`{"level":"info"}`,
		`{"msg":"no level"}`,
		` {"nested":{"level":"error"}, "level" : "err\u006fr"}`,
		`{"level":["error"]}`,
	))
	if got := describe(outs); err != nil || got != "0:= 3:=" {
		t.Fatalf("outputs = %q, %v; want records 0 and 3", got, err)
	}

	m, err = instantiate(t, wasm, params("field", "code", "equals", "404"), nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err = m.process(values(`{"code":404}`, `{"code":"404"}`, `{"code":500}`))
	if got := describe(outs); err != nil || got != "0:= 1:=" {
		t.Fatalf("numbers: %q, %v", got, err)
	}
	_, err = m.process(values(`{"code":404}`, `not json`))
	moduleError(t, err, 1, "record value is not valid JSON")
	_, err = m.process(values(`[1]`))
	moduleError(t, err, 0, "record value is not a JSON object")
}

func TestJSONFilterNeedsBothParameters(t *testing.T) {
	wasm := smtest.Example(t, "jsonfilter")
	_, err := instantiate(t, wasm, params("equals", "x"), nil)
	moduleError(t, err, abi.NoRecord, `missing parameter "field" (give it with -e field=VALUE)`)
	_, err = instantiate(t, wasm, params("field", "x"), nil)
	moduleError(t, err, abi.NoRecord, `missing parameter "equals"`)
}

func TestUppercaseMapsValuesAndKeepsKeys(t *testing.T) {
	m, err := instantiate(t, smtest.Example(t, "uppercase"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	recs := values("hello, world", "grüße", "", "ALREADY")
	recs[1].Key = nil
	outs, err := m.process(recs)
	// Go's unicode tables keep ß as it is. An empty value upper-cases to
	// itself, which the SDK sends as the record unchanged.
	if got := describe(outs); err != nil || got != "0:HELLO, WORLD 1:GRÜßE 2:= 3:ALREADY" {
		t.Fatalf("outputs = %q, %v", got, err)
	}
	if string(outs[0].Key) != "k0" || outs[1].Key != nil {
		t.Errorf("keys = %q, %q; want k0 and null", outs[0].Key, outs[1].Key)
	}
}

func TestFlattenEmitsOneRecordPerArrayElement(t *testing.T) {
	m, err := instantiate(t, smtest.Example(t, "flatten"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.process(values(`[1, "two", {"three": [3]}]`, `[]`, `[null]`))
	if got := describe(outs); err != nil || got != `0:1 0:"two" 0:{"three": [3]} 2:null` {
		t.Fatalf("outputs = %q, %v", got, err)
	}
	for _, o := range outs[:3] {
		if string(o.Key) != "k0" {
			t.Errorf("output key %q, want the input's k0", o.Key)
		}
	}
	_, err = m.process(values(`[1]`, `{"a":1}`))
	moduleError(t, err, 1, "record value is not a JSON array")
}

func TestFilterMapKeepsEvenNAndEmitsIt(t *testing.T) {
	m, err := instantiate(t, smtest.Example(t, "filtermap"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.process(values(`{"n":4,"x":"y"}`, `{"n":3}`, `{"m":2}`, `{"n":"8"}`, `[2]`, `{"n":-10}`, `{"n":2.5}`))
	if got := describe(outs); err != nil || got != "0:4 5:-10" {
		t.Fatalf("outputs = %q, %v", got, err)
	}
	_, err = m.process(values(`{"n":2}`, `{"n":`))
	moduleError(t, err, 1, "record value is not valid JSON")
}

func TestSumAccumulatesAcrossBatchesFromTheInitialAccumulator(t *testing.T) {
	wasm := smtest.Example(t, "sum")
	m, err := instantiate(t, wasm, nil, []byte("10"))
	if err != nil {
		t.Fatal(err)
	}
	outs, err := m.process(values("1", " 2\n", "-3"))
	if got := describe(outs); err != nil || got != "0:11 1:13 2:10" {
		t.Fatalf("first batch: %q, %v", got, err)
	}
	outs, err = m.process(values("100"))
	if got := describe(outs); err != nil || got != "0:110" {
		t.Fatalf("second batch: %q, %v", got, err)
	}
	_, err = m.process(values("1", "x"))
	moduleError(t, err, 1, `value "x" is not an integer`)

	m, err = instantiate(t, wasm, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if outs, err := m.process(values("5")); err != nil || describe(outs) != "0:5" {
		t.Fatalf("without an initial accumulator: %q, %v", describe(outs), err)
	}
	_, err = instantiate(t, wasm, nil, []byte("ten"))
	moduleError(t, err, abi.NoRecord, `initial accumulator "ten" is not an integer`)
}

func TestAPanicInsideWebAssemblyBecomesTheModulesErrorAboutItsRecord(t *testing.T) {
	m, err := instantiate(t, smtest.Module(t, "testdata/panics"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.process(values("fine", "fine", "panic"))
	moduleError(t, err, 2, "panic: runtime error: invalid memory address or nil pointer dereference (at ")
	if !strings.Contains(err.Error(), "testdata/panics/main.go:") {
		t.Errorf("panic message %q does not say where", err)
	}
	_, err = m.process(values("fine", "error"))
	moduleError(t, err, 1, "this record is no good")
	// The instance goes on working after a failed call.
	if outs, err := m.process(values("fine")); err != nil || describe(outs) != "0:=" {
		t.Fatalf("after a panic: %q, %v", describe(outs), err)
	}
}

// BenchmarkKeepAll measures a trivial filter inside WebAssembly, with this
// test's plain host (writing the encoded batch into guest memory, one call,
// decoding the result): ns/record for 100-byte records in batches of 1,000.
func BenchmarkKeepAll(b *testing.B) {
	benchmarkFilter(b, "keepall", nil)
}

// BenchmarkJSONFilter is the same for the JSON filter on 100-byte JSON
// objects, half of which match.
func BenchmarkJSONFilter(b *testing.B) {
	benchmarkFilter(b, "jsonfilter", params("field", "level", "equals", "error"))
}

func benchmarkFilter(b *testing.B, name string, ps []abi.Param) {
	m, err := instantiate(b, smtest.Example(b, name), ps, nil)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]abi.Record, 1000)
	for i := range recs {
		level := "info "
		if i%2 == 0 {
			level = "error"
		}
		v := fmt.Sprintf(`{"ts":%d,"level":"%s","msg":"`, 1700000000000+i, level)
		v += strings.Repeat("x", 100-len(v)-2) + `"}`
		recs[i] = abi.Record{Offset: int64(i), Timestamp: 1700000000000, Value: []byte(v)}
	}
	// Encoded once, and the result only checked, not copied out: the
	// host's side is the engine's business (see its benchmarks).
	in := abi.AppendRecords(nil, recs)
	var rr abi.ResultReader
	cpu0 := cpuTime()
	for b.Loop() {
		res, err := m.raw(m.kind, in)
		if err == nil {
			_, err = rr.Reset(res)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N * len(recs))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
	// CPU time rather than wall time: on a machine shared with other work
	// the wall time says more about the neighbours than about the module.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/n, "cpu-ns/record")
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
