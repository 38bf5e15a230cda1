// Package mapper makes a SmartModule that replaces each record's key and
// value (a "map"; the package has another name because map is a Go
// keyword). Import it (and no other kind package) from the module's package
// main and call Register from an init function:
//
//	func init() {
//		mapper.Register(func(r *smartmodule.Record) (smartmodule.KV, error) {
//			return smartmodule.KV{Key: r.Key, Value: bytes.ToUpper(r.Value)}, nil
//		})
//	}
//
//	func main() {}
//
// Importing the package exports spate_v1_map from the module.
package mapper

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

// Register makes fn the module's map: it is called for every record and
// returns the record to emit in its place, which keeps the input's offset,
// timestamp and headers. An error stops the stream with its message and the
// record's offset. The last call to Register wins.
func Register(fn func(r *smartmodule.Record) (smartmodule.KV, error)) {
	guest.SetMap(fn)
}
