// Package profilecmd implements `spate profile`: the profiles of the config
// file (~/.spate/config.toml or $SPATE_CONFIG), each saying how to reach one
// cluster.
package profilecmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client/profile"
)

// NewCmdProfile returns `spate profile`.
func NewCmdProfile(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "List, switch, rename and delete the profiles of clusters you use",
		Long: `A profile says how to reach one Spate cluster. Profiles live in
~/.spate/config.toml (or the file named by SPATE_CONFIG), mode 0600.
` + "`spate local up`" + ` writes a profile named "local" and switches to it;
` + "`spate cloud cluster use NAME`" + ` writes one for a cloud cluster, with its
client certificate. Every command uses the current profile unless
--profile NAME says otherwise.`,
		Example: `  spate profile list
  spate profile current
  spate profile switch local
  spate profile set staging --control-plane http://cp.staging:9000
  spate profile rename staging stage
  spate profile delete stage`,
	}
	cmd.AddCommand(newCmdList(f), newCmdCurrent(f), newCmdSwitch(f), newCmdSet(f), newCmdDelete(f), newCmdRename(f))
	return cmd
}

// entry is one profile as `profile list` prints it.
type entry struct {
	Name         string    `json:"name" yaml:"name"`
	Current      bool      `json:"current" yaml:"current"`
	ControlPlane string    `json:"control_plane" yaml:"control_plane"`
	Cluster      string    `json:"cluster,omitempty" yaml:"cluster,omitempty"`
	Tenant       string    `json:"tenant,omitempty" yaml:"tenant,omitempty"`
	CertExpires  time.Time `json:"client_cert_expires,omitzero" yaml:"client_cert_expires,omitempty"`
}

func newCmdList(f *cmdutil.Factory) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the profiles; * marks the current one",
		Example: "  spate profile list\n  spate profile list --output json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := format.ParseOutput(output)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			entries := []entry{}
			for _, name := range cfg.Names() {
				p := cfg.Profiles[name]
				entries = append(entries, entry{Name: name, Current: name == cfg.CurrentProfile, ControlPlane: p.ControlPlane,
					Cluster: p.Cluster, Tenant: p.Tenant, CertExpires: p.ClientCertExpires})
			}
			return out.Write(f.IO.Out, entries, func() error {
				if len(entries) == 0 {
					fmt.Fprintf(f.IO.ErrOut, "No profiles in %s. Run `spate local up` to start a local cluster and make one.\n", cfg.Path())
					return nil
				}
				rows := make([][]string, 0, len(entries))
				for _, e := range entries {
					mark := ""
					if e.Current {
						mark = "*"
					}
					cluster := e.Cluster
					if cluster == "" {
						cluster = "-"
					}
					rows = append(rows, []string{mark, e.Name, e.ControlPlane, cluster})
				}
				return format.WriteTable(f.IO.Out, []string{"", "PROFILE", "CONTROL PLANE", "CLUSTER"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdCurrent(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:     "current",
		Short:   "Print the name of the current profile",
		Example: "  spate profile current",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			name, _, err := cfg.Current()
			if err != nil {
				return configError(cfg, err)
			}
			fmt.Fprintln(f.IO.Out, name)
			return nil
		},
	}
}

func newCmdSwitch(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:               "switch NAME",
		Short:             "Make a profile the current one",
		Example:           "  spate profile switch local",
		Args:              oneName("switch"),
		ValidArgsFunction: completeNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			return edit(f, func(cfg *profile.Config) error { return cfg.Switch(args[0]) },
				fmt.Sprintf("switched to profile %q", args[0]))
		},
	}
}

func newCmdSet(f *cmdutil.Factory) *cobra.Command {
	var p profile.Profile
	var use bool
	cmd := &cobra.Command{
		Use:   "set NAME --control-plane URL",
		Short: "Add a profile, or change one",
		Example: `  spate profile set staging --control-plane http://cp.staging:9000
  spate profile set dev --control-plane http://127.0.0.1:9000 --switch`,
		Args: oneName("set"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if p.ControlPlane == "" {
				return cmdutil.Usagef("--control-plane URL is required")
			}
			return edit(f, func(cfg *profile.Config) error {
				if err := cfg.Set(args[0], p); err != nil {
					return err
				}
				if use {
					return cfg.Switch(args[0])
				}
				return nil
			}, fmt.Sprintf("profile %q saved", args[0]))
		},
	}
	cmd.Flags().StringVar(&p.ControlPlane, "control-plane", "", "URL of the cluster's control plane")
	cmd.Flags().BoolVar(&use, "switch", false, "make it the current profile")
	return cmd
}

func newCmdDelete(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:               "delete NAME",
		Aliases:           []string{"rm"},
		Short:             "Delete a profile (the cluster is not touched)",
		Example:           "  spate profile delete staging",
		Args:              oneName("delete"),
		ValidArgsFunction: completeNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			return edit(f, func(cfg *profile.Config) error { return cfg.Delete(args[0]) },
				fmt.Sprintf("profile %q deleted", args[0]))
		},
	}
}

func newCmdRename(f *cmdutil.Factory) *cobra.Command {
	return &cobra.Command{
		Use:               "rename OLD NEW",
		Short:             "Rename a profile",
		Example:           "  spate profile rename local laptop",
		ValidArgsFunction: completeNames(f),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return cmdutil.Usagef("`spate profile rename` takes OLD and NEW names")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return edit(f, func(cfg *profile.Config) error { return cfg.Rename(args[0], args[1]) },
				fmt.Sprintf("profile %q renamed to %q", args[0], args[1]))
		},
	}
}

// edit loads the config, applies change, saves it and prints done.
// The file is changed under its lock (see profile.Update).
func edit(f *cmdutil.Factory, change func(*profile.Config) error, done string) error {
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	var changeErr error
	err = f.UpdateConfig(context.Background(), func(c *profile.Config) error {
		changeErr = change(c)
		return changeErr
	})
	if changeErr != nil {
		return configError(cfg, changeErr)
	}
	if err != nil {
		return &cmdutil.ConfigError{Err: err}
	}
	fmt.Fprintln(f.IO.Out, done)
	return nil
}

// configError explains a profile error with what to do next.
func configError(cfg *profile.Config, err error) error {
	switch {
	case errors.Is(err, profile.ErrNoProfile):
		return &cmdutil.ConfigError{Err: fmt.Errorf("no current profile in %s: run `spate local up`, or `spate profile switch NAME` (see `spate profile list`)", cfg.Path())}
	case errors.Is(err, profile.ErrNotFound):
		return &cmdutil.ConfigError{Err: fmt.Errorf("%v in %s", err, cfg.Path())}
	case errors.Is(err, profile.ErrInvalidName):
		return &cmdutil.UsageError{Err: err}
	}
	return &cmdutil.ConfigError{Err: err}
}

func oneName(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return cmdutil.Usagef("`spate profile %s` takes one profile name", verb)
		}
		return nil
	}
}

// completeNames completes profile names for the shell.
func completeNames(f *cmdutil.Factory) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		cfg, err := f.Config()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return cfg.Names(), cobra.ShellCompDirectiveNoFileComp
	}
}
