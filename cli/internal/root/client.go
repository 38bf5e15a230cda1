package root

import (
	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/consumecmd"
	"github.com/spatehq/spate/cli/internal/partitioncmd"
	"github.com/spatehq/spate/cli/internal/producecmd"
)

// addClientCommands adds the commands that talk to an SPU.
func addClientCommands(cmd *cobra.Command, f *cmdutil.Factory) {
	cmd.AddCommand(
		producecmd.NewCmdProduce(f),
		consumecmd.NewCmdConsume(f),
		partitioncmd.NewCmdPartition(f),
	)
}
