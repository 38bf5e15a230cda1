// Package root assembles the spate command tree and runs it.
package root

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/spucmd"
)

// Version is set at build time with -ldflags "-X ...root.Version=v1.2.3".
var Version = "dev"

// NewCmdRoot returns the `spate` command with every subcommand.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spate",
		Short: "Spate: stream records from producers to consumers, in order, durably, fast",
		Long: `Spate moves continuous data (logs, sensor readings, clicks, ticks, database
events) from producers to consumers, in order, durably and fast, and keeps it
for as long as you choose.

Commands talk to the cluster of the current profile (see ` + "`spate profile`" + `);
` + "`spate local up`" + ` starts one on this machine and makes it current.`,
		Example: `  spate local up
  spate topic create orders --partitions 6 --replication 1 --retention-time 7d
  printf 'alice:one pizza\nbob:two pizzas\n' | spate produce orders --key-separator :
  spate consume orders -B
  spate completion bash > /etc/bash_completion.d/spate`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(f.IO.In)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	addGlobalFlags(cmd, f)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	cmd.AddCommand(spucmd.NewCmdSPU(f))
	addServerCommands(cmd, f)
	addClientCommands(cmd, f)
	return cmd
}

// Main runs the CLI with args and returns the exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := &cmdutil.Factory{IO: cmdutil.System()}
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return cmdutil.ExitOK
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return cmdutil.ExitInterrupted
	}
	fmt.Fprintln(f.IO.ErrOut, cmdutil.Explain(err, f.Hint()))
	var ue *cmdutil.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintln(f.IO.ErrOut, "Run 'spate --help' or add --help to the command for usage.")
	}
	return cmdutil.ExitCode(err)
}
