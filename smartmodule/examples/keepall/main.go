// Command keepall is a SmartModule filter that keeps every record: the
// cheapest possible module, for measuring what the engine itself costs.
package main

import (
	"github.com/spatehq/spate/smartmodule"
	"github.com/spatehq/spate/smartmodule/filter"
)

func init() {
	filter.Register(func(*smartmodule.Record) (bool, error) { return true, nil })
}

func main() {}
