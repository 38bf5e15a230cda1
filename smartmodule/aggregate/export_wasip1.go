package aggregate

import (
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

//go:wasmexport spate_v1_aggregate
func export(ptr, size uint32) uint64 { return guest.Call(abi.KindAggregate, ptr, size) }
