package guest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/aggregate"
	"github.com/spatehq/spate/smartmodule/arraymap"
	"github.com/spatehq/spate/smartmodule/filter"
	"github.com/spatehq/spate/smartmodule/filtermap"
	"github.com/spatehq/spate/smartmodule/internal/guest"
	"github.com/spatehq/spate/smartmodule/mapper"
)

// These tests run the SDK on the host, calling the functions the wasm
// exports call; the examples' tests run the same code inside WebAssembly.
// Each test registers its own function: a module has one, and the last
// registration wins.

func records(values ...string) []byte {
	recs := make([]abi.Record, len(values))
	for i, v := range values {
		recs[i] = abi.Record{Offset: int64(100 + i), Timestamp: 1, Value: []byte(v)}
	}
	recs[0].Key = []byte("k0")
	return abi.AppendRecords(nil, recs)
}

// call runs the kind function on the input as the host would, through the
// buffer spate_v1_alloc hands out.
func call(t *testing.T, k abi.Kind, in []byte) ([]abi.Output, error) {
	t.Helper()
	buf := guest.Input(len(in))
	copy(buf, in)
	var rr abi.ResultReader
	if _, err := rr.Reset(guest.Run(k, buf)); err != nil {
		return nil, err
	}
	var outs []abi.Output
	for o, ok := rr.Next(); ok; o, ok = rr.Next() {
		o.Key, o.Value = clone(o.Key), clone(o.Value)
		outs = append(outs, o)
	}
	if err := rr.Err(); err != nil {
		t.Fatalf("malformed result: %v", err)
	}
	return outs, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func initModule(t *testing.T, params []abi.Param, acc []byte) error {
	t.Helper()
	in := abi.AppendParams(nil, params, acc)
	buf := guest.Input(len(in))
	copy(buf, in)
	var rr abi.ResultReader
	n, err := rr.Reset(guest.Init(buf))
	if err == nil && n != 0 {
		t.Fatalf("init returned %d outputs", n)
	}
	return err
}

func TestFilterEmitsTheRecordsItKeepsUnchanged(t *testing.T) {
	filter.Register(func(r *smartmodule.Record) (bool, error) {
		return r.Value[0] == 'y', nil
	})
	outs, err := call(t, abi.KindFilter, records("yes", "no", "yep"))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Index != 0 || outs[1].Index != 2 || !outs[0].Unchanged || !outs[1].Unchanged {
		t.Fatalf("outputs = %+v, want records 0 and 2 unchanged", outs)
	}
}

func TestMapEmitsUnchangedOnlyWhenItReturnsTheRecordsOwnBytes(t *testing.T) {
	mapper.Register(func(r *smartmodule.Record) (smartmodule.KV, error) {
		if string(r.Value) == "same" {
			return smartmodule.KV{Key: r.Key, Value: r.Value}, nil
		}
		return smartmodule.KV{Key: nil, Value: []byte(strings.ToUpper(string(r.Value)))}, nil
	})
	outs, err := call(t, abi.KindMap, records("same", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || !outs[0].Unchanged || outs[1].Unchanged || outs[1].Key != nil || string(outs[1].Value) != "ABC" {
		t.Fatalf("outputs = %+v", outs)
	}
}

func TestFilterMapAndArrayMapEmitPerInputIndex(t *testing.T) {
	filtermap.Register(func(r *smartmodule.Record) (smartmodule.KV, bool, error) {
		return smartmodule.KV{Key: r.Key, Value: r.Value[:1]}, len(r.Value) > 2, nil
	})
	outs, err := call(t, abi.KindFilterMap, records("ab", "xyz"))
	if err != nil || len(outs) != 1 || outs[0].Index != 1 || string(outs[0].Value) != "x" {
		t.Fatalf("filter-map outputs = %+v, %v", outs, err)
	}

	var kvs []smartmodule.KV
	arraymap.Register(func(r *smartmodule.Record) ([]smartmodule.KV, error) {
		kvs = kvs[:0]
		for i := range r.Value {
			kvs = append(kvs, smartmodule.KV{Key: r.Key, Value: r.Value[i : i+1]})
		}
		return kvs, nil
	})
	outs, err = call(t, abi.KindArrayMap, records("ab", "", "c"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		if o.Unchanged { // record 2's one output is the record itself
			got = append(got, string(rune('0'+o.Index))+":unchanged")
			continue
		}
		got = append(got, string(rune('0'+o.Index))+":"+string(o.Key)+":"+string(o.Value))
	}
	if strings.Join(got, " ") != "0:k0:a 0:k0:b 2:unchanged" {
		t.Fatalf("array-map outputs = %q", got)
	}
}

func TestAggregateStartsFromTheInitialAccumulatorAndKeepsIt(t *testing.T) {
	aggregate.Register(func(acc []byte, r *smartmodule.Record) ([]byte, error) {
		return append(acc, r.Value...), nil
	})
	if err := initModule(t, nil, []byte(">")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   []byte
		want []string
	}{
		{records("a", "b"), []string{">a", ">ab"}},
		{records("c"), []string{">abc"}},
	} {
		outs, err := call(t, abi.KindAggregate, tc.in)
		if err != nil || len(outs) != len(tc.want) {
			t.Fatalf("outputs = %+v, %v", outs, err)
		}
		for i, o := range outs {
			if string(o.Value) != tc.want[i] || o.Index != uint32(i) {
				t.Errorf("output %d = %d %q, want %q", i, o.Index, o.Value, tc.want[i])
			}
		}
	}
	if err := initModule(t, nil, nil); err != nil {
		t.Fatal(err)
	}
	if outs, _ := call(t, abi.KindAggregate, records("z")); len(outs) != 1 || string(outs[0].Value) != "z" {
		t.Fatalf("without an initial accumulator: %+v", outs)
	}
}

func TestErrorsAndPanicsNameTheRecord(t *testing.T) {
	filter.Register(func(r *smartmodule.Record) (bool, error) {
		switch string(r.Value) {
		case "bad":
			return false, errors.New(`field "level" is not a string`)
		case "panic":
			_ = r.Value[len(r.Value)] // index out of range
		}
		return true, nil
	})
	_, err := call(t, abi.KindFilter, records("ok", "bad"))
	var me *abi.ModuleError
	if !errors.As(err, &me) || me.Index != 1 || me.Message != `field "level" is not a string` {
		t.Fatalf("error = %v, want the function's error about record 1", err)
	}
	_, err = call(t, abi.KindFilter, records("ok", "ok", "panic"))
	if !errors.As(err, &me) || me.Index != 2 ||
		!strings.HasPrefix(me.Message, "panic: runtime error: index out of range [5] with length 5 (at ") || !strings.Contains(me.Message, "guest_test.go:") {
		t.Fatalf("panic = %v (index %d), want a panic message at record 2 naming this file", err, me.Index)
	}
	// The module goes on working after a failed call.
	if outs, err := call(t, abi.KindFilter, records("ok")); err != nil || len(outs) != 1 {
		t.Fatalf("after a panic: %+v, %v", outs, err)
	}
}

func TestAModuleWithoutItsFunctionSaysHowToRegisterIt(t *testing.T) {
	filter.Register(func(*smartmodule.Record) (bool, error) { return true, nil })
	_, err := call(t, abi.KindMap, records("x"))
	var me *abi.ModuleError
	if !errors.As(err, &me) || me.Index != abi.NoRecord || !strings.Contains(me.Message, "call mapper.Register from an init function") {
		t.Fatalf("error = %v", err)
	}
}

func TestMalformedInputIsReportedNotPanicked(t *testing.T) {
	filter.Register(func(*smartmodule.Record) (bool, error) { return true, nil })
	in := records("x")
	_, err := call(t, abi.KindFilter, in[:len(in)-1])
	var me *abi.ModuleError
	if !errors.As(err, &me) || me.Index != abi.NoRecord || me.Message != "spate_v1_filter: input: abi: malformed buffer: record 0: value length out of range" {
		t.Fatalf("error = %v", err)
	}
}

func TestInitErrorsAndParams(t *testing.T) {
	var got smartmodule.Params
	smartmodule.Init(func(p smartmodule.Params) error {
		got = p
		_, err := p.Require("field")
		return err
	})
	err := initModule(t, []abi.Param{{Name: "equals", Value: "x"}}, nil)
	if err == nil || err.Error() != `missing parameter "field" (give it with -e field=VALUE)` {
		t.Fatalf("init error = %v", err)
	}
	if err := initModule(t, []abi.Param{{Name: "field", Value: "level"}, {Name: "equals", Value: ""}}, []byte("0")); err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Get("equals"); !ok || v != "" {
		t.Errorf(`Get("equals") = %q, %v`, v, ok)
	}
	if acc, ok := got.Accumulator(); !ok || string(acc) != "0" {
		t.Errorf("Accumulator() = %q, %v", acc, ok)
	}
	if names := got.Names(); strings.Join(names, ",") != "field,equals" {
		t.Errorf("Names() = %q", names)
	}
}

func TestProcessingABatchAllocatesNothingPerRecord(t *testing.T) {
	filter.Register(func(r *smartmodule.Record) (bool, error) { return r.Offset%2 == 0, nil })
	vals := make([]string, 1000)
	for i := range vals {
		vals[i] = strings.Repeat("v", 100)
	}
	in := records(vals...)
	buf := guest.Input(len(in))
	copy(buf, in)
	guest.Run(abi.KindFilter, buf) // grows the result buffer once
	if allocs := testing.AllocsPerRun(10, func() { guest.Run(abi.KindFilter, buf) }); allocs != 0 {
		t.Errorf("a batch of 1,000 records allocates %v times", allocs)
	}
}

func BenchmarkFilterBatchOnHost(b *testing.B) {
	filter.Register(func(r *smartmodule.Record) (bool, error) { return r.Offset%100 == 0, nil })
	vals := make([]string, 1000)
	for i := range vals {
		vals[i] = strings.Repeat("v", 100)
	}
	in := records(vals...)
	buf := guest.Input(len(in))
	copy(buf, in)
	b.ReportAllocs()
	for b.Loop() {
		guest.Run(abi.KindFilter, buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(vals)), "ns/record")
}
