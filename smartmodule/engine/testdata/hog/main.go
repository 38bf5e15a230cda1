//go:build wasip1

// Command hog is a filter that allocates memory without end and keeps it.
package main

import "github.com/spatehq/spate/smartmodule/engine/testdata/guest"

var kept [][]byte

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	for {
		b := make([]byte, 1<<20)
		b[0] = 1
		kept = append(kept, b)
	}
	return guest.Result(nil)
}

func main() {}
