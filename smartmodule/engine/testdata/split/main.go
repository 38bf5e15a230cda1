//go:build wasip1

// Command split is an array map that makes one record, with a null key, of
// each comma-separated part of a value (none of an empty value).
package main

import (
	"bytes"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

//go:wasmexport spate_v1_array_map
func arrayMap(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		if len(r.Value) == 0 {
			return nil
		}
		for part := range bytes.SplitSeq(r.Value, []byte(",")) {
			w.Emit(i, nil, part)
		}
		return nil
	})
}

func main() {}
