package cloudcmd

import (
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
)

func newCmdServiceAccount(o *opts) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "service-account",
		Aliases: []string{"sa"},
		Short:   "Create, list, update and delete service accounts for programs",
		Long: `A service account is a principal for a program, with grants: operations
(produce, consume, admin) on topics matched by a pattern (a name, a prefix
followed by '*', or '*'). Programs sign in with an API key of the account
(` + "`spate cloud api-key create --service-account NAME`" + `).`,
		Example: `  spate cloud service-account create ingest --grant 'orders*:produce' --grant 'audit:produce,consume'
  spate cloud service-account list
  spate cloud service-account update ingest --grant '*:consume'
  spate cloud service-account delete ingest`,
	}
	cmd.AddCommand(newCmdSACreate(o), newCmdSAList(o), newCmdSAUpdate(o), newCmdSADelete(o))
	return cmd
}

func saNotFound(name string) string {
	return fmt.Sprintf("No service account %q in your tenant: see `spate cloud service-account list`.", name)
}

func parseGrants(specs []string) ([]*controlplanev1.Grant, error) {
	if len(specs) == 0 {
		return nil, cmdutil.Usagef("give at least one --grant TOPIC:OPS, such as --grant 'orders*:produce,consume'")
	}
	var grants []*controlplanev1.Grant
	for _, s := range specs {
		g, err := parseGrant(s)
		if err != nil {
			return nil, err
		}
		grants = append(grants, g)
	}
	return grants, nil
}

func grantFlag(cmd *cobra.Command, grants *[]string) {
	cmd.Flags().StringArrayVar(grants, "grant", nil, "TOPIC:OPS, such as 'orders*:produce,consume'; repeat for more")
}

func newCmdSACreate(o *opts) *cobra.Command {
	var grants []string
	cmd := &cobra.Command{
		Use:     "create NAME --grant TOPIC:OPS...",
		Short:   "Create a service account with grants",
		Example: "  spate cloud service-account create ingest --grant 'orders*:produce,consume'",
		Args:    oneName("service account name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gs, err := parseGrants(grants)
			if err != nil {
				return err
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Tenants().CreateServiceAccount(cmd.Context(), connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{Name: args[0], Grants: gs}))
			if err != nil {
				return explain(err, "")
			}
			sa := resp.Msg.GetServiceAccount()
			fmt.Fprintf(o.f.IO.Out, "service account %q created (%s)\n", sa.GetName(), grantsText(sa.GetGrants()))
			fmt.Fprintf(o.f.IO.ErrOut, "Make it an API key with `spate cloud api-key create --service-account %s`.\n", sa.GetName())
			return nil
		},
	}
	grantFlag(cmd, &grants)
	return cmd
}

func grantsText(gs []*controlplanev1.Grant) string {
	parts := make([]string, 0, len(gs))
	for _, g := range gs {
		parts = append(parts, grantString(g))
	}
	return strings.Join(parts, " ")
}

type saView struct {
	ID        string    `json:"id" yaml:"id"`
	Name      string    `json:"name" yaml:"name"`
	Grants    []string  `json:"grants" yaml:"grants"`
	CreatedAt time.Time `json:"created_at,omitzero" yaml:"created_at,omitempty"`
}

func newCmdSAList(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List service accounts and their grants",
		Example: "  spate cloud service-account list\n  spate cloud service-account list -o yaml",
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
			resp, err := s.Tenants().ListServiceAccounts(cmd.Context(), connect.NewRequest(&controlplanev1.ListServiceAccountsRequest{}))
			if err != nil {
				return explain(err, "")
			}
			views := []saView{}
			for _, sa := range resp.Msg.GetServiceAccounts() {
				v := saView{ID: sa.GetId(), Name: sa.GetName(), Grants: []string{}}
				for _, g := range sa.GetGrants() {
					v.Grants = append(v.Grants, grantString(g))
				}
				if sa.GetCreatedAt() != nil {
					v.CreatedAt = sa.GetCreatedAt().AsTime()
				}
				views = append(views, v)
			}
			return out.Write(o.f.IO.Out, views, func() error {
				if len(views) == 0 {
					fmt.Fprintln(o.f.IO.ErrOut, "No service accounts. Create one with `spate cloud service-account create NAME --grant TOPIC:OPS`.")
					return nil
				}
				rows := make([][]string, 0, len(views))
				for _, v := range views {
					rows = append(rows, []string{v.Name, v.ID, strings.Join(v.Grants, " "), when(v.CreatedAt)})
				}
				return format.WriteTable(o.f.IO.Out, []string{"NAME", "ID", "GRANTS", "CREATED"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdSAUpdate(o *opts) *cobra.Command {
	var grants []string
	cmd := &cobra.Command{
		Use:     "update NAME --grant TOPIC:OPS...",
		Short:   "Replace a service account's grants",
		Example: "  spate cloud service-account update ingest --grant 'orders*:produce' --grant 'audit:consume'",
		Args:    oneName("service account name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			gs, err := parseGrants(grants)
			if err != nil {
				return err
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Tenants().UpdateServiceAccount(cmd.Context(), connect.NewRequest(&controlplanev1.UpdateServiceAccountRequest{Name: args[0], Grants: gs}))
			if err != nil {
				return explain(err, saNotFound(args[0]))
			}
			fmt.Fprintf(o.f.IO.Out, "service account %q updated (%s)\n", args[0], grantsText(resp.Msg.GetServiceAccount().GetGrants()))
			return nil
		},
	}
	grantFlag(cmd, &grants)
	return cmd
}

func newCmdSADelete(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a service account and its API keys",
		Example: "  spate cloud service-account delete ingest",
		Args:    oneName("service account name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			if _, err := s.Tenants().DeleteServiceAccount(cmd.Context(), connect.NewRequest(&controlplanev1.DeleteServiceAccountRequest{Name: args[0]})); err != nil {
				return explain(err, saNotFound(args[0]))
			}
			fmt.Fprintf(o.f.IO.Out, "service account %q deleted\n", args[0])
			return nil
		},
	}
}
