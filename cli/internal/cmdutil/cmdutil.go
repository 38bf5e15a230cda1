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
	"strings"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/client"
)

// Exit codes of the spate CLI. Scripts can rely on them.
const (
	ExitOK          = 0   // success
	ExitError       = 1   // the command failed; the message says why
	ExitUsage       = 2   // bad flags or arguments
	ExitNotFound    = 3   // the topic, partition or other object does not exist
	ExitUnavailable = 4   // the server could not be reached or is not ready
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

// DefaultSPU is the SPU the CLI talks to unless --spu or SPATE_SPU says otherwise.
const DefaultSPU = "http://127.0.0.1:9010"

// Factory builds what commands need, lazily, so that `spate --help` or a
// server command never dials anything.
type Factory struct {
	IO *IOStreams
	// SPU is the address of the SPU to talk to (set by the --spu flag).
	SPU string

	client *client.Client
}

// Client returns the SDK client for the selected SPU, built on first use.
func (f *Factory) Client() (*client.Client, error) {
	if f.client != nil {
		return f.client, nil
	}
	addr := f.SPU
	if addr == "" {
		addr = DefaultSPU
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	c, err := client.New(client.WithSPU(addr), client.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	f.client = c
	return c, nil
}

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
	switch connect.CodeOf(err) {
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
// server that cannot be reached, what to do next.
func Explain(err error, spu string) string {
	msg := err.Error()
	var ce *connect.Error
	if errors.As(err, &ce) {
		msg = ce.Message()
		if ce.Code() == connect.CodeUnavailable {
			if spu == "" {
				spu = DefaultSPU
			}
			msg += fmt.Sprintf("\nIs an SPU running at %s? Start one with `spate spu serve`, or point at another with --spu or SPATE_SPU.", spu)
		}
	}
	return "Error: " + msg
}
