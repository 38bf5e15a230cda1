// Package cloudcmd implements `spate cloud`: signing in to a Spate control
// plane, and managing the tenant's clusters, members, service accounts and
// API keys there.
package cloudcmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/client/cloud"
)

// EnvControlPlane names the environment variable that chooses the control
// plane of `spate cloud` commands.
const EnvControlPlane = "SPATE_CONTROL_PLANE"

// opts are the flags shared by the `spate cloud` commands.
type opts struct {
	f            *cmdutil.Factory
	controlPlane string
}

// NewCmdCloud returns `spate cloud`.
func NewCmdCloud(f *cmdutil.Factory) *cobra.Command {
	o := &opts{f: f}
	cmd := &cobra.Command{
		Use:   "cloud",
		Short: "Sign in to a Spate control plane and manage clusters, members and keys",
		Long: `Spate cloud runs clusters for tenants (organisations). Sign in once with
` + "`spate cloud login`" + `; the login is kept in the config file (mode 0600) and
refreshed as you work. ` + "`spate cloud cluster use NAME`" + ` gets a client
certificate for a cluster and makes a profile of it, which every data command
(topic, produce, consume) then uses; the certificate is renewed by itself.

Commands act on the control plane given by --control-plane (or
SPATE_CONTROL_PLANE), else that of the current profile, else the only one you
are logged in to.`,
		Example: `  spate cloud login --control-plane https://cloud.example.com
  spate cloud cluster create orders --spus 3
  spate cloud cluster use orders
  spate topic create events --partitions 6
  spate cloud api-key create --service-account ingest --ttl 720h`,
	}
	cmd.PersistentFlags().StringVar(&o.controlPlane, "control-plane", os.Getenv(EnvControlPlane), "URL of the control plane (env "+EnvControlPlane+")")
	cmd.AddCommand(newCmdLogin(o), newCmdLogout(o), newCmdWhoAmI(o), newCmdCluster(o), newCmdMember(o), newCmdServiceAccount(o), newCmdAPIKey(o))
	return cmd
}

// target returns the control plane the command acts on.
func (o *opts) target() (string, error) {
	if o.controlPlane != "" {
		return normalizeURL(o.controlPlane), nil
	}
	cfg, err := o.f.Config()
	if err != nil {
		return "", err
	}
	if _, p, err := o.f.SelectedProfile(); err == nil && p.ControlPlane != "" {
		if _, err := cfg.Login(p.ControlPlane); err == nil {
			return strings.TrimRight(p.ControlPlane, "/"), nil
		}
	}
	switch len(cfg.Logins) {
	case 0:
		return "", &cmdutil.AuthError{Err: errors.New("not logged in: run `spate cloud login --control-plane URL`")}
	case 1:
		for u := range cfg.Logins {
			return u, nil
		}
	}
	urls := make([]string, 0, len(cfg.Logins))
	for u := range cfg.Logins {
		urls = append(urls, u)
	}
	return "", cmdutil.Usagef("logged in to several control planes (%s): choose one with --control-plane", strings.Join(urls, ", "))
}

// session returns the session of the target control plane.
func (o *opts) session() (*cloud.Session, error) {
	u, err := o.target()
	if err != nil {
		return nil, err
	}
	return o.f.Session(u)
}

// normalizeURL adds https:// to a URL without a scheme and drops trailing
// slashes.
func normalizeURL(u string) string {
	u = strings.TrimSpace(u)
	if !strings.Contains(u, "://") {
		u = "https://" + u
	}
	return strings.TrimRight(u, "/")
}

// explain adds what to do to a Connect error of a cloud command: hints
// by code, with the object's kind and name for NotFound.
func explain(err error, notFound string) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	var hint string
	switch ce.Code() {
	case connect.CodeNotFound:
		hint = notFound
	case connect.CodeUnauthenticated:
		hint = "Your login expired or was revoked: run `spate cloud login`."
	case connect.CodeUnavailable:
		hint = "Is the control plane running, and is its URL right (--control-plane)?"
	default:
		return err
	}
	if hint == "" || strings.Contains(ce.Message(), hint) {
		return err
	}
	return connect.NewError(ce.Code(), fmt.Errorf("%s\n%s", ce.Message(), hint))
}

// isTerminal reports whether w is a terminal, for progress lines and
// prompts.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// spinner draws a progress line on a terminal; elsewhere it prints each
// new message once.
type spinner struct {
	w     io.Writer
	tty   bool
	frame int
	last  string
}

func newSpinner(w io.Writer) *spinner { return &spinner{w: w, tty: isTerminal(w)} }

var frames = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// update shows msg.
func (s *spinner) update(msg string) {
	if s.tty {
		s.frame++
		fmt.Fprintf(s.w, "\r\033[K%s %s", frames[s.frame%len(frames)], msg)
		return
	}
	if msg != s.last {
		fmt.Fprintln(s.w, msg)
	}
	s.last = msg
}

// done ends the progress line.
func (s *spinner) done() {
	if s.tty && s.frame > 0 {
		fmt.Fprint(s.w, "\r\033[K")
	}
}

// when formats a time for tables and messages.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
