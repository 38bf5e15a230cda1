package smartmodule

import (
	"fmt"
	"maps"
	"slices"

	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/internal/hooks"
)

// Record is one record of the stream as a module's function sees it. It is
// valid only during the call: the SDK reuses it, and Key and Value point
// into the input buffer, so copy what you keep (an aggregate's accumulator
// is kept for you).
type Record struct {
	// Offset is the record's offset in its partition.
	Offset int64
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp int64
	// Key is nil for a null key.
	Key []byte
	// Value is never nil; a null value reads as empty.
	Value []byte
}

// KV is a record a map, filter-map or array-map function emits. The SDK
// copies it before the function is called again, so the function may reuse
// its buffers. Returning the input record's own Key and Value slices emits
// the record unchanged, which spares the host rebuilding it.
type KV struct {
	// Key is nil for a null key.
	Key   []byte
	Value []byte
}

// Params are the parameters a module was started with (`-e name=value` on
// the command line), and, for an aggregate, its initial accumulator.
type Params struct {
	list        []abi.Param
	accumulator []byte
	hasAcc      bool
}

// Get returns the value of the parameter name and whether it was given.
func (p Params) Get(name string) (string, bool) {
	for _, kv := range p.list {
		if kv.Name == name {
			return kv.Value, true
		}
	}
	return "", false
}

// Require returns the value of the parameter name, or an error telling the
// user how to give it.
func (p Params) Require(name string) (string, error) {
	if v, ok := p.Get(name); ok {
		return v, nil
	}
	return "", fmt.Errorf("missing parameter %q (give it with -e %s=VALUE)", name, name)
}

// Names returns the names of the parameters given, in order.
func (p Params) Names() []string {
	names := make([]string, len(p.list))
	for i, kv := range p.list {
		names[i] = kv.Name
	}
	return names
}

// Accumulator returns the initial accumulator given to an aggregate, and
// whether one was given.
func (p Params) Accumulator() ([]byte, bool) { return p.accumulator, p.hasAcc }

// NewParams returns Params holding the given parameters (in the order of
// their names) and initial accumulator (nil for none). Modules receive
// theirs through Init; NewParams is for testing a module's init function
// outside WebAssembly.
func NewParams(params map[string]string, accumulator []byte) Params {
	p := Params{accumulator: accumulator, hasAcc: accumulator != nil}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p.list = append(p.list, abi.Param{Name: name, Value: params[name]})
	}
	return p
}

// Init registers fn to receive the module's parameters once, after the
// module is instantiated and before the first record. An error ends the
// stream before it starts, with fn's message: use it for missing or
// malformed parameters. Init may be called more than once; the functions
// run in the order they were registered. Call it from an init function of
// package main.
func Init(fn func(p Params) error) {
	hooks.Init = append(hooks.Init, func(params []abi.Param, accumulator []byte) error {
		p := Params{list: params, hasAcc: accumulator != nil}
		if accumulator != nil {
			p.accumulator = append([]byte{}, accumulator...)
		}
		return fn(p)
	})
}
