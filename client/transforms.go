package client

import (
	"errors"
	"fmt"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
)

// Transform is a SmartModule for the SPU to run inline in a consume or
// produce stream (see WithSmartModules): a WebAssembly module that filters,
// maps or aggregates records, with its parameters. Set exactly one of Name
// and Wasm.
type Transform struct {
	// Name is a module of the caller's tenant in the registry:
	// "group/name@version", or "group/name" for its highest version.
	Name string
	// Wasm is an unregistered module's WebAssembly bytes, sent with the
	// request (at most 32 MiB).
	Wasm []byte
	// Kind is the kind the caller expects: "filter", "map", "filter-map",
	// "array-map" or "aggregate". The SPU refuses a module of another kind.
	// Empty accepts any kind.
	Kind string
	// Params are passed to the module's init, in order (`-e name=value`).
	Params []TransformParam
	// InitialAccumulator is an aggregate's first accumulator; nil leaves
	// the module's own default.
	InitialAccumulator []byte
}

// TransformParam is one named parameter of a SmartModule.
type TransformParam struct {
	Name, Value string
}

// maxInlineWasm is the largest module sent with a request, as the SPU
// accepts.
const maxInlineWasm = 32 << 20

// smartModuleKinds are the kinds a Transform.Kind may name.
var smartModuleKinds = map[string]bool{"": true, "filter": true, "map": true, "filter-map": true, "array-map": true, "aggregate": true}

// invocation returns m as the data plane's message, or why it is invalid.
func (m Transform) invocation() (*dataplanev1.SmartModuleInvocation, error) {
	inv := &dataplanev1.SmartModuleInvocation{Kind: m.Kind, InitialAccumulator: m.InitialAccumulator}
	switch {
	case m.Name != "" && m.Wasm != nil:
		return nil, fmt.Errorf("client: SmartModule %q: set Name or Wasm, not both", m.Name)
	case m.Name != "":
		inv.Module = &dataplanev1.SmartModuleInvocation_Name{Name: m.Name}
	case len(m.Wasm) > 0:
		if len(m.Wasm) > maxInlineWasm {
			return nil, fmt.Errorf("client: SmartModule of %d bytes exceeds the limit of %d bytes (32 MiB)", len(m.Wasm), maxInlineWasm)
		}
		inv.Module = &dataplanev1.SmartModuleInvocation_Wasm{Wasm: m.Wasm}
	default:
		return nil, errors.New("client: a SmartModule needs a Name (from the registry) or its Wasm bytes")
	}
	if !smartModuleKinds[m.Kind] {
		return nil, fmt.Errorf("client: SmartModule kind %q: use filter, map, filter-map, array-map or aggregate", m.Kind)
	}
	for _, p := range m.Params {
		if p.Name == "" {
			return nil, errors.New("client: a SmartModule parameter needs a name")
		}
		inv.Params = append(inv.Params, &dataplanev1.SmartModuleParam{Name: p.Name, Value: p.Value})
	}
	return inv, nil
}

// SmartModulesOption is both a ConsumeOption and a ProducerOption.
type SmartModulesOption interface {
	ConsumeOption
	ProducerOption
}

// transforms is a chain of SmartModules, or why it is invalid.
type transforms struct {
	chain []*dataplanev1.SmartModuleInvocation
	err   error
}

type smartModulesOption transforms

func (o smartModulesOption) applyToConsumer(c *consumeConfig)  { c.transforms = transforms(o) }
func (o smartModulesOption) applyToProducer(c *producerConfig) { c.transforms = transforms(o) }

// WithSmartModules makes the SPU run a chain of SmartModules, in order, on
// the records of the stream: on a consumer's partitions before the records
// are sent, so that only what the chain emits crosses the network; on a
// producer's batches before they are written. Each partition gets its own
// instance of every module, so an aggregate's accumulator lives as long as
// that partition's stream (a reconnection starts it again).
//
// A consumer sees each output record with the offset of the stored record
// it came from: offsets may skip (a filter) and repeat (an array map). A
// producer's callbacks get Offset -1, as the chain decides what is written.
//
// A module that fails (an error it reports, a trap, a call past the SPU's
// time limit, memory past its limit) ends the stream with an error naming
// the module, its kind, the offset and the module's own message; the
// consumer or the batch fails with it (INVALID_ARGUMENT), without retrying.
// A later WithSmartModules replaces an earlier one; one without modules
// clears the chain.
func WithSmartModules(modules ...Transform) SmartModulesOption {
	var t transforms
	for i, m := range modules {
		inv, err := m.invocation()
		if err != nil {
			if len(modules) > 1 {
				err = fmt.Errorf("%w (module %d of the chain)", err, i+1)
			}
			return smartModulesOption{err: err}
		}
		t.chain = append(t.chain, inv)
	}
	return smartModulesOption(t)
}
