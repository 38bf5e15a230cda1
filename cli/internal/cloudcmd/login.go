package cloudcmd

import (
	"context"
	"fmt"
	"io"
	"os"
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

// LoginOptions are the flags of `spate cloud login`.
type LoginOptions struct {
	CAFile      string
	APIKeyFile  string
	APIKeyStdin bool
}

func newCmdLogin(o *opts) *cobra.Command {
	lo := &LoginOptions{}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in to a control plane, in a browser or with an API key",
		Long: `Login signs you in to a Spate control plane and keeps the login in the config
file (mode 0600), next to logins to other control planes.

People sign in in a browser: login prints a one-time code and a URL; open it
on any device, sign in and approve the code. Programs sign in with an API key
read from a file or from standard input, never from the command line.

The control plane's certificate must chain to a CA this machine trusts, or
to the one given with --ca-file (kept with the login).`,
		Example: `  spate cloud login --control-plane https://cloud.example.com
  spate cloud login --control-plane https://127.0.0.1:9443 --ca-file ~/.spate/local-ca.pem
  spate cloud login --control-plane https://cloud.example.com --api-key-file /run/secrets/spate-key
  printenv SPATE_API_KEY | spate cloud login --api-key-stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return loginRun(cmd.Context(), o, lo)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&lo.CAFile, "ca-file", "", "PEM file of the CA the control plane's certificate chains to")
	fl.StringVar(&lo.APIKeyFile, "api-key-file", "", "sign in with the API key in this file")
	fl.BoolVar(&lo.APIKeyStdin, "api-key-stdin", false, "sign in with the API key read from standard input")
	return cmd
}

func loginRun(ctx context.Context, o *opts, lo *LoginOptions) error {
	f := o.f
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	if lo.APIKeyFile != "" && lo.APIKeyStdin {
		return cmdutil.Usagef("--api-key-file and --api-key-stdin exclude each other")
	}
	cpURL := ""
	if o.controlPlane != "" {
		cpURL = normalizeURL(o.controlPlane)
	} else if _, p, err := f.SelectedProfile(); err == nil && p.ControlPlane != "" && p.ClusterID != "" {
		cpURL = strings.TrimRight(p.ControlPlane, "/")
	} else if len(cfg.Logins) == 1 {
		for u := range cfg.Logins {
			cpURL = u
		}
	}
	if cpURL == "" {
		return cmdutil.Usagef("--control-plane URL is required (or set %s)", EnvControlPlane)
	}
	var key string
	switch {
	case lo.APIKeyFile != "":
		b, err := os.ReadFile(lo.APIKeyFile)
		if err != nil {
			return cmdutil.Usagef("--api-key-file: %v", err)
		}
		key = strings.TrimSpace(string(b))
	case lo.APIKeyStdin:
		b, err := io.ReadAll(io.LimitReader(f.IO.In, 4096))
		if err != nil {
			return fmt.Errorf("read API key from standard input: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if (lo.APIKeyFile != "" || lo.APIKeyStdin) && key == "" {
		return cmdutil.Usagef("the API key is empty")
	}

	var caPEM []byte
	old, hadLogin := cfg.Logins[cpURL]
	switch {
	case lo.CAFile != "":
		if caPEM, err = os.ReadFile(lo.CAFile); err != nil {
			return cmdutil.Usagef("--ca-file: %v", err)
		}
	case hadLogin:
		caPEM = old.ControlPlaneCA.Bytes()
	}
	hc := f.HTTPClient
	if hc == nil {
		if hc, err = cloud.NewHTTPClient(caPEM); err != nil {
			return cmdutil.Usagef("--ca-file %s: %v", lo.CAFile, err)
		}
	}

	var tokens cloud.Tokens
	if key != "" {
		tokens, err = cloud.APIKeyLogin(ctx, cpURL, hc, key)
	} else {
		sp := newSpinner(f.IO.ErrOut)
		stop := make(chan struct{})
		done := make(chan struct{})
		started := false // show runs in this goroutine, before DeviceLogin returns
		tokens, err = cloud.DeviceLogin(ctx, cpURL, hc, func(da cloud.DeviceAuthorization) {
			started = true
			fmt.Fprintf(f.IO.ErrOut, "! Your one-time code: %s\n", da.UserCode)
			fmt.Fprintf(f.IO.ErrOut, "Open %s in a browser, sign in and enter the code", da.VerificationURI)
			if da.VerificationURIComplete != "" {
				fmt.Fprintf(f.IO.ErrOut, ",\nor open %s", da.VerificationURIComplete)
			}
			fmt.Fprintln(f.IO.ErrOut, ".")
			go func() {
				defer close(done)
				t := time.NewTicker(120 * time.Millisecond)
				defer t.Stop()
				for {
					if !da.Expires.IsZero() {
						sp.update(fmt.Sprintf("Waiting for approval (the code expires in %s)...", time.Until(da.Expires).Round(time.Second)))
					} else {
						sp.update("Waiting for approval...")
					}
					select {
					case <-stop:
						return
					case <-t.C:
					}
				}
			}()
		})
		close(stop)
		if started {
			<-done
			sp.done()
		}
	}
	if err != nil {
		return loginError(cpURL, err)
	}
	sess := cloud.NewSession(cpURL, hc, tokens)
	login := profile.Login{ControlPlaneCA: profile.PEM(caPEM), AccessToken: tokens.AccessToken,
		AccessTokenExpires: tokens.Expires, RefreshToken: tokens.RefreshToken}
	who, err := sess.Auth().WhoAmI(ctx, connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
	if err != nil {
		return fmt.Errorf("signed in, but WhoAmI failed: %w", err)
	}
	login.Tenant, login.Principal = who.Msg.GetTenant().GetId(), who.Msg.GetName()
	if err := f.UpdateConfig(ctx, func(c *profile.Config) error { c.SetLogin(cpURL, login); return nil }); err != nil {
		return &cmdutil.ConfigError{Err: err}
	}
	if hadLogin && old.RefreshToken != "" && old.RefreshToken != login.RefreshToken {
		// End the login this one replaces; it expires by itself otherwise.
		_ = cloud.Revoke(ctx, cpURL, hc, old.RefreshToken)
	}
	fmt.Fprintf(f.IO.Out, "Logged in to %s as %s (%s of tenant %s).\n", cpURL, who.Msg.GetName(), roleName(who.Msg.GetRole()), tenantName(who.Msg.GetTenant()))
	fmt.Fprintln(f.IO.ErrOut, "Next: `spate cloud cluster list`, then `spate cloud cluster use NAME`.")
	return nil
}

// loginError says what to do after a failed sign-in.
func loginError(cpURL string, err error) error {
	switch {
	case isCanceled(err):
		return err
	case errorsIs(err, cloud.ErrAccessDenied):
		return &cmdutil.AuthError{Err: fmt.Errorf("sign-in was denied in the browser; run `spate cloud login` to try again")}
	case errorsIs(err, cloud.ErrExpiredToken):
		return &cmdutil.AuthError{Err: fmt.Errorf("the code expired before it was approved; run `spate cloud login` again and approve within 10 minutes")}
	case errorsIs(err, cloud.ErrInvalidGrant):
		return &cmdutil.AuthError{Err: fmt.Errorf("the API key was refused (unknown, revoked or expired): create a new one with `spate cloud api-key create`")}
	case errorsIs(err, cloud.ErrRateLimited):
		return &cmdutil.AuthError{Err: fmt.Errorf("%v", err)}
	}
	if strings.Contains(err.Error(), "certificate") {
		return fmt.Errorf("sign in to %s: %w (if the control plane uses its own CA, pass it with --ca-file)", cpURL, err)
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("sign in to %s: %w", cpURL, err))
}

func newCmdLogout(o *opts) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Sign out of a control plane and forget its keys",
		Long: `Logout revokes the login's refresh token at the control plane, forgets the
login, and removes the client certificates and keys of the profiles on that
control plane (the profiles stay: log in again and run
` + "`spate cloud cluster use NAME`" + `).`,
		Example: "  spate cloud logout\n  spate cloud logout --control-plane https://cloud.example.com",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := o.f
			cpURL, err := o.target()
			if err != nil {
				return err
			}
			cfg, err := f.Config()
			if err != nil {
				return err
			}
			login, err := cfg.Login(cpURL)
			if err != nil {
				return &cmdutil.AuthError{Err: fmt.Errorf("not logged in to %s", cpURL)}
			}
			if s, err := f.Session(cpURL); err == nil && login.RefreshToken != "" {
				if err := cloud.Revoke(cmd.Context(), cpURL, s.HTTPClient(), login.RefreshToken); err != nil {
					fmt.Fprintf(f.IO.ErrOut, "Warning: could not revoke the login at the control plane (%v); it expires by itself.\n", err)
				}
			}
			var changed []string
			if err := f.UpdateConfig(cmd.Context(), func(c *profile.Config) error { changed = c.DeleteLogin(cpURL); return nil }); err != nil {
				return &cmdutil.ConfigError{Err: err}
			}
			fmt.Fprintf(f.IO.Out, "Logged out of %s.\n", cpURL)
			if len(changed) > 0 {
				fmt.Fprintf(f.IO.Out, "Removed the client keys of profiles: %s.\n", strings.Join(changed, ", "))
			}
			return nil
		},
	}
}

// whoami is what `spate cloud whoami` prints.
type whoami struct {
	ControlPlane string    `json:"control_plane" yaml:"control_plane"`
	Tenant       string    `json:"tenant" yaml:"tenant"`
	TenantID     string    `json:"tenant_id" yaml:"tenant_id"`
	Kind         string    `json:"kind" yaml:"kind"`
	ID           string    `json:"id" yaml:"id"`
	Name         string    `json:"name" yaml:"name"`
	Role         string    `json:"role,omitempty" yaml:"role,omitempty"`
	Cluster      string    `json:"cluster,omitempty" yaml:"cluster,omitempty"`
	Expires      time.Time `json:"expires_at,omitzero" yaml:"expires_at,omitempty"`
}

func newCmdWhoAmI(o *opts) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "whoami",
		Short:   "Show who you are signed in as, where, and your role",
		Example: "  spate cloud whoami\n  spate cloud whoami -o json",
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
			resp, err := s.Auth().WhoAmI(cmd.Context(), connect.NewRequest(&controlplanev1.WhoAmIRequest{}))
			if err != nil {
				return explain(err, "")
			}
			m := resp.Msg
			w := whoami{ControlPlane: s.URL(), Tenant: m.GetTenant().GetName(), TenantID: m.GetTenant().GetId(), Kind: m.GetKind(),
				ID: m.GetId(), Name: m.GetName(), Cluster: m.GetCluster()}
			if m.GetRole() != controlplanev1.Role_ROLE_UNSPECIFIED {
				w.Role = roleName(m.GetRole())
			}
			if m.GetExpiresAt() != nil {
				w.Expires = m.GetExpiresAt().AsTime()
			}
			return out.Write(o.f.IO.Out, w, func() error {
				rows := [][]string{
					{"Control plane:", w.ControlPlane},
					{"Signed in as:", fmt.Sprintf("%s (%s %s)", w.Name, w.Kind, w.ID)},
					{"Tenant:", fmt.Sprintf("%s (%s)", w.Tenant, w.TenantID)},
				}
				if w.Role != "" {
					rows = append(rows, []string{"Role:", w.Role})
				}
				if w.Cluster != "" {
					rows = append(rows, []string{"Cluster:", w.Cluster})
				}
				if !w.Expires.IsZero() {
					rows = append(rows, []string{"Token expires:", when(w.Expires)})
				}
				for _, r := range rows {
					fmt.Fprintf(o.f.IO.Out, "%-15s %s\n", r[0], r[1])
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

func tenantName(t *controlplanev1.Tenant) string {
	if t.GetName() != "" {
		return t.GetName()
	}
	return t.GetId()
}
