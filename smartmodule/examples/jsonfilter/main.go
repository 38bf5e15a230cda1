// Command jsonfilter is a SmartModule filter that keeps the JSON objects
// whose top-level field equals a value. Parameters:
//
//	field   the field's name (required)
//	equals  the value to compare with (required): a string field is
//	        compared by its text, any other field by its JSON text
//	        (42, true, null)
//
// Records without the field are dropped; a record that is not a JSON object
// stops the stream with an error naming its offset.
//
//	spate consume logs --smartmodule-path jsonfilter.wasm -e field=level -e equals=error
package main

import (
	"fmt"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/examples/internal/jsonscan"
	"github.com/spatehq/spate/smartmodule/filter"
)

var field, equals string

func init() {
	smartmodule.Init(func(p smartmodule.Params) (err error) {
		if field, err = p.Require("field"); err != nil {
			return err
		}
		equals, err = p.Require("equals")
		return err
	})
	filter.Register(func(r *smartmodule.Record) (bool, error) {
		raw, found, err := jsonscan.Field(r.Value, field)
		if err != nil {
			return false, fmt.Errorf("record value is %w", err)
		}
		if !found {
			return false, nil
		}
		if s, ok := jsonscan.String(raw); ok {
			return string(s) == equals, nil
		}
		return string(raw) == equals, nil
	})
}

func main() {}
