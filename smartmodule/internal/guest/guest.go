// Package guest is the machinery of the guest SDK behind the kind packages
// (smartmodule/filter, smartmodule/mapper, ...): the input buffer that
// spate_v1_alloc hands out, the parameters that spate_v1_init receives,
// and the loop that decodes a batch of records, calls the module's
// function for each and encodes the result. Everything but the
// //go:wasmexport glue (exports_wasip1.go) builds for any platform, so it is
// tested on the host.
//
// The loop is written for WebAssembly, where every Go function call costs
// several times what it costs natively: records are decoded in place, the
// result is appended to by hand, and the only call per record is the
// module's own function. A module instance runs one call at a time (the ABI
// says so), so the state here is package-level and unguarded.
package guest

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/hooks"
)

var le = binary.LittleEndian

var (
	// input is the buffer spate_v1_alloc returns; the host writes the input
	// of the next call there.
	input []byte
	// out holds the result of the last successful call and fail that of
	// the last failed one; each stays valid until the next call, as the ABI
	// promises.
	out  []byte
	fail abi.ResultWriter
	// rec is the record being processed. It is package-level so that
	// passing its address to the module's function does not allocate.
	rec smartmodule.Record

	// The module's kind and function: one of the five is set.
	kind        abi.Kind
	filterFn    func(*smartmodule.Record) (bool, error)
	mapFn       func(*smartmodule.Record) (smartmodule.KV, error)
	filterMapFn func(*smartmodule.Record) (smartmodule.KV, bool, error)
	arrayMapFn  func(*smartmodule.Record) ([]smartmodule.KV, error)
	aggregateFn func([]byte, *smartmodule.Record) ([]byte, error)
	// acc is an aggregate's accumulator, kept from call to call.
	acc []byte
)

// SetFilter, SetMap, SetFilterMap, SetArrayMap and SetAggregate install the
// module's function; the kind packages' Register call them.
func SetFilter(fn func(*smartmodule.Record) (bool, error)) {
	kind, filterFn = abi.KindFilter, fn
}

// SetMap installs a map; see SetFilter.
func SetMap(fn func(*smartmodule.Record) (smartmodule.KV, error)) {
	kind, mapFn = abi.KindMap, fn
}

// SetFilterMap installs a filter-map; see SetFilter.
func SetFilterMap(fn func(*smartmodule.Record) (smartmodule.KV, bool, error)) {
	kind, filterMapFn = abi.KindFilterMap, fn
}

// SetArrayMap installs an array-map; see SetFilter.
func SetArrayMap(fn func(*smartmodule.Record) ([]smartmodule.KV, error)) {
	kind, arrayMapFn = abi.KindArrayMap, fn
}

// SetAggregate installs an aggregate; see SetFilter.
func SetAggregate(fn func([]byte, *smartmodule.Record) ([]byte, error)) {
	kind, aggregateFn = abi.KindAggregate, fn
}

// Input returns a buffer of size bytes for the host to write the input of
// the next call into. The buffer is reused from call to call.
func Input(size int) []byte {
	if size < 0 {
		size = 0
	}
	if cap(input) < size || cap(input) == 0 {
		input = make([]byte, max(size, 4096, 2*cap(input)))
	}
	input = input[:cap(input)]
	return input[:size]
}

// InputBuffer returns the whole buffer Input last returned (its full
// capacity), for the export glue to check the host's pointer against.
func InputBuffer() []byte { return input }

// Init decodes the parameters in buf, sets an aggregate's accumulator to
// the initial one (or empty), runs the functions smartmodule.Init
// registered and returns the result: status 0 with no outputs, or status 1
// with the first error.
func Init(buf []byte) []byte {
	params, initial, err := abi.DecodeParams(buf)
	if err != nil {
		return fail.Fail(abi.NoRecord, abi.ExportInit+": "+err.Error())
	}
	acc = append(acc[:0], initial...)
	for _, fn := range hooks.Init {
		if err := callInit(fn, params, initial); err != nil {
			return fail.Fail(abi.NoRecord, err.Error())
		}
	}
	out = append(out[:0], abi.StatusOK, 0, 0, 0, 0)
	return out
}

func callInit(fn func([]abi.Param, []byte) error, params []abi.Param, acc []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("init: %s", panicMessage(v))
		}
	}()
	return fn(params, acc)
}

// Run processes the batch of records in buf with the module's function,
// which must be of kind k, and returns the result. An error of the function
// becomes status 1 with its message and the record's index; so does a
// panic, as "panic: <value> (at file:line)".
func Run(k abi.Kind, buf []byte) []byte {
	if k != kind {
		return fail.Fail(abi.NoRecord, fmt.Sprintf("the module has no %s function: call %s.Register from an init function of package main", k, kindPackage(k)))
	}
	if len(buf) < 4 {
		return fail.Fail(abi.NoRecord, k.Export()+": "+abi.ErrMalformed.Error()+": truncated record count")
	}
	n := le.Uint32(buf)
	if uint64(n)*24 > uint64(len(buf)-4) {
		return fail.Fail(abi.NoRecord, fmt.Sprintf("%s: %v: %d records in %d bytes", k.Export(), abi.ErrMalformed, n, len(buf)-4))
	}
	out = append(out[:0], abi.StatusOK, 0, 0, 0, 0)
	var index uint32
	count, msg := run(buf[4:], n, &index)
	if msg != "" {
		return fail.Fail(index, msg)
	}
	le.PutUint32(out[1:], count)
	return out
}

