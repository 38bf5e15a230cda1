package localcmd

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
)

// StatusOptions are the flags of `spate local status`.
type StatusOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	DataDir string
}

func newCmdStatus(f *cmdutil.Factory) *cobra.Command {
	opts := &StatusOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the local control plane and its SPUs",
		Long: `Status shows whether the local control plane runs, where, and the state of
each SPU as the control plane sees it. It exits with status 4 when the
control plane is not running.`,
		Example: `  spate local status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the data and logs")
	return cmd
}

func statusRun(ctx context.Context, opts *StatusOptions) error {
	in, err := readInstall(opts.DataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.DataDir, err)
	}
	if !in.alive() {
		return notRunning("no local control plane runs from %s; start one with `spate local up`", in.dir)
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "Control plane: %s (pid %d), data in %s\n", in.url, in.pid, in.dir)
	cfg, err := opts.Factory.Config()
	if err != nil {
		return err
	}
	p, err := cfg.Get(ProfileName)
	if err != nil {
		return fmt.Errorf("profile %q: %w; run `spate local up` again to write it", ProfileName, err)
	}
	fmt.Fprintf(out, "Cluster: %s (%s) of tenant %s\n", p.Cluster, p.ClusterID, devTenant)
	fmt.Fprintf(out, "Logs: %s, %s\n", filepath.Join(in.dir, logFile), filepath.Join(in.dir, "clusters", p.ClusterID, "spu-N.log"))
	spus, err := listSPUs(ctx, p)
	if err != nil {
		return fmt.Errorf("the control plane (pid %d) does not answer at %s: %w; see %s", in.pid, in.url, err, filepath.Join(in.dir, logFile))
	}
	fmt.Fprintf(out, "\n")
	var rows [][]string
	for _, s := range spus {
		state := "offline"
		if s.Online {
			state = "online"
		}
		rows = append(rows, []string{fmt.Sprint(s.ID), s.Address, state, fmt.Sprint(s.Replicas)})
	}
	return format.WriteTable(out, []string{"SPU", "ADDRESS", "STATE", "REPLICAS"}, rows)
}
