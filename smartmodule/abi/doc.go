// Package abi defines version 1 of the interface between Spate and a
// SmartModule: a WebAssembly module that filters, maps or aggregates records
// inline in a stream. Both sides use this package: the host engine
// (smartmodule/engine) to encode the records it passes in and decode what the
// module returns, and the guest SDK (smartmodule) to do the reverse. It has no
// dependencies and no unsafe code, so it compiles for GOOS=wasip1 too.
//
// # The module
//
// A SmartModule is a WebAssembly module built as a WASI reactor (for Go:
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared). It imports nothing
// but wasi_snapshot_preview1, exports its linear memory as "memory", and
// exports these functions, where i32 and i64 are WebAssembly value types:
//
//	_initialize                    ()             run once after instantiation (WASI reactor)
//	spate_v1_alloc                 (size i32) i32 a buffer of size bytes for the host to write
//	spate_v1_init                  (ptr, len i32) i64 receives the parameters; returns a result
//	spate_v1_<kind>                (ptr, len i32) i64 processes one batch of records; returns a result
//
// and exactly one kind function, one of:
//
//	spate_v1_filter      keep or drop each record
//	spate_v1_map         replace each record's key and value
//	spate_v1_filter_map  drop a record or replace it
//	spate_v1_array_map   replace each record with zero or more records
//	spate_v1_aggregate   fold each record into an accumulator and emit it
//
// The version is part of every export name, so that the kind and the version
// of a module can be read from its export section without running it
// (Inspect). A later ABI gets new names (spate_v2_...); a host refuses a
// module whose version it does not implement, naming both.
//
// # A call
//
// To call the module the host asks spate_v1_alloc for a buffer, writes the
// encoded input there (the pointer and size are valid until the next call
// into the module) and calls init or the kind function with that pointer and
// length. The function returns an i64 that packs where its result lies in
// guest memory: pointer in the high 32 bits, length in the low 32 bits. The
// result stays valid until the next call into the module. A module instance
// is used by one stream at a time, so there is never more than one call in
// flight.
//
// # Encodings
//
// All integers are little-endian. A "bytes" field is an int32 length
// followed by that many bytes; a length of -1 means null (only keys may be
// null; a null value reads as empty).
//
// Parameters (the input of spate_v1_init):
//
//	uint32 parameter count
//	  bytes  name
//	  bytes  value
//	bytes  initial accumulator (aggregate only; -1 when none was given)
//
// Records (the input of a kind function) is one batch:
//
//	uint32 record count
//	  int64  offset            as stored in the partition
//	  int64  timestamp         milliseconds since the Unix epoch
//	  bytes  key
//	  bytes  value
//
// Record headers stay on the host: every output record carries the headers
// of the input record it came from.
//
// A result (of init and of every kind function) starts with a status byte:
//
//	uint8  status              0 ok, 1 error
//
// then, for status 0 (init returns a count of 0):
//
//	uint32 output count
//	  uint32 input index       which input record this output came from
//	  uint8  flags             bit 0 (Unchanged): the input record as it was,
//	                           and no key or value follows
//	  bytes  key               only when Unchanged is clear
//	  bytes  value             only when Unchanged is clear
//
// Input indexes never decrease from one output to the next. A filter emits
// Unchanged outputs only; a map and an aggregate emit exactly one output per
// input; an array map and a filter map emit zero or more (filter map: at most
// one). The host checks all of this and ends the stream with an error naming
// the module when a result breaks a rule.
//
// For status 1 (an error of the module, for example a JSON field it could
// not parse):
//
//	uint32 input index       the record that failed; NoRecord when none did
//	bytes  message           for a person, UTF-8
//
// # Failures the module cannot report
//
// A trap, a call that runs past the host's time limit, memory growth past
// the host's limit, or a WASI proc_exit all end the stream too. The host adds
// what the module wrote to stderr (a Go panic's message, for instance) to
// the error, so that the user reads the guest's own words rather than
// "wasm trap: unreachable". The guest SDK recovers panics inside the kind
// function and reports them as status 1 with the panic's message.
//
// # Offsets
//
// Outputs keep the offset of the input record they came from, so a consumer
// sees the offsets of the stored records. On the consume path the SPU sends
// them in derived batches (see internal/batch, AttrDerived), whose offset
// deltas may skip and repeat.
package abi
