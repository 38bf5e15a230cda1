package service

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/data-plane/internal/commitlog"
	"github.com/spatehq/spate/data-plane/internal/replica"
	"github.com/spatehq/spate/internal/batch"
)

// connectCode returns the Connect code for an error of the data path.
func connectCode(err error) connect.Code {
	switch {
	case errors.Is(err, batch.ErrBadCRC), errors.Is(err, batch.ErrCorrupt),
		errors.Is(err, batch.ErrTruncated), errors.Is(err, batch.ErrBadMagic),
		errors.Is(err, commitlog.ErrBatchTooLarge), errors.Is(err, replica.ErrInvalidSpec):
		return connect.CodeInvalidArgument
	case errors.Is(err, replica.ErrUnknownTopic), errors.Is(err, replica.ErrUnknownPartition):
		return connect.CodeNotFound
	case errors.Is(err, replica.ErrNotLeader):
		return connect.CodeFailedPrecondition
	case errors.Is(err, commitlog.ErrOffsetOutOfRange):
		return connect.CodeOutOfRange
	case errors.Is(err, commitlog.ErrNoSpace):
		return connect.CodeResourceExhausted
	case errors.Is(err, commitlog.ErrClosed), errors.Is(err, replica.ErrClosed):
		return connect.CodeUnavailable
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	default:
		return connect.CodeInternal
	}
}

// toConnect turns an error into a *connect.Error with the right code and a
// message a client may see. Internal errors are replaced by a generic
// message; the caller logs the original.
func toConnect(err error) *connect.Error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	code := connectCode(err)
	if code == connect.CodeInternal {
		return connect.NewError(code, errors.New("internal error on the SPU; it has been logged"))
	}
	if code == connect.CodeResourceExhausted {
		return connect.NewError(code, errors.New("the SPU's disk is full: nothing was written; retry later or free space (shorter retention)"))
	}
	return connect.NewError(code, err)
}

func invalidArgument(format string, args ...any) *connect.Error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}
