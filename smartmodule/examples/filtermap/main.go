// Command filtermap is a SmartModule filter-map that keeps the JSON objects
// whose field "n" is an even integer and replaces each with the text of n
// (`{"n":4,"x":"y"}` becomes `4`). Other records are dropped; a value that
// is not JSON stops the stream with an error naming its offset.
package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/examples/internal/jsonscan"
	"github.com/spatehq/spate/smartmodule/filtermap"
)

func init() {
	filtermap.Register(func(r *smartmodule.Record) (smartmodule.KV, bool, error) {
		raw, found, err := jsonscan.Field(r.Value, "n")
		if errors.Is(err, jsonscan.ErrNotObject) || err == nil && !found {
			return smartmodule.KV{}, false, nil
		}
		if err != nil {
			return smartmodule.KV{}, false, fmt.Errorf("record value is %w", err)
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n%2 != 0 {
			return smartmodule.KV{}, false, nil
		}
		return smartmodule.KV{Key: r.Key, Value: raw}, true, nil
	})
}

func main() {}
