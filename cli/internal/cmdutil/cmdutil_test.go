package cmdutil_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/cli/internal/cmdutil"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, cmdutil.ExitOK},
		{"plain", errors.New("x"), cmdutil.ExitError},
		{"usage", cmdutil.Usagef("bad"), cmdutil.ExitUsage},
		{"config", &cmdutil.ConfigError{Err: errors.New("corrupt")}, cmdutil.ExitConfig},
		{"invalid argument", connect.NewError(connect.CodeInvalidArgument, errors.New("bad name")), cmdutil.ExitUsage},
		{"not found", fmt.Errorf("wrapped: %w", connect.NewError(connect.CodeNotFound, errors.New("x"))), cmdutil.ExitNotFound},
		{"exists", connect.NewError(connect.CodeAlreadyExists, errors.New("x")), cmdutil.ExitExists},
		{"unavailable", connect.NewError(connect.CodeUnavailable, errors.New("x")), cmdutil.ExitUnavailable},
		{"canceled", connect.NewError(connect.CodeCanceled, context.Canceled), cmdutil.ExitInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cmdutil.ExitCode(tt.err); got != tt.want {
				t.Fatalf("ExitCode(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestExplainAddsHintWhenUnavailable(t *testing.T) {
	err := connect.NewError(connect.CodeUnavailable, errors.New("dial failed"))
	if got := cmdutil.Explain(err, "start it"); got != "Error: dial failed\nstart it" {
		t.Fatalf("Explain = %q", got)
	}
	if got := cmdutil.Explain(errors.New("boom"), "start it"); got != "Error: boom" {
		t.Fatalf("Explain = %q", got)
	}
}

func TestAuthErrors(t *testing.T) {
	for _, err := range []error{
		&cmdutil.AuthError{Err: errors.New("not logged in")},
		connect.NewError(connect.CodeUnauthenticated, errors.New("token expired")),
		connect.NewError(connect.CodePermissionDenied, errors.New("not allowed")),
	} {
		if got := cmdutil.ExitCode(err); got != cmdutil.ExitAuth {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, cmdutil.ExitAuth)
		}
	}
	if got := cmdutil.Explain(connect.NewError(connect.CodeUnauthenticated, errors.New("token expired")), ""); !strings.Contains(got, "run `spate cloud login`") {
		t.Errorf("Explain(Unauthenticated) = %q", got)
	}
	if got := cmdutil.Explain(connect.NewError(connect.CodePermissionDenied, errors.New("no grant")), ""); !strings.Contains(got, "ask an owner or admin") {
		t.Errorf("Explain(PermissionDenied) = %q", got)
	}
}
