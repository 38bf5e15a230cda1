// Package cmdutil holds what every command of the spate CLI shares: the
// output streams, the factory that builds clients lazily, and the exit codes
// scripts can rely on.
package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
)

// Exit codes of the spate CLI. Scripts can rely on them.
const (
	ExitOK          = 0   // success
	ExitError       = 1   // the command failed; the message says why
	ExitUsage       = 2   // bad flags or arguments
	ExitNotFound    = 3   // the topic, partition or other object does not exist
	ExitUnavailable = 4   // the server could not be reached or is not ready
	ExitExists      = 5   // the topic or other object exists already
	ExitConfig      = 6   // no profile selected, or the config file is unreadable
	ExitAuth        = 7   // not logged in, the login expired, or not allowed
	ExitInterrupted = 130 // stopped by Ctrl-C
)

// IOStreams are the CLI's standard streams. Commands write only through them.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// System returns the process's streams.
func System() *IOStreams { return &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr} }

// DefaultSPU is the SPU the CLI talked to before profiles; kept for
// scripts that name it.
const DefaultSPU = "http://127.0.0.1:9010"

// Factory builds what commands need, lazily, so that `spate --help` or a
// server command never dials anything or reads the config file.
type Factory struct {
	IO *IOStreams
	// SPU is the address of one SPU to talk to directly, bypassing the
	// control plane (the --spu flag or SPATE_SPU); empty to use a profile.
	SPU string
	// Profile names the profile to use (--profile); empty for the current
	// one.
	Profile string
	// ConfigPath is the config file; empty for profile.DefaultPath().
	ConfigPath string

	// HTTPClient, if set, reaches control planes instead of one made from
	// the login's CA (for tests).
	HTTPClient *http.Client

	config   *profile.Config
	sessions map[string]*cloud.Session // by control plane URL
	client   *client.Client
	// controlPlane is the URL the client was built for, for messages.
	controlPlane string
}

// Config loads the config file on first use.
func (f *Factory) Config() (*profile.Config, error) {
	if f.config != nil {
		return f.config, nil
	}
	path := f.ConfigPath
	if path == "" {
		p, err := profile.DefaultPath()
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		path = p
	}
	c, err := profile.Load(path)
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	f.config = c
	return c, nil
}

// Direct reports whether the CLI talks to one SPU directly (--spu).
func (f *Factory) Direct() bool { return f.SPU != "" }

// SelectedProfile returns the profile chosen by --profile, or else the
// current one, with errors that say what to do.
func (f *Factory) SelectedProfile() (string, profile.Profile, error) {
	cfg, err := f.Config()
	if err != nil {
		return "", profile.Profile{}, err
	}
	var name string
	var p profile.Profile
	if f.Profile != "" {
		name = f.Profile
		p, err = cfg.Get(name)
	} else {
		name, p, err = cfg.Current()
	}
	switch {
	case errors.Is(err, profile.ErrNoProfile):
		return "", p, &ConfigError{Err: fmt.Errorf("no profile selected in %s: run `spate local up` to start a local cluster, `spate cloud cluster use NAME` for a cloud cluster, or `spate profile switch NAME` (see `spate profile list`)", cfg.Path())}
	case errors.Is(err, profile.ErrNotFound):
		return "", p, &ConfigError{Err: fmt.Errorf("profile %q not found in %s: see `spate profile list`, or run `spate local up`", name, cfg.Path())}
	case err != nil:
		return "", p, &ConfigError{Err: err}
	}
	return name, p, nil
}

// ControlPlane returns the control plane URL of the selected profile.
func (f *Factory) ControlPlane() (string, error) {
	name, p, err := f.SelectedProfile()
	if err != nil {
		return "", err
	}
	if p.ControlPlane == "" {
		cfg, _ := f.Config()
		return "", &ConfigError{Err: fmt.Errorf("profile %q in %s has no control_plane URL: run `spate local up` or edit the file", name, cfg.Path())}
	}
	return p.ControlPlane, nil
}

// renewTimeout bounds the renewal of a client certificate before a
// command.
const renewTimeout = 30 * time.Second

