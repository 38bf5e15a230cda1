//go:build wasip1

// Command malformed is a filter whose results break the ABI, as the
// parameter mode says: garbage (status 7), truncated (an output count with
// no outputs), changed (a filter emitting a changed record), decreasing
// (input indexes going back), outofrange (an index past the input) or
// pastmemory (a result past the end of memory).
package main

import (
	"encoding/binary"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var (
	res []byte
	w   abi.ResultWriter
)

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	w.Reset()
	switch guest.Params["mode"] {
	case "garbage":
		res = append(res[:0], 7, 1, 2, 3)
	case "truncated":
		res = binary.LittleEndian.AppendUint32(append(res[:0], abi.StatusOK), 3)
	case "changed":
		w.Emit(0, []byte("k"), []byte("changed"))
		res = w.Bytes()
	case "decreasing":
		w.Unchanged(1)
		w.Unchanged(0)
		res = w.Bytes()
	case "outofrange":
		w.Unchanged(1 << 20)
		res = w.Bytes()
	case "pastmemory":
		return abi.Pack(0xffff0000, 1<<16)
	}
	return guest.Result(res)
}

func main() {}
