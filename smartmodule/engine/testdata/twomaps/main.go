//go:build wasip1

// Command twomaps is a map that breaks the rules: it emits two records for
// each input.
package main

import (
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

//go:wasmexport spate_v1_map
func mapper(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		w.Emit(i, nil, r.Value)
		w.Emit(i, nil, r.Value)
		return nil
	})
}

func main() {}
