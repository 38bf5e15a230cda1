package abi_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/spatehq/spate/smartmodule/abi"
)

func TestRecordsRoundTrip(t *testing.T) {
	in := []abi.Record{
		{Offset: 7, Timestamp: 1700000000000, Key: nil, Value: []byte("v1")},
		{Offset: 8, Timestamp: -1, Key: []byte{}, Value: []byte{}},
		{Offset: 1 << 40, Timestamp: 3, Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 1000)},
	}
	buf := abi.AppendRecords(nil, in)
	size := 4
	for _, r := range in {
		size += abi.RecordSize(r)
	}
	if len(buf) != size {
		t.Fatalf("encoded %d bytes, RecordSize says %d", len(buf), size)
	}
	rr, n, err := abi.NewRecordReader(buf)
	if err != nil || n != len(in) {
		t.Fatalf("NewRecordReader = %d, %v", n, err)
	}
	for i := 0; ; i++ {
		r, ok := rr.Next()
		if !ok {
			if i != len(in) {
				t.Fatalf("read %d records, want %d", i, len(in))
			}
			break
		}
		w := in[i]
		if r.Offset != w.Offset || r.Timestamp != w.Timestamp || !bytes.Equal(r.Value, w.Value) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Key, w.Key) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedRecordsAreRefused(t *testing.T) {
	good := abi.AppendRecords(nil, []abi.Record{{Offset: 1, Value: []byte("abc")}})
	for _, tc := range []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"huge count", []byte{0xff, 0xff, 0xff, 0x7f}},
		{"truncated", good[:len(good)-1]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := &abi.RecordReader{}
			if _, err := rr.Reset(tc.buf); err != nil {
				if !errors.Is(err, abi.ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				return
			}
			for {
				if _, ok := rr.Next(); !ok {
					break
				}
			}
			if err := rr.Err(); !errors.Is(err, abi.ErrMalformed) {
				t.Fatalf("Err() = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParamsRoundTrip(t *testing.T) {
	params := []abi.Param{{Name: "field", Value: "level"}, {Name: "equals", Value: ""}}
	for _, acc := range [][]byte{nil, {}, []byte("42")} {
		got, gotAcc, err := abi.DecodeParams(abi.AppendParams(nil, params, acc))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != params[0] || got[1] != params[1] {
			t.Errorf("params = %+v", got)
		}
		if (gotAcc == nil) != (acc == nil) || !bytes.Equal(gotAcc, acc) {
			t.Errorf("accumulator = %q (nil %v), want %q (nil %v)", gotAcc, gotAcc == nil, acc, acc == nil)
		}
	}
}

func TestResults(t *testing.T) {
	var w abi.ResultWriter
	w.Unchanged(0)
	w.Emit(2, nil, []byte("B"))
	w.Emit(2, []byte("k"), []byte{})
	var rr abi.ResultReader
	n, err := rr.Reset(w.Bytes())
	if err != nil || n != 3 {
		t.Fatalf("Reset = %d, %v", n, err)
	}
	var outs []abi.Output
	for o, ok := rr.Next(); ok; o, ok = rr.Next() {
		outs = append(outs, o)
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if !outs[0].Unchanged || outs[1].Index != 2 || outs[1].Key != nil || string(outs[1].Value) != "B" || string(outs[2].Key) != "k" {
		t.Fatalf("outputs = %+v", outs)
	}

	w.Reset()
	_, err = rr.Reset(w.Fail(5, "field \"level\" is not a string"))
	var me *abi.ModuleError
	if !errors.As(err, &me) || me.Index != 5 || me.Message != "field \"level\" is not a string" {
		t.Fatalf("error result = %v", err)
	}
	if _, err := rr.Reset([]byte{9}); !errors.Is(err, abi.ErrMalformed) {
		t.Fatalf("status 9 = %v, want ErrMalformed", err)
	}
}

func TestInspectRefusesWhatIsNotASmartModule(t *testing.T) {
	// A module exporting only "memory" and one function, built by hand.
	notSM := wasmWithExports(t, "memory", "spate_v1_alloc")
	v2 := wasmWithExports(t, "memory", "spate_v2_filter", "spate_v2_alloc")
	two := wasmWithExports(t, "memory", "spate_v1_filter", "spate_v1_map", "spate_v1_alloc", "spate_v1_init")
	noInit := wasmWithExports(t, "memory", "spate_v1_map", "spate_v1_alloc")
	ok := wasmWithExports(t, "memory", "spate_v1_array_map", "spate_v1_alloc", "spate_v1_init")
	for _, tc := range []struct {
		name string
		wasm []byte
		want error
	}{
		{"text", []byte("(module)"), abi.ErrNotWasm},
		{"truncated", ok[:len(ok)-3], abi.ErrNotWasm},
		{"no kind", notSM, abi.ErrNoKind},
		{"two kinds", two, abi.ErrNoKind},
		{"no init", noInit, abi.ErrNoKind},
		{"version 2", v2, abi.ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := abi.Inspect(tc.wasm); !errors.Is(err, tc.want) {
				t.Fatalf("Inspect = %v, want %v", err, tc.want)
			}
		})
	}
	info, err := abi.Inspect(ok)
	if err != nil || info.Kind != abi.KindArrayMap || info.Version != 1 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
}

// wasmWithExports builds a module whose export section names the given
// exports: "memory" as a memory, everything else as function 0. The module
// is not valid for execution; Inspect reads only the export section.
func wasmWithExports(t *testing.T, names ...string) []byte {
	t.Helper()
	var sec []byte
	sec = append(sec, byte(len(names)))
	for _, n := range names {
		sec = append(sec, byte(len(n)))
		sec = append(sec, n...)
		if n == "memory" {
			sec = append(sec, 2, 0)
		} else {
			sec = append(sec, 0, 0)
		}
	}
	out := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	out = append(out, 0, 3, 'a', 'b', 'c') // a custom section before it
	out = append(out, 7, byte(len(sec)))
	return append(out, sec...)
}
