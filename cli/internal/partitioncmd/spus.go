package partitioncmd

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client"
)

// NewCmdSPUList returns `spate spu list`: the SPUs the control plane knows.
func NewCmdSPUList(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the SPUs of the cluster with their address, status and replicas",
		Example: "  spate spu list\n  spate spu list --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			c, err := f.AdminClient("spu list")
			if err != nil {
				return err
			}
			spus, err := c.ListSPUs(cmd.Context())
			if err != nil {
				return err
			}
			if spus == nil {
				spus = []client.SPU{}
			}
			return out.Write(f.IO.Out, spus, func() error {
				rows := make([][]string, 0, len(spus))
				for _, s := range spus {
					status := "offline"
					if s.Online {
						status = "online"
					}
					hb := "-"
					if !s.LastHeartbeat.IsZero() {
						hb = time.Since(s.LastHeartbeat).Round(time.Second).String() + " ago"
					}
					rows = append(rows, []string{strconv.Itoa(int(s.ID)), s.Address, status, strconv.Itoa(int(s.Replicas)), hb})
				}
				return format.WriteTable(f.IO.Out, []string{"ID", "ADDRESS", "STATUS", "REPLICAS", "HEARTBEAT"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}
