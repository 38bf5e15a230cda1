//go:build wasip1

// Command trap is a filter that keeps every record but crashes on the
// record whose value is "crash": with a Go panic (parameter mode=panic, the
// default) or a nil pointer dereference (mode=nil).
package main

import (
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

type point struct{ x int }

var nowhere *point

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		if string(r.Value) == "crash" {
			if guest.Params["mode"] == "nil" {
				nowhere.x++
			}
			panic("the record said crash")
		}
		w.Unchanged(i)
		return nil
	})
}

func main() {}
