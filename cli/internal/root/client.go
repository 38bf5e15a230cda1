package root

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cloudcmd"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/consumecmd"
	"github.com/spatehq/spate/cli/internal/partitioncmd"
	"github.com/spatehq/spate/cli/internal/producecmd"
	"github.com/spatehq/spate/cli/internal/profilecmd"
	"github.com/spatehq/spate/cli/internal/smartmodulecmd"
	"github.com/spatehq/spate/cli/internal/topiccmd"
)

// addGlobalFlags adds the flags that choose the cluster: --profile, and
// --spu to talk to one SPU directly.
func addGlobalFlags(cmd *cobra.Command, f *cmdutil.Factory) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.Profile, "profile", os.Getenv("SPATE_PROFILE"), "profile to use instead of the current one (env SPATE_PROFILE; see: spate profile list)")
	fl.StringVar(&f.SPU, "spu", os.Getenv("SPATE_SPU"), "talk to the SPU at this URL directly, bypassing the control plane (env SPATE_SPU)")
	_ = cmd.RegisterFlagCompletionFunc("profile", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		cfg, err := f.Config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return cfg.Names(), cobra.ShellCompDirectiveNoFileComp
	})
}

// addClientCommands adds the commands that talk to a cluster.
func addClientCommands(cmd *cobra.Command, f *cmdutil.Factory) {
	cmd.AddCommand(
		topiccmd.NewCmdTopic(f),
		partitioncmd.NewCmdPartition(f),
		producecmd.NewCmdProduce(f),
		consumecmd.NewCmdConsume(f),
		profilecmd.NewCmdProfile(f),
		cloudcmd.NewCmdCloud(f),
		smartmodulecmd.NewCmdSmartModule(f),
	)
	// Direct SPU admin lives under `spate spu`, next to `spate spu serve`.
	for _, c := range cmd.Commands() {
		if c.Name() == "spu" {
			c.AddCommand(partitioncmd.NewCmdSPUList(f), partitioncmd.NewCmdSPUPartition(f))
			if c.Example == "" {
				c.Example = `  spate spu list
  spate spu serve --data-dir ./spu-data
  spate --spu http://127.0.0.1:9010 spu partition create events --partitions 3`
			}
		}
	}
}
