// Package filtermap makes a SmartModule that drops each record or replaces
// it. Import it (and no other kind package) from the module's package main
// and call Register from an init function:
//
//	func init() {
//		filtermap.Register(func(r *smartmodule.Record) (smartmodule.KV, bool, error) {
//			level, rest, ok := bytes.Cut(r.Value, []byte(" "))
//			if !ok || string(level) != "ERROR" {
//				return smartmodule.KV{}, false, nil
//			}
//			return smartmodule.KV{Key: r.Key, Value: rest}, true, nil
//		})
//	}
//
//	func main() {}
//
// Importing the package exports spate_v1_filter_map from the module.
package filtermap

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

// Register makes fn the module's filter-map: it is called for every record
// and returns keep false to drop it, or keep true and the record to emit in
// its place (which keeps the input's offset, timestamp and headers). An
// error stops the stream with its message and the record's offset. The
// last call to Register wins.
func Register(fn func(r *smartmodule.Record) (out smartmodule.KV, keep bool, err error)) {
	guest.SetFilterMap(fn)
}
