package client_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spatehq/spate/client"
)

func TestWithSmartModulesRefusesAMalformedChainBeforeAnyCall(t *testing.T) {
	// No SPU listens there: the chain is refused before any call.
	c, err := client.New(client.WithSPU("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name  string
		chain []client.Transform
		says  string
	}{
		{"neither name nor bytes", []client.Transform{{Kind: "filter"}}, "needs a Name"},
		{"both", []client.Transform{{Name: "acme/x", Wasm: []byte{0}}}, "set Name or Wasm, not both"},
		{"unknown kind", []client.Transform{{Name: "acme/x", Kind: "sort"}}, `kind "sort"`},
		{"nameless parameter", []client.Transform{{Name: "acme/x", Params: []client.TransformParam{{Value: "v"}}}}, "parameter needs a name"},
		{"second of a chain", []client.Transform{{Name: "acme/x"}, {}}, "module 2 of the chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Consume(context.Background(), "t", client.WithSmartModules(tc.chain...))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Consume = %v; want an error saying %q", err, tc.says)
			}
			_, err = c.NewProducer(context.Background(), "t", client.WithSmartModules(tc.chain...))
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("NewProducer = %v; want an error saying %q", err, tc.says)
			}
		})
	}
}
