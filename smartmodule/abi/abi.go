package abi

import (
	"errors"
	"fmt"
)

// Version is the ABI version this package implements.
const Version = 1

// Export names every SmartModule of this version has (besides its kind's).
const (
	// ExportInitialize is the WASI reactor's initializer, called once after
	// instantiation.
	ExportInitialize = "_initialize"
	// ExportMemory is the module's linear memory.
	ExportMemory = "memory"
	// ExportAlloc returns a buffer for the host to write input into.
	ExportAlloc = "spate_v1_alloc"
	// ExportInit receives the parameters.
	ExportInit = "spate_v1_init"
)

// exportPrefix starts every export of the ABI, whatever its version.
const exportPrefix = "spate_v"

// Kind is what a SmartModule does with each record.
type Kind uint8

// The kinds of SmartModule.
const (
	KindFilter Kind = iota + 1
	KindMap
	KindFilterMap
	KindArrayMap
	KindAggregate
)

// Kinds lists every kind, in the order of their values.
var Kinds = []Kind{KindFilter, KindMap, KindFilterMap, KindArrayMap, KindAggregate}

var kindNames = map[Kind]string{
	KindFilter:    "filter",
	KindMap:       "map",
	KindFilterMap: "filter-map",
	KindArrayMap:  "array-map",
	KindAggregate: "aggregate",
}

// String returns the kind's name as users write it: "filter", "map",
// "filter-map", "array-map" or "aggregate".
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Export returns the name of the kind's function, for example
// "spate_v1_filter_map".
func (k Kind) Export() string {
	switch k {
	case KindFilter:
		return "spate_v1_filter"
	case KindMap:
		return "spate_v1_map"
	case KindFilterMap:
		return "spate_v1_filter_map"
	case KindArrayMap:
		return "spate_v1_array_map"
	case KindAggregate:
		return "spate_v1_aggregate"
	}
	return ""
}

// ErrUnknownKind is returned by ParseKind for a name that is not a kind.
var ErrUnknownKind = errors.New("abi: unknown SmartModule kind")

// ParseKind returns the kind named s, as Kind.String writes it.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w %q (want filter, map, filter-map, array-map or aggregate)", ErrUnknownKind, s)
}

// NoRecord is the input index of an error that is about no record in
// particular (an error of init, for example).
const NoRecord = ^uint32(0)

// Result status bytes.
const (
	StatusOK    = 0
	StatusError = 1
)

// FlagUnchanged marks an output that is its input record as it was.
const FlagUnchanged = 1

// Pack packs a pointer and a length into the i64 a function returns.
func Pack(ptr, size uint32) uint64 { return uint64(ptr)<<32 | uint64(size) }

// Unpack splits what a function returned into pointer and length.
func Unpack(v uint64) (ptr, size uint32) { return uint32(v >> 32), uint32(v) }
