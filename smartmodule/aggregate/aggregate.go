// Package aggregate makes a SmartModule that folds each record into an
// accumulator and emits the accumulator after each record. The accumulator
// lives as long as the module instance: one consume or produce stream.
// Import the package (and no other kind package) from the module's package
// main and call Register from an init function:
//
//	func init() {
//		aggregate.Register(func(acc []byte, r *smartmodule.Record) ([]byte, error) {
//			return append(acc, r.Value...), nil // concatenates the values
//		})
//	}
//
//	func main() {}
//
// Importing the package exports spate_v1_aggregate from the module.
package aggregate

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

// Register makes fn the module's aggregate. It is called for every record
// with the accumulator so far — the initial accumulator given when the
// stream started, or empty — and returns the new one, which the module
// emits in place of the record (with the record's key, offset, timestamp
// and headers). fn may append to acc and return the result, or return a
// new slice; acc is valid only during the call. An error stops the stream
// with its message and the record's offset. The last call to Register
// wins.
func Register(fn func(acc []byte, r *smartmodule.Record) ([]byte, error)) {
	guest.SetAggregate(fn)
}
