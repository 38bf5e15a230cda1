// Command panics is a filter for the SDK's tests: it panics on a record
// whose value is "panic", fails on "error", and keeps everything else.
package main

import (
	"errors"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/filter"
)

func init() {
	filter.Register(func(r *smartmodule.Record) (bool, error) {
		switch string(r.Value) {
		case "panic":
			var p *smartmodule.Record
			return p.Offset > 0, nil // nil dereference
		case "error":
			return false, errors.New("this record is no good")
		}
		return true, nil
	})
}

func main() {}
