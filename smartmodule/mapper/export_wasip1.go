package mapper

import (
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

//go:wasmexport spate_v1_map
func export(ptr, size uint32) uint64 { return guest.Call(abi.KindMap, ptr, size) }
