// Package cmdutil holds what every command of the spate CLI shares: the
// output streams, the factory that builds clients lazily, and the exit codes
// scripts can rely on.
package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/client"
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

	config *profile.Config
	client *client.Client
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

// ControlPlane returns the control plane URL of the selected profile.
func (f *Factory) ControlPlane() (string, error) {
	cfg, err := f.Config()
	if err != nil {
		return "", err
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
		return "", &ConfigError{Err: fmt.Errorf("no profile selected in %s: run `spate local up` to start a local cluster, or `spate profile switch NAME` (see `spate profile list`)", cfg.Path())}
	case errors.Is(err, profile.ErrNotFound):
		return "", &ConfigError{Err: fmt.Errorf("profile %q not found in %s: see `spate profile list`, or run `spate local up`", name, cfg.Path())}
	case err != nil:
		return "", &ConfigError{Err: err}
	}
	if p.ControlPlane == "" {
		return "", &ConfigError{Err: fmt.Errorf("profile %q in %s has no control_plane URL: run `spate local up` or edit the file", name, cfg.Path())}
	}
	return p.ControlPlane, nil
}

// Client returns the SDK client, built on first use: for the SPU given by
// --spu, or else for the control plane of the selected profile.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	var opt client.Option
	if f.SPU != "" {
		opt = client.WithSPU(f.SPU)
	} else {
		cp, err := f.ControlPlane()
		if err != nil {
			return nil, err
		}
		f.controlPlane = cp
		opt = client.WithControlPlane(cp)
	}
	c, err := client.New(opt, client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, &ConfigError{Err: err}
	}
	f.client = c
	return c, nil
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

// ConfigError marks a problem with the config file or the selected
// profile (exit code 6).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

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
	switch connect.CodeOf(err) {
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
		if ce.Code() == connect.CodeUnavailable && hint != "" {
			msg += "\n" + hint
		}
	}
	return "Error: " + msg
}
