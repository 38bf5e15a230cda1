//go:build wasip1

// Command loop is a filter that never returns from a call.
package main

import "github.com/spatehq/spate/smartmodule/engine/testdata/guest"

var spins int

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	for {
		spins++
	}
	return guest.Result(nil)
}

func main() {}