// Client returns the SDK client, built on first use: for the SPU given by
// --spu, or else from the selected profile (client.FromProfile). A
// profile with a client certificate that has less than a third of its life
// left is renewed first through the login at its control plane, and saved.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	logger := client.WithLogger(slog.New(slog.DiscardHandler))
	if f.SPU != "" {
		c, err := client.New(client.WithSPU(f.SPU), logger)
		if err != nil {
			return nil, &ConfigError{Err: err}
		}
		f.client = c
		return c, nil
	}
	cp, err := f.ControlPlane()
	if err != nil {
		return nil, err
	}
	f.controlPlane = cp
	name, p, _ := f.SelectedProfile()
	if p.HasTLS() || p.ClusterID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), renewTimeout)
		defer cancel()
		if p, err = f.renew(ctx, name, p); err != nil {
			return nil, err
		}
	}
	c, err := client.FromProfile(p, logger)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("profile %q: %w", name, err)}
	}
	f.client = c
	return c, nil
}

// renew renews the client certificate of the cloud profile p, named name,
// if it has less than a third of its life left, and saves it.
func (f *Factory) renew(ctx context.Context, name string, p profile.Profile) (profile.Profile, error) {
	if !cloud.NeedsRenewal(p, time.Now()) {
		return p, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return p, err
	}
	if _, err := cfg.Login(p.ControlPlane); err != nil {
		if p.HasTLS() && time.Now().Before(p.ClientCertExpires) {
			// Still valid: go on, and say how to keep it so.
			fmt.Fprintf(f.IO.ErrOut, "Warning: the client certificate of profile %q expires at %s; run `spate cloud login --control-plane %s` so that it is renewed.\n",
				name, p.ClientCertExpires.Local().Format(time.RFC3339), p.ControlPlane)
			return p, nil
		}
		return p, &AuthError{Err: fmt.Errorf("the client certificate of profile %q has expired or was removed at logout, and you are not logged in to %s: run `spate cloud login --control-plane %s`, then `spate cloud cluster use %s`",
			name, p.ControlPlane, p.ControlPlane, p.Cluster)}
	}
	s, err := f.Session(p.ControlPlane)
	if err != nil {
		return p, err
	}
	if _, err := cloud.RenewIfNeeded(ctx, s, &p); err != nil {
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			return p, &AuthError{Err: fmt.Errorf("renew the client certificate of profile %q: your login to %s expired or was revoked: run `spate cloud login --control-plane %s`", name, p.ControlPlane, p.ControlPlane)}
		}
		return p, err
	}
	if err := f.UpdateConfig(ctx, func(c *profile.Config) error { return c.Set(name, p) }); err != nil {
		return p, &ConfigError{Err: err}
	}
	return p, nil
}

// Session returns a session on the control plane at cpURL from the login
// saved in the config file; refreshed tokens are saved back. It fails with
// an AuthError when there is no login there.
func (f *Factory) Session(cpURL string) (*cloud.Session, error) {
	if s, ok := f.sessions[cpURL]; ok {
		return s, nil
	}
	cfg, err := f.Config()
	if err != nil {
		return nil, err
	}
	login, err := cfg.Login(cpURL)
	if err != nil {
		return nil, &AuthError{Err: fmt.Errorf("not logged in to %s: run `spate cloud login --control-plane %s`", cpURL, cpURL)}
	}
	hc := f.HTTPClient
	if hc == nil {
		if hc, err = cloud.NewHTTPClient(login.ControlPlaneCA.Bytes()); err != nil {
			return nil, &ConfigError{Err: fmt.Errorf("login to %s in %s: %w", cpURL, cfg.Path(), err)}
		}
	}
	tokens := cloud.Tokens{AccessToken: login.AccessToken, RefreshToken: login.RefreshToken, Expires: login.AccessTokenExpires}
	s := cloud.NewSession(cpURL, hc, tokens, cloud.WithStore(&configStore{f: f, path: cfg.Path(), cpURL: cpURL}))
	if f.sessions == nil {
		f.sessions = map[string]*cloud.Session{}
	}
	f.sessions[cpURL] = s
	return s, nil
}

// AdminClient returns the client for commands that need the control plane,
// and a usage error when --spu bypasses it.
func (f *Factory) AdminClient(command string) (*client.Client, error) {
	if f.SPU != "" {
		return nil, Usagef("`spate %s` needs the control plane: drop --spu (and unset SPATE_SPU) to use your profile; for one SPU see `spate spu partition`", command)
	}
	return f.Client()
}