// run calls the module's function for each of the n records in b,
// counting them in *index, and returns the number of outputs, or the
// message of the first error or panic (with *index at its record).
// Malformed input is reported with *index set to NoRecord.
func run(b []byte, n uint32, index *uint32) (count uint32, msg string) {
	defer func() {
		if v := recover(); v != nil {
			msg = panicMessage(v)
		}
	}()
	p := 0
	for i := uint32(0); i < n; i++ {
		*index = i
		// Decode the record in place: offset, timestamp, key, value.
		if len(b)-p < 24 {
			return malformed(index, i, "truncated record")
		}
		rec.Offset = int64(le.Uint64(b[p:]))
		rec.Timestamp = int64(le.Uint64(b[p+8:]))
		size := int(int32(le.Uint32(b[p+16:])))
		p += 20
		switch {
		case size == -1:
			rec.Key = nil
		case size < 0 || size > len(b)-p-4:
			return malformed(index, i, "key length out of range")
		default:
			rec.Key = b[p : p+size : p+size]
			p += size
		}
		size = int(int32(le.Uint32(b[p:])))
		p += 4
		switch {
		case size == -1:
			rec.Value = b[p:p:p]
		case size < 0 || size > len(b)-p:
			return malformed(index, i, "value length out of range")
		default:
			rec.Value = b[p : p+size : p+size]
			p += size
		}

		switch kind {
		case abi.KindFilter:
			keep, err := filterFn(&rec)
			if err != nil {
				return 0, err.Error()
			}
			if keep {
				out = append(out, byte(i), byte(i>>8), byte(i>>16), byte(i>>24), abi.FlagUnchanged)
				count++
			}
		case abi.KindMap:
			kv, err := mapFn(&rec)
			if err != nil {
				return 0, err.Error()
			}
			emit(i, kv.Key, kv.Value)
			count++
		case abi.KindFilterMap:
			kv, keep, err := filterMapFn(&rec)
			if err != nil {
				return 0, err.Error()
			}
			if keep {
				emit(i, kv.Key, kv.Value)
				count++
			}
		case abi.KindArrayMap:
			kvs, err := arrayMapFn(&rec)
			if err != nil {
				return 0, err.Error()
			}
			for _, kv := range kvs {
				emit(i, kv.Key, kv.Value)
			}
			count += uint32(len(kvs))
		case abi.KindAggregate:
			next, err := aggregateFn(acc, &rec)
			if err != nil {
				return 0, err.Error()
			}
			// next may alias acc (appended in place) or the input: copy
			// it into the accumulator's own buffer (copy handles overlap).
			acc = append(acc[:0], next...)
			emitNew(i, rec.Key, acc)
			count++
		}
	}
	if p != len(b) {
		return malformed(index, abi.NoRecord, fmt.Sprintf("%d bytes after the last record", len(b)-p))
	}
	return count, ""
}

// malformed reports input that breaks the encoding: an error about no
// record in particular, naming record i unless it is NoRecord.
func malformed(index *uint32, i uint32, what string) (uint32, string) {
	*index = abi.NoRecord
	if i != abi.NoRecord {
		what = fmt.Sprintf("record %d: %s", i, what)
	}
	return 0, fmt.Sprintf("%s: input: %v: %s", kind.Export(), abi.ErrMalformed, what)
}

// emit appends the output (key, value) for input record i: Unchanged when
// they are the record's own key and value (the same slices), a new record
// otherwise.
func emit(i uint32, key, value []byte) {
	if same(key, rec.Key) && same(value, rec.Value) {
		out = append(out, byte(i), byte(i>>8), byte(i>>16), byte(i>>24), abi.FlagUnchanged)
		return
	}
	emitNew(i, key, value)
}

// emitNew appends a new record (key, value) for input record i.
func emitNew(i uint32, key, value []byte) {
	out = append(out, byte(i), byte(i>>8), byte(i>>16), byte(i>>24), 0)
	if key == nil {
		out = append(out, 0xff, 0xff, 0xff, 0xff)
	} else {
		out = le.AppendUint32(out, uint32(len(key)))
		out = append(out, key...)
	}
	out = le.AppendUint32(out, uint32(len(value)))
	out = append(out, value...)
}

// same reports whether a and b are the same slice of memory (or both
// empty), with the same nil-ness.
func same(a, b []byte) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0]
}

// panicMessage describes a recovered panic and where it happened: the
// innermost frame outside the runtime and this package.
func panicMessage(v any) string {
	msg := fmt.Sprintf("panic: %v", v)
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") && !strings.Contains(f.Function, "smartmodule/internal/guest.") {
			return fmt.Sprintf("%s (at %s:%d)", msg, f.File, f.Line)
		}
		if !more {
			return msg
		}
	}
}

func kindPackage(k abi.Kind) string {
	if k == abi.KindMap {
		return "mapper"
	}
	return strings.ReplaceAll(k.String(), "-", "")
}
