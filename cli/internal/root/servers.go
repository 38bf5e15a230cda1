package root

import (
	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/controlplanecmd"
	"github.com/spatehq/spate/cli/internal/localcmd"
)

// addServerCommands adds the commands that run servers: the control plane
// and the local cluster (`spate spu` is added by NewCmdRoot).
func addServerCommands(cmd *cobra.Command, f *cmdutil.Factory) {
	cmd.AddCommand(controlplanecmd.NewCmdControlPlane(f), localcmd.NewCmdLocal(f))
}
