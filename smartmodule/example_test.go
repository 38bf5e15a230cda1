package smartmodule_test

import (
	"fmt"

	"github.com/spatehq/spate/smartmodule"
)

// An init function checks its parameters and says how to fix a missing
// one; NewParams lets a test call it outside WebAssembly.
func ExampleParams_Require() {
	var field string
	initFn := func(p smartmodule.Params) (err error) {
		field, err = p.Require("field")
		return err
	}
	fmt.Println(initFn(smartmodule.NewParams(map[string]string{"equals": "error"}, nil)))
	fmt.Println(initFn(smartmodule.NewParams(map[string]string{"field": "level"}, nil)), field)
	// Output:
	// missing parameter "field" (give it with -e field=VALUE)
	// <nil> level
}
