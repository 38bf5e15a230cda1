package cloudcmd

import (
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
)

func newCmdAPIKey(o *opts) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api-key",
		Short: "Create, list and revoke API keys for programs",
		Long: `An API key signs a program in (` + "`spate cloud login --api-key-file F`" + `, or
cloud.APIKeyLogin in Go) as you or as a service account. The secret is shown
once, when the key is created.`,
		Example: `  spate cloud api-key create --service-account ingest --ttl 720h --description "ingest job" > ingest.key
  spate cloud api-key list
  spate cloud api-key revoke k0123456789a`,
	}
	cmd.AddCommand(newCmdKeyCreate(o), newCmdKeyList(o), newCmdKeyRevoke(o))
	return cmd
}

func newCmdKeyCreate(o *opts) *cobra.Command {
	var sa, desc string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an API key and print its secret once",
		Long: `Create makes an API key for you or, with --service-account, for a service
account. The secret goes to standard output, alone on a line, and is never
shown again: redirect it to a file or a secret store.`,
		Example: `  spate cloud api-key create --service-account ingest --ttl 720h > ingest.key
  spate cloud api-key create --description "laptop scripts" --ttl 30d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 0 {
				return cmdutil.Usagef("--ttl must not be negative")
			}
			s, err := o.session()
			if err != nil {
				return err
			}
			resp, err := s.Tenants().CreateAPIKey(cmd.Context(), connect.NewRequest(&controlplanev1.CreateAPIKeyRequest{
				ServiceAccount: sa, Description: desc, TtlSeconds: int64(ttl / time.Second)}))
			if err != nil {
				hint := ""
				if sa != "" {
					hint = saNotFound(sa)
				}
				return explain(err, hint)
			}
			k := resp.Msg.GetKey()
			fmt.Fprintf(o.f.IO.ErrOut, "API key %s created for %s, valid until %s.\n", k.GetId(), k.GetPrincipal(), when(k.GetExpiresAt().AsTime()))
			fmt.Fprintln(o.f.IO.ErrOut, "Warning: this is the only time the secret is shown; store it now. Sign in with it using `spate cloud login --api-key-file FILE`.")
			fmt.Fprintln(o.f.IO.Out, resp.Msg.GetSecret())
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sa, "service-account", "", "create the key for this service account instead of for you")
	fl.StringVar(&desc, "description", "", "what the key is for")
	fl.Var(&format.DurationValue{D: &ttl}, "ttl", "lifetime: 720h, 30d, 1y (default: the control plane's, 90 days)")
	return cmd
}

type keyView struct {
	ID          string    `json:"id" yaml:"id"`
	Principal   string    `json:"principal" yaml:"principal"`
	Description string    `json:"description,omitempty" yaml:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero" yaml:"created_at,omitempty"`
	ExpiresAt   time.Time `json:"expires_at,omitzero" yaml:"expires_at,omitempty"`
	Revoked     bool      `json:"revoked" yaml:"revoked"`
}

func newCmdKeyList(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List API keys (never their secrets)",
		Example: "  spate cloud api-key list\n  spate cloud api-key list -o json",
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
			resp, err := s.Tenants().ListAPIKeys(cmd.Context(), connect.NewRequest(&controlplanev1.ListAPIKeysRequest{}))
			if err != nil {
				return explain(err, "")
			}
			views := []keyView{}
			for _, k := range resp.Msg.GetKeys() {
				v := keyView{ID: k.GetId(), Principal: k.GetPrincipal(), Description: k.GetDescription(), Revoked: k.GetRevoked()}
				if k.GetCreatedAt() != nil {
					v.CreatedAt = k.GetCreatedAt().AsTime()
				}
				if k.GetExpiresAt() != nil {
					v.ExpiresAt = k.GetExpiresAt().AsTime()
				}
				views = append(views, v)
			}
			return out.Write(o.f.IO.Out, views, func() error {
				if len(views) == 0 {
					fmt.Fprintln(o.f.IO.ErrOut, "No API keys. Create one with `spate cloud api-key create`.")
					return nil
				}
				rows := make([][]string, 0, len(views))
				for _, v := range views {
					state := "active"
					if v.Revoked {
						state = "revoked"
					} else if !v.ExpiresAt.IsZero() && time.Now().After(v.ExpiresAt) {
						state = "expired"
					}
					rows = append(rows, []string{v.ID, v.Principal, state, when(v.ExpiresAt), v.Description})
				}
				return format.WriteTable(o.f.IO.Out, []string{"ID", "PRINCIPAL", "STATE", "EXPIRES", "DESCRIPTION"}, rows)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func newCmdKeyRevoke(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke an API key; logins made with it end",
		Example: "  spate cloud api-key revoke k0123456789a",
		Args:    oneName("API key id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			if _, err := s.Tenants().RevokeAPIKey(cmd.Context(), connect.NewRequest(&controlplanev1.RevokeAPIKeyRequest{Id: args[0]})); err != nil {
				return explain(err, fmt.Sprintf("No API key %q: see `spate cloud api-key list`.", args[0]))
			}
			fmt.Fprintf(o.f.IO.Out, "API key %s revoked\n", args[0])
			return nil
		},
	}
}
