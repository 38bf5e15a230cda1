//go:build wasip1

// Command uppercase is a map that uppercases each record's value and
// keeps its key.
package main

import (
	"bytes"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var buf []byte

//go:wasmexport spate_v1_map
func mapper(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		buf = append(buf[:0], bytes.ToUpper(r.Value)...)
		w.Emit(i, r.Key, buf)
		return nil
	})
}

func main() {}
