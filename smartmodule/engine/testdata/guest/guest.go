//go:build wasip1

// Package guest is the guest side of the ABI, written directly against
// smartmodule/abi without the SDK, for the engine's test modules. Each test
// module (a main package beside this one) sets Init and exports its kind
// function with Run.
package guest

import (
	"unsafe"

	"github.com/spatehq/spate/smartmodule/abi"
)

var (
	in     []byte
	out    abi.ResultWriter
	reader abi.RecordReader
	// Params holds the parameters init received.
	Params = map[string]string{}
	// Accumulator is the initial accumulator init received (nil: none).
	Accumulator []byte
	// Init, when set, is called by init after Params is filled; an error
	// is reported as status 1.
	Init func() error
)

//go:wasmexport spate_v1_alloc
func alloc(size uint32) uint32 {
	if uint32(cap(in)) < size || cap(in) == 0 {
		in = make([]byte, max(size, 1))
	}
	in = in[:size]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(in))))
}

//go:wasmexport spate_v1_init
func initModule(ptr, size uint32) uint64 {
	params, acc, err := abi.DecodeParams(in[:size])
	if err != nil {
		return Result(out.Fail(abi.NoRecord, err.Error()))
	}
	for _, p := range params {
		Params[p.Name] = p.Value
	}
	if acc != nil {
		Accumulator = append([]byte{}, acc...)
	}
	if Init != nil {
		if err := Init(); err != nil {
			return Result(out.Fail(abi.NoRecord, err.Error()))
		}
	}
	out.Reset()
	return Result(out.Bytes())
}

// Result packs a result buffer for the host. The buffer must stay alive
// until the next call (callers pass package-level buffers).
func Result(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return abi.Pack(uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

// Input returns the size bytes the host wrote at the last alloc.
func Input(size uint32) []byte { return in[:size] }

// Run decodes the records the host wrote at the last alloc and calls f on
// each with the result writer; an error from f fails the call at that
// record.
func Run(size uint32, f func(i uint32, r abi.Record, w *abi.ResultWriter) error) uint64 {
	n, err := reader.Reset(in[:size])
	if err != nil {
		return Result(out.Fail(abi.NoRecord, err.Error()))
	}
	out.Reset()
	for i := range uint32(n) {
		r, ok := reader.Next()
		if !ok {
			break
		}
		if err := f(i, r, &out); err != nil {
			return Result(out.Fail(i, err.Error()))
		}
	}
	if err := reader.Err(); err != nil {
		return Result(out.Fail(abi.NoRecord, err.Error()))
	}
	return Result(out.Bytes())
}
