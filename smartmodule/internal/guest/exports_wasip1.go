package guest

import (
	"fmt"
	"unsafe"

	"github.com/spatehq/spate/smartmodule/abi"
)

//go:wasmexport spate_v1_alloc
func alloc(size int32) uint32 {
	return addr(Input(int(size)))
}

//go:wasmexport spate_v1_init
func initExport(ptr, size uint32) uint64 {
	in, ok := inputAt(ptr, size)
	if !ok {
		return pack(badInput(ptr, size))
	}
	return pack(Init(in))
}

// Call runs the kind function of k on the input the host wrote at ptr
// (size bytes) and returns the packed location of the result. Each kind
// package's //go:wasmexport function calls it.
func Call(k abi.Kind, ptr, size uint32) uint64 {
	in, ok := inputAt(ptr, size)
	if !ok {
		return pack(badInput(ptr, size))
	}
	return pack(Run(k, in))
}

// inputAt returns the input the host wrote at ptr, which must be the start
// of the buffer spate_v1_alloc returned.
func inputAt(ptr, size uint32) ([]byte, bool) {
	in := InputBuffer()
	if cap(in) == 0 || ptr != addr(in) || int(size) > len(in) {
		return nil, false
	}
	return in[:size], true
}

func badInput(ptr, size uint32) []byte {
	return fail.Fail(abi.NoRecord, fmt.Sprintf("input at %#x (%d bytes) is not the buffer spate_v1_alloc returned", ptr, size))
}

func pack(out []byte) uint64 { return abi.Pack(addr(out), uint32(len(out))) }

// addr is the address of b's first byte in linear memory.
func addr(b []byte) uint32 {
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
