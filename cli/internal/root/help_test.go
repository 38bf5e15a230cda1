package root_test

import (
	"io"
	"testing"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/root"
)

// TestEveryCommandHasExamples walks the command tree: every runnable
// command and every group shows examples in its help.
func TestEveryCommandHasExamples(t *testing.T) {
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: nil, Out: io.Discard, ErrOut: io.Discard}}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Name() == "help" || c.Hidden || (c.Parent() != nil && c.Parent().Name() == "completion") || c.Name() == "completion" {
			return
		}
		if c.Example == "" {
			t.Errorf("`%s` has no examples", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("`%s` has no short help", c.CommandPath())
		}
	}
	cmd := root.NewCmdRoot(f)
	cmd.InitDefaultCompletionCmd()
	walk(cmd)
}
