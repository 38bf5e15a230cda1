//go:build wasip1

// Command filter keeps the records whose offset is a multiple of the
// parameter "every" (default 1: all of them) and, with "contains", whose
// value contains that string.
package main

import (
	"bytes"
	"strconv"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var (
	every    int64 = 1
	contains []byte
)

func init() {
	guest.Init = func() error {
		if s, ok := guest.Params["every"]; ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return &paramError{s}
			}
			every = n
		}
		if s, ok := guest.Params["contains"]; ok {
			contains = []byte(s)
		}
		return nil
	}
}

type paramError struct{ s string }

func (e *paramError) Error() string { return "parameter every=" + e.s + " is not a positive integer" }

//go:wasmexport spate_v1_filter
func filter(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		if r.Offset%every == 0 && (contains == nil || bytes.Contains(r.Value, contains)) {
			w.Unchanged(i)
		}
		return nil
	})
}

func main() {}
