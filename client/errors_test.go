package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/client"
)

func TestIsRetriable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection lost", connect.NewError(connect.CodeUnavailable, fmt.Errorf("%w: reset", client.ErrConnectionLost)), true},
		{"delivery timeout", connect.NewError(connect.CodeDeadlineExceeded, client.ErrDeliveryTimeout), true},
		{"unavailable", connect.NewError(connect.CodeUnavailable, errors.New("down")), true},
		{"aborted", connect.NewError(connect.CodeAborted, errors.New("leader moved")), true},
		{"resource exhausted", connect.NewError(connect.CodeResourceExhausted, errors.New("slow down")), true},
		{"not the leader", connect.NewError(connect.CodeFailedPrecondition, errors.New("replica: not the leader of t/0; the leader is SPU 2")), true},
		{"unexpected EOF", connect.NewError(connect.CodeInternal, fmt.Errorf("protocol error: %w", io.ErrUnexpectedEOF)), true},
		{"connection reset", connect.NewError(connect.CodeCanceled, fmt.Errorf("write: %w", syscall.ECONNRESET)), true},
		{"internal", connect.NewError(connect.CodeInternal, errors.New("bug")), false},
		{"not found", connect.NewError(connect.CodeNotFound, errors.New("no topic")), false},
		{"invalid", connect.NewError(connect.CodeInvalidArgument, client.ErrRecordTooLarge), false},
		{"out of range", connect.NewError(connect.CodeOutOfRange, errors.New("gone")), false},
		{"own cancellation", fmt.Errorf("flush: %w", context.Canceled), false},
		{"own deadline", connect.NewError(connect.CodeDeadlineExceeded, context.DeadlineExceeded), false},
		{"closed", client.ErrClosed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.IsRetriable(tt.err); got != tt.want {
				t.Errorf("IsRetriable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	if !client.IsNotFound(connect.NewError(connect.CodeNotFound, errors.New("x"))) || client.IsNotFound(nil) {
		t.Error("IsNotFound")
	}
	if !client.IsOutOfRange(fmt.Errorf("wrapped: %w", connect.NewError(connect.CodeOutOfRange, errors.New("x")))) || client.IsOutOfRange(nil) {
		t.Error("IsOutOfRange")
	}
}
