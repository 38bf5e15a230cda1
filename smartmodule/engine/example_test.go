package engine_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/spatehq/spate/internal/batch"
	"github.com/spatehq/spate/smartmodule/abi"
	"github.com/spatehq/spate/smartmodule/engine"
)

// A consumer's stream with one filter: compile the module once, start a
// chain for the stream, and run each read of stored batches through it.
func Example() {
	ctx := context.Background()
	e, err := engine.New(ctx, engine.Config{CacheDir: "/var/lib/spate/smartmodules"})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close(ctx)

	wasm, err := os.ReadFile("jsonfilter.wasm")
	if err != nil {
		log.Fatal(err)
	}
	m, err := e.Compile(ctx, wasm) // abi errors for what is not a SmartModule
	if err != nil {
		log.Fatal(err)
	}
	c, err := e.NewChain(ctx, engine.Spec{
		Module: m,
		Name:   "acme/json-filter@1.0.0",
		Params: []abi.Param{{Name: "field", Value: "level"}, {Name: "equals", Value: "error"}},
	})
	if err != nil {
		log.Fatal(err) // an *engine.Error when init refused the parameters
	}
	defer c.Close(ctx)

	var stored []byte // whole batches read from the log, from offset 1000 on
	derived, err := c.TransformConsume(ctx, nil, stored, 1000)
	if err != nil {
		log.Fatal(err) // e.g. smartmodule acme/json-filter@1.0.0 (filter) failed at offset 1234: ...
	}
	recs, _ := batch.DecodeAll(derived, nil)
	fmt.Println(len(recs), "records kept")
}
