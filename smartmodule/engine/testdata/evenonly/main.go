//go:build wasip1

// Command evenonly is a filter map that keeps the records whose value is
// an even integer and replaces their value with "even:<value>"; a value
// that is not an integer fails the call.
package main

import (
	"strconv"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var buf []byte

//go:wasmexport spate_v1_filter_map
func filterMap(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil {
			return err
		}
		if n%2 == 0 {
			buf = append(append(buf[:0], "even:"...), r.Value...)
			w.Emit(i, r.Key, buf)
		}
		return nil
	})
}

func main() {}
