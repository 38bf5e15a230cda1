// Package smartmodule is the Go SDK for writing SmartModules: small
// WebAssembly programs that filter, map or aggregate the records of a Spate
// stream inline, on the SPU, so that only the records a consumer wants
// cross the network. This package holds what every kind of module shares
// (Record, KV, Params, Init); each kind has its own package, which the
// module imports to become a module of that kind:
//
//	smartmodule/filter     keep or drop each record
//	smartmodule/mapper     replace each record (a "map")
//	smartmodule/filtermap  drop a record or replace it
//	smartmodule/arraymap   replace each record with zero or more records
//	smartmodule/aggregate  fold each record into an accumulator and emit it
//
// The interface between Spate and a module is specified in smartmodule/abi;
// the SDK implements its guest side, so a module never deals with it.
//
// # Writing a module
//
// A module is a Go package main that imports exactly one kind package,
// registers its function from an init function (a module is a WASI
// reactor: the host calls its exports and never runs main, so main stays
// empty), and optionally reads its parameters with Init:
//
//	package main
//
//	import (
//		"bytes"
//
//		"github.com/spatehq/spate/smartmodule"
//		"github.com/spatehq/spate/smartmodule/filter"
//	)
//
//	var word []byte
//
//	func init() {
//		smartmodule.Init(func(p smartmodule.Params) error {
//			w, err := p.Require("word")
//			word = []byte(w)
//			return err
//		})
//		filter.Register(func(r *smartmodule.Record) (bool, error) {
//			return bytes.Contains(r.Value, word), nil
//		})
//	}
//
//	func main() {}
//
// The function is called once per record, but records reach the module in
// batches of many, so a call costs little more than a Go function call.
// It may keep state in package variables: a module instance serves one
// stream, and calls never overlap. Records and their bytes are valid only
// during the call; what the function returns is copied before it is called
// again, so it may reuse its buffers and allocate nothing per record.
//
// An error the function returns ends the stream, and the user reads its
// message with the module's name and the record's offset; so does a panic,
// which reads "panic: <value> (at file:line)". An error from Init ends the
// stream before its first record, which is where missing or malformed
// parameters belong.
//
// The folder smartmodule/examples has a module of each kind: jsonfilter,
// uppercase, flatten, filtermap, sum, keepall and keep1pct.
//
// # Building it
//
// With the Go toolchain (1.24 or later), in the module's folder:
//
//	spate smartmodule build . -o my-filter.wasm
//
// or, the same without the CLI:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o my-filter.wasm .
//
// -buildmode=c-shared is required: it makes a reactor, whose exports the
// host calls, rather than a command that runs main once. smartmodule/build
// does the same from Go and checks the result is a module of one kind.
//
// # Uploading and running it
//
// Register the module with the control plane under a name and a version
// (versions are immutable; a name without a version means the highest):
//
//	spate smartmodule create acme/my-filter --wasm-file my-filter.wasm --version 1.0.0
//
// then name it where records flow, with its parameters:
//
//	spate consume logs --filter acme/my-filter -e word=timeout
//	spate produce logs --smartmodule acme/my-filter -e word=timeout
//
// or run a file that was never uploaded with --smartmodule-path
// my-filter.wasm. Consumers see the offsets of the stored records, with
// gaps where a filter dropped some. An aggregate's accumulator lasts for
// the stream and starts from the initial accumulator given with it, or
// empty. Several modules given together run as a chain, in order.
package smartmodule
