// Package filter makes a SmartModule that keeps or drops each record.
// Import it (and no other kind package) from the module's package main and
// call Register from an init function:
//
//	func init() {
//		filter.Register(func(r *smartmodule.Record) (bool, error) {
//			return bytes.Contains(r.Value, []byte("ERROR")), nil
//		})
//	}
//
//	func main() {}
//
// Importing the package exports spate_v1_filter from the module.
package filter

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

// Register makes fn the module's filter: it is called for every record and
// returns whether to keep it. An error stops the stream with its message
// and the record's offset. The last call to Register wins.
func Register(fn func(r *smartmodule.Record) (bool, error)) {
	guest.SetFilter(fn)
}
