//go:build wasip1

// Command noexport has the ABI's alloc and init but no kind function.
package main

import _ "github.com/spatehq/spate/smartmodule/engine/testdata/guest"

func main() {}
