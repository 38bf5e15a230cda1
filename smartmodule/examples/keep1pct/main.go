// Command keep1pct is a SmartModule filter that keeps one record in every N
// by offset: those whose offset is a multiple of N. N is the parameter
// every (default 100, so 1% of the records).
//
//	spate consume T --smartmodule-path keep1pct.wasm --filter -e every=1000
package main

import (
	"fmt"
	"strconv"

	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/filter"
)

var every int64 = 100

func init() {
	smartmodule.Init(func(p smartmodule.Params) error {
		s, ok := p.Get("every")
		if !ok {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("parameter every=%q: want a whole number of at least 1", s)
		}
		every = n
		return nil
	})
	filter.Register(func(r *smartmodule.Record) (bool, error) {
		return r.Offset%every == 0, nil
	})
}

func main() {}
