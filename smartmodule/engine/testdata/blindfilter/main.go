//go:build wasip1

// Command blindfilter keeps every 100th record of each call without
// reading the records (only their count): it measures what the host spends
// per record, apart from the module's own work.
package main

import (
	"encoding/binary"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var w abi.ResultWriter

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	b := guest.Input(size)
	w.Reset()
	n := binary.LittleEndian.Uint32(b)
	for i := uint32(0); i < n; i += 100 {
		w.Unchanged(i)
	}
	return guest.Result(w.Bytes())
}

func main() {}
