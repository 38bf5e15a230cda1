// Command flatten is a SmartModule array-map that turns a record whose
// value is a JSON array into one record per element, each holding the
// element's JSON text and the input's key. An empty array drops the
// record; a value that is not a JSON array stops the stream with an error
// naming its offset.
package main

import (
	"fmt"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/arraymap"
	"github.com/spatehq/spate/smartmodule/examples/internal/jsonscan"
)

// out is reused from record to record.
var out []smartmodule.KV

func init() {
	arraymap.Register(func(r *smartmodule.Record) ([]smartmodule.KV, error) {
		out = out[:0]
		err := jsonscan.Elements(r.Value, func(raw []byte) error {
			out = append(out, smartmodule.KV{Key: r.Key, Value: raw})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("record value is %w", err)
		}
		return out, nil
	})
}

func main() {}
