package cloudcmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
)

func newCmdCluster(o *opts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create, list, describe, delete and use your tenant's clusters",
		Long: `A cluster is a set of SPUs with its own data and certificate authority.
` + "`spate cloud cluster use NAME`" + ` makes a profile for it, with a client
certificate, and switches to it.`,
		Example: `  spate cloud cluster create orders --spus 3
  spate cloud cluster list
  spate cloud cluster describe orders
  spate cloud cluster use orders
  spate cloud cluster delete orders --yes`,
	}
	cmd.AddCommand(newCmdClusterCreate(o), newCmdClusterList(o), newCmdClusterDescribe(o), newCmdClusterDelete(o), newCmdClusterUse(o))
	return cmd
}

// clusterView is a cluster as list and describe print it.
type clusterView struct {
	ID        string    `json:"id" yaml:"id"`
	Name      string    `json:"name" yaml:"name"`
	SPUs      int32     `json:"spus" yaml:"spus"`
	Status    string    `json:"status" yaml:"status"`
	Reason    string    `json:"reason,omitempty" yaml:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero" yaml:"created_at,omitempty"`
	ReadyAt   time.Time `json:"ready_at,omitzero" yaml:"ready_at,omitempty"`
	Endpoints []string  `json:"spu_endpoints,omitempty" yaml:"spu_endpoints,omitempty"`
}

func viewCluster(c *controlplanev1.Cluster) clusterView {
	v := clusterView{ID: c.GetId(), Name: c.GetName(), SPUs: c.GetSpus(), Status: statusName(c.GetStatus()), Reason: c.GetReason(), Endpoints: c.GetSpuEndpoints()}
	if c.GetCreatedAt() != nil {
		v.CreatedAt = c.GetCreatedAt().AsTime()
	}
	if c.GetReadyAt() != nil {
		v.ReadyAt = c.GetReadyAt().AsTime()
	}
	return v
}

func statusName(s controlplanev1.ClusterStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "CLUSTER_STATUS_"))
}

func clusterNotFound(name string) string {
	return fmt.Sprintf("No cluster %q in your tenant: see `spate cloud cluster list`.", name)
}

func oneName(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cmdutil.Usagef("`%s` takes one %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

// ClusterCreateOptions are the flags of `spate cloud cluster create`.
type ClusterCreateOptions struct {
	SPUs         int32
	NoWait       bool
	Wait         bool
	WaitTimeout  time.Duration
	PollInterval time.Duration
}

func newCmdClusterCreate(o *opts) *cobra.Command {
	co := &ClusterCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a cluster and wait until it is ready",
		Long: `Create declares a cluster of N SPUs. By default it waits, showing progress,
until the cluster is READY, or FAILED with the reason; --no-wait returns at
once (follow it with ` + "`spate cloud cluster describe NAME`" + `).`,
		Example: `  spate cloud cluster create orders
  spate cloud cluster create clicks --spus 3 --no-wait`,
		Args: oneName("cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("wait") && cmd.Flags().Changed("no-wait") {
				return cmdutil.Usagef("--wait and --no-wait exclude each other")
			}
			if !co.Wait {
				co.NoWait = true
			}
			if co.SPUs < 1 {
				return cmdutil.Usagef("--spus must be at least 1, not %d", co.SPUs)
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			resp, err := s.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: args[0], Spus: co.SPUs}))
			if err != nil {
				return explain(err, "")
			}
			c := resp.Msg.GetCluster()
			out := o.f.IO.Out
			if co.NoWait {
				fmt.Fprintf(out, "cluster %q created (%d SPUs): %s\n", c.GetName(), c.GetSpus(), statusName(c.GetStatus()))
				return nil
			}
			c, err = waitCluster(ctx, o, s, c, co)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "cluster %q is ready (%d SPUs)\n", c.GetName(), c.GetSpus())
			fmt.Fprintf(o.f.IO.ErrOut, "Use it with `spate cloud cluster use %s`.\n", c.GetName())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.Int32Var(&co.SPUs, "spus", 1, "number of SPUs")
	fl.BoolVar(&co.NoWait, "no-wait", false, "return at once instead of waiting for the cluster to be ready")
	fl.BoolVar(&co.Wait, "wait", true, "wait until the cluster is ready or failed (the default)")
	fl.DurationVar(&co.WaitTimeout, "wait-timeout", 10*time.Minute, "how long to wait for the cluster")
	fl.DurationVar(&co.PollInterval, "poll-interval", time.Second, "how often to look at the cluster while waiting")
	_ = fl.MarkHidden("poll-interval")
	return cmd
}

// waitCluster polls the cluster until it is READY (returned), FAILED or
// gone (errors), or the timeout.
func waitCluster(ctx context.Context, o *opts, s *cloud.Session, c *controlplanev1.Cluster, co *ClusterCreateOptions) (*controlplanev1.Cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, co.WaitTimeout)
	defer cancel()
	sp := newSpinner(o.f.IO.ErrOut)
	defer sp.done()
	start := time.Now()
	t := time.NewTicker(co.PollInterval)
	defer t.Stop()
	for {
		switch c.GetStatus() {
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_READY:
			return c, nil
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED:
			sp.done()
			return nil, fmt.Errorf("cluster %q failed: %s\nSee `spate cloud cluster describe %s`; delete it with `spate cloud cluster delete %s`", c.GetName(), c.GetReason(), c.GetName(), c.GetName())
		}
		msg := fmt.Sprintf("cluster %q: %s", c.GetName(), statusName(c.GetStatus()))
		if c.GetReason() != "" {
			msg += " (" + c.GetReason() + ")"
		}
		if sp.tty {
			msg += fmt.Sprintf(" %s", time.Since(start).Round(time.Second))
		}
		sp.update(msg)
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("cluster %q is not ready after %s (%s): follow it with `spate cloud cluster describe %s`", c.GetName(), co.WaitTimeout, statusName(c.GetStatus()), c.GetName())
			}
			return nil, ctx.Err()
		case <-t.C:
		}
		resp, err := s.Clusters().GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: c.GetName()}))
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			return nil, explain(err, clusterNotFound(c.GetName()))
		}
		c = resp.Msg.GetCluster()
	}
}

