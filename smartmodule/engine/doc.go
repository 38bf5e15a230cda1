// Package engine runs SmartModules (see smartmodule/abi for the ABI) on
// wazero: it compiles modules, keeps them by digest, and runs chains of
// module instances over the records of one stream.
//
// # Modules
//
// Engine.Compile checks a module with abi.Inspect and the types of its
// exports, compiles it once per digest ("sha256:<hex>" of its bytes) and
// keeps it in memory (at most Config.MaxModules, least recently used first
// out) and, with Config.CacheDir, in wazero's compilation cache on disk, so
// that a restarted SPU loads the machine code instead of compiling again.
// An SPU that learns a module's digest from the registry asks Cached first
// and fetches the bytes only on a miss.
//
// # Chains
//
// Each stream (a consumer's or a producer's) gets its own Chain:
// Engine.NewChain instantiates each module of the chain, runs its WASI
// reactor initializer and its init with the stream's parameters (and an
// aggregate's initial accumulator). The chain then passes records through
// the modules in order, many records per call (up to 1 MiB or 16,384
// records), never one call per record:
//
//   - Process takes and returns []batch.Record: outputs keep the offset,
//     timestamp and headers of the record they came from.
//   - TransformConsume turns stored batches into derived batches
//     (batch.AttrDerived) for a consumer: the offsets the consumer sees are
//     those of the stored records.
//   - TransformProduce turns produced batches into the batches the SPU
//     writes.
//
// The engine checks each result against the rules of the module's kind (a
// filter only keeps or drops, a map emits one record per record, input
// indexes never decrease, ...).
//
// # Limits and failures
//
// Every call into a module runs under Config.CallTimeout and every instance
// under Config.MemoryLimitBytes. A module that reports an error, traps
// (panics), runs past the time limit, grows past the memory limit or breaks
// the ABI fails its chain with an *Error that names the module, its kind,
// the offset (or the offsets of the call) and the cause in the guest's own
// words where it gave some: what it wrote to stderr (a Go panic and the
// guest frame that raised it), never just "wasm trap: unreachable". The
// chain is then dead; every other chain, of that module or another, goes on.
//
// The engine enforces the time limit itself, cheaply: Compile rewrites each
// module (smartmodule/internal/wasmrewrite) so that every loop iteration
// counts down, and every 65,536 iterations the guest leaves machine code
// for Go (so that the Go scheduler can stop it for the garbage collector)
// and checks an exported stop flag, trapping when it is set; a timer (and
// the caller's context, and Engine.Close) sets it when a call runs too
// long. The digest stays that of the bytes given; wazero's
// compilation cache holds the rewritten module. A module the rewriter
// refuses (a WebAssembly proposal it does not decode) runs, with a warning
// in the log, in a second runtime where wazero enforces the limit with
// close-on-context-done, which leaves machine code for Go at every loop
// iteration and costs Go-compiled guests several times their speed
// (wazero issue #2466). Guests cannot block the host: their clock sleeps
// (poll_oneoff) return at once, as wazero's default nanosleep does.
//
// # Metrics
//
// With Config.Registerer the engine exports, per module name and kind,
// spate_smartmodule_records_in_total, spate_smartmodule_records_out_total,
// spate_smartmodule_seconds_total (time in calls, instantiation included)
// and spate_smartmodule_errors_total (chains failed), and the gauge
// spate_smartmodule_instances and the counter
// spate_smartmodule_compiles_total.
//
// # Concurrency
//
// An Engine is safe for concurrent use. A Chain is not: it belongs to one
// stream, which calls it from one goroutine at a time.
package engine
