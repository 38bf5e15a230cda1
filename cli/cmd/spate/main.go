// Command spate is Spate's CLI: a client for everything, and the launcher of
// the servers. See `spate --help`.
package main

import (
	"os"

	"github.com/spatehq/spate/cli/internal/root"
)

func main() { os.Exit(root.Main(os.Args[1:])) }