func newCmdClusterList(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List your tenant's clusters",
		Example: "  spate cloud cluster list\n  spate cloud cluster list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Clusters().ListClusters(cmd.Context(), connect.NewRequest(&controlplanev1.ListClustersRequest{}))
			if err != nil {
				return explain(err, "")
			}
			views := []clusterView{}
			for _, c := range resp.Msg.GetClusters() {
				views = append(views, viewCluster(c))
			}
			return out.Write(o.f.IO.Out, views, func() error {
				if len(views) == 0 {
					fmt.Fprintln(o.f.IO.ErrOut, "No clusters. Create one with `spate cloud cluster create NAME`.")
					return nil
				}
				rows := make([][]string, 0, len(views))
				for _, v := range views {
					rows = append(rows, []string{v.Name, v.Status, strconv.Itoa(int(v.SPUs)), when(v.CreatedAt), v.Reason})
				}
				return format.WriteTable(o.f.IO.Out, []string{"NAME", "STATUS", "SPUS", "CREATED", "REASON"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdClusterDescribe(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "describe NAME",
		Short:   "Show a cluster's status, SPUs and endpoints",
		Example: "  spate cloud cluster describe orders\n  spate cloud cluster describe orders -o yaml",
		Args:    oneName("cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Clusters().GetCluster(cmd.Context(), connect.NewRequest(&controlplanev1.GetClusterRequest{Name: args[0]}))
			if err != nil {
				return explain(err, clusterNotFound(args[0]))
			}
			v := viewCluster(resp.Msg.GetCluster())
			return out.Write(o.f.IO.Out, v, func() error {
				w := o.f.IO.Out
				fmt.Fprintf(w, "Name:       %s\nID:         %s\nStatus:     %s\n", v.Name, v.ID, v.Status)
				if v.Reason != "" {
					fmt.Fprintf(w, "Reason:     %s\n", v.Reason)
				}
				fmt.Fprintf(w, "SPUs:       %d\nCreated:    %s\nReady:      %s\n", v.SPUs, when(v.CreatedAt), when(v.ReadyAt))
				for i, e := range v.Endpoints {
					label := ""
					if i == 0 {
						label = "Endpoints:"
					}
					fmt.Fprintf(w, "%-11s %s\n", label, e)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdClusterDelete(o *opts) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a cluster, its SPUs and all its data",
		Long: `Delete stops the cluster's SPUs and deletes its data, for good. It asks you to
type the cluster's name unless --yes is given; without a terminal, --yes is
required.`,
		Example: "  spate cloud cluster delete orders\n  spate cloud cluster delete orders --yes",
		Args:    oneName("cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !yes {
				if !isTerminal(o.f.IO.In) {
					return cmdutil.Usagef("deleting cluster %q deletes all its data: pass --yes to confirm", name)
				}
				fmt.Fprintf(o.f.IO.ErrOut, "This deletes cluster %q and all its data. Type its name to confirm: ", name)
				line, _ := bufio.NewReader(o.f.IO.In).ReadString('\n')
				if strings.TrimSpace(line) != name {
					return errors.New("not confirmed; nothing deleted")
				}
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			if _, err := s.Clusters().DeleteCluster(cmd.Context(), connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: name})); err != nil {
				return explain(err, clusterNotFound(name))
			}
			fmt.Fprintf(o.f.IO.Out, "cluster %q deleted\n", name)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

func newCmdClusterUse(o *opts) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "use NAME",
		Short: "Get a client certificate for a cluster and switch to its profile",
		Long: `Use makes a key, has the control plane sign a client certificate for the
cluster, and writes a profile (named after the cluster unless --profile says
otherwise) with the cluster's endpoints, its CAs, the certificate and the key
to the config file (mode 0600), then makes it current. The key never leaves
this machine. Data commands renew the certificate when a third of its life is
left.`,
		Example: "  spate cloud cluster use orders\n  spate cloud cluster use orders --profile orders-prod",
		Args:    oneName("cluster name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster := args[0]
			if name == "" {
				name = cluster
			}
			if err := profile.ValidateName(name); err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			cfg, err := o.f.Config()
			if err != nil {
				return err
			}
			if old, ok := cfg.Profiles[name]; ok && (strings.TrimRight(old.ControlPlane, "/") != s.URL() || old.Cluster != cluster) && !cmd.Flags().Changed("profile") {
				return cmdutil.Usagef("profile %q exists for another cluster (%s): choose another name with --profile", name, old.String())
			}
			p, err := cloud.UseCluster(cmd.Context(), s, cluster)
			if err != nil {
				return explain(err, clusterNotFound(cluster))
			}
			err = o.f.UpdateConfig(cmd.Context(), func(c *profile.Config) error {
				if err := c.Set(name, p); err != nil {
					return err
				}
				return c.Switch(name)
			})
			if err != nil {
				return &cmdutil.ConfigError{Err: err}
			}
			fmt.Fprintf(o.f.IO.Out, "switched to profile %q: cluster %q on %s\n", name, cluster, s.URL())
			fmt.Fprintf(o.f.IO.ErrOut, "Client certificate valid until %s; it is renewed as you use it.\n", when(p.ClientCertExpires))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "profile", "", "name of the profile to write (default: the cluster's name)")
	return cmd
}