// Hint returns what to try when the server could not be reached.
func (f *Factory) Hint() string {
	if f.SPU != "" {
		return fmt.Sprintf("Is an SPU running at %s? Start one with `spate spu serve`, or point at another with --spu or SPATE_SPU.", f.SPU)
	}
	cp := f.controlPlane
	if cp == "" {
		return "Is the control plane running? Start a local cluster with `spate local up`, or choose another profile with --profile or `spate profile switch`."
	}
	return fmt.Sprintf("Is the control plane running at %s? Start a local cluster with `spate local up` (or `spate control-plane serve`), or choose another profile with --profile or `spate profile switch`.", cp)
}

// UpdateConfig changes the config file under its lock: it reloads the
// file, applies change and saves it, so that concurrent spate processes do
// not undo each other's changes (a rotated refresh token above all).
func (f *Factory) UpdateConfig(ctx context.Context, change func(*profile.Config) error) error {
	cfg, err := f.Config()
	if err != nil {
		return err
	}
	updated, err := profile.Update(ctx, cfg.Path(), change)
	if err != nil {
		return err
	}
	f.config = updated
	return nil
}

// configStore keeps the tokens of the login at one control plane in the
// config file, for cloud.Session: refreshes happen under the file's lock,
// so that two spate processes never spend the same refresh token.
type configStore struct {
	f     *Factory
	path  string
	cpURL string
	cfg   *profile.Config // loaded by Lock, saved by Save
}

var _ cloud.TokenStore = (*configStore)(nil)

func (s *configStore) Lock(ctx context.Context) (cloud.Tokens, func(), error) {
	unlock, err := profile.Lock(ctx, s.path)
	if err != nil {
		return cloud.Tokens{}, nil, err
	}
	cfg, err := profile.Load(s.path)
	if err != nil {
		unlock()
		return cloud.Tokens{}, nil, err
	}
	s.cfg = cfg
	l := cfg.Logins[s.cpURL]
	return cloud.Tokens{AccessToken: l.AccessToken, RefreshToken: l.RefreshToken, Expires: l.AccessTokenExpires}, unlock, nil
}

func (s *configStore) Save(t cloud.Tokens) error {
	for _, cfg := range []*profile.Config{s.cfg, s.f.config} {
		if cfg == nil {
			continue
		}
		l, err := cfg.Login(s.cpURL)
		if err != nil {
			continue // logged out meanwhile
		}
		l.AccessToken, l.RefreshToken, l.AccessTokenExpires = t.AccessToken, t.RefreshToken, t.Expires
		cfg.SetLogin(s.cpURL, l)
	}
	if err := s.cfg.Save(); err != nil {
		fmt.Fprintf(s.f.IO.ErrOut, "Warning: could not save the refreshed login: %v; you may have to run `spate cloud login` again.\n", err)
		return err
	}
	return nil
}

// ConfigError marks a problem with the config file or the selected
// profile (exit code 6).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// AuthError marks a missing or expired login (exit code 7).
type AuthError struct{ Err error }

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// UsageError marks an error in the flags or arguments (exit code 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error to the CLI's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ExitConfig
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		return ExitAuth
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		return ExitAuth
	case connect.CodeInvalidArgument:
		return ExitUsage
	case connect.CodeAlreadyExists:
		return ExitExists
	case connect.CodeNotFound:
		return ExitNotFound
	case connect.CodeUnavailable:
		return ExitUnavailable
	case connect.CodeCanceled:
		return ExitInterrupted
	}
	return ExitError
}

// Explain returns the message for a failed command: the error, and for a
// server that cannot be reached, hint, which says what to do next.
func Explain(err error, hint string) string {
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
		switch ce.Code() {
		case connect.CodeUnavailable:
			if hint != "" {
				msg += "\n" + hint
			}
		case connect.CodeUnauthenticated:
			if !strings.Contains(msg, "spate cloud login") {
				msg += "\nYour login or client certificate is missing, expired or revoked: run `spate cloud login`, then `spate cloud cluster use NAME` for a cluster's profile."
			}
		case connect.CodePermissionDenied:
			msg += "\nYour role or your service account's grants do not allow this: see `spate cloud whoami`, and ask an owner or admin of your tenant."
		}
	}
	return "Error: " + msg
}
