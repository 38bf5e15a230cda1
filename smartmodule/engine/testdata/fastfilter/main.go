//go:build wasip1

// Command fastfilter keeps one record in 100 by offset, decoding the
// records by hand rather than with abi.RecordReader: the cheapest filter
// the ABI allows, for benchmarks of the host's side.
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
	le := binary.LittleEndian
	w.Reset()
	if len(b) < 4 {
		return guest.Result(w.Fail(abi.NoRecord, "short input"))
	}
	n := le.Uint32(b)
	p := 4
	for i := range n {
		if p+24 > len(b) {
			return guest.Result(w.Fail(abi.NoRecord, "truncated record"))
		}
		off := int64(le.Uint64(b[p:]))
		p += 16
		if k := int32(le.Uint32(b[p:])); k > 0 {
			p += int(k)
		}
		p += 4
		if p+4 > len(b) {
			return guest.Result(w.Fail(abi.NoRecord, "truncated record"))
		}
		p += 4 + int(int32(le.Uint32(b[p:])))
		if off%100 == 0 {
			w.Unchanged(i)
		}
	}
	return guest.Result(w.Bytes())
}

func main() {}
