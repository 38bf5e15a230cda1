//go:build wasip1

// Command count is an aggregate that sums the integer values of the
// records into a decimal accumulator (initially the initial accumulator,
// or 0) and emits the running sum for each record.
package main

import (
	"strconv"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine/testdata/guest"
)

var (
	sum int64
	buf []byte
)

func init() {
	guest.Init = func() error {
		if guest.Accumulator == nil {
			return nil
		}
		var err error
		sum, err = strconv.ParseInt(string(guest.Accumulator), 10, 64)
		return err
	}
}

//go:wasmexport spate_v1_aggregate
func aggregate(ptr, size uint32) uint64 {
	return guest.Run(size, func(i uint32, r abi.Record, w *abi.ResultWriter) error {
		n, err := strconv.ParseInt(string(r.Value), 10, 64)
		if err != nil {
			return err
		}
		sum += n
		buf = strconv.AppendInt(buf[:0], sum, 10)
		w.Emit(i, r.Key, buf)
		return nil
	})
}

func main() {}
