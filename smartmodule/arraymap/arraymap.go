// Package arraymap makes a SmartModule that replaces each record with zero
// or more records. Import it (and no other kind package) from the module's
// package main and call Register from an init function:
//
//	var lines []smartmodule.KV // reused from record to record
//
//	func init() {
//		arraymap.Register(func(r *smartmodule.Record) ([]smartmodule.KV, error) {
//			lines = lines[:0]
//			for line := range bytes.Lines(r.Value) {
//				lines = append(lines, smartmodule.KV{Key: r.Key, Value: line})
//			}
//			return lines, nil
//		})
//	}
//
//	func main() {}
//
// Importing the package exports spate_v1_array_map from the module.
package arraymap

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/internal/guest"
)

// Register makes fn the module's array-map: it is called for every record
// and returns the records to emit in its place, in order, each with the
// input's offset, timestamp and headers; none drops the record. The SDK
// copies them before the next call, so fn may reuse the slice and its
// buffers. An error stops the stream with its message and the record's
// offset. The last call to Register wins.
func Register(fn func(r *smartmodule.Record) ([]smartmodule.KV, error)) {
	guest.SetArrayMap(fn)
}
