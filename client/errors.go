package client

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"connectrpc.com/connect"
)

// Errors of the client. Test them with errors.Is. The errors the client
// returns or passes to callbacks are *connect.Error values that wrap these
// sentinels, so connect.CodeOf gives their code too.
var (
	// ErrRecordTooLarge means a record does not fit in one batch of the
	// producer's batch size. It was not sent. Raise the batch size with
	// WithBatchBytes (up to the topic's maximum batch size) or make the
	// record smaller.
	ErrRecordTooLarge = errors.New("client: record too large")
	// ErrClosed means the producer or consumer was closed. Records
	// produced after Close, or still unsent when Close gave up, fail with
	// it and were not written.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost means the connection to the SPU broke after a
	// batch was sent and before the SPU answered: the records may or may
	// not have been written. The client never resends them by itself, to
	// avoid silent duplicates; produce them again if a duplicate is
	// acceptable. IsRetriable reports true for it.
	ErrConnectionLost = errors.New("client: connection to the SPU lost before it acknowledged the batch; the records may or may not have been written")
	// ErrDeliveryTimeout means a batch could not be delivered and
	// acknowledged within the producer's delivery timeout (see
	// WithDeliveryTimeout). If it was never sent, it was not written;
	// otherwise, as with ErrConnectionLost, it may have been.
	ErrDeliveryTimeout = errors.New("client: delivery timeout")
	// ErrUnknownPartition means a partitioner chose a partition the topic
	// does not have. The record was not sent.
	ErrUnknownPartition = errors.New("client: unknown partition")
)

// IsRetriable reports whether err is transient: the same call may succeed
// if made again, after a short wait. That is the case when the SPU is
// unavailable or overloaded, when a connection broke (ErrConnectionLost),
// when a request was aborted, and when it reached a replica that no longer
// leads its partition (FailedPrecondition: the leader moved, and the
// metadata watch catches up). It is false for nil, for errors that will
// recur (a bad request, a missing topic, an offset out of range) and for
// the cancellation or deadline of the caller's own context.
//
// A retried produce may write the records twice when the first attempt
// failed with ErrConnectionLost or ErrDeliveryTimeout.
func IsRetriable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrDeliveryTimeout):
		return true
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return false
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeAborted, connect.CodeResourceExhausted, connect.CodeFailedPrecondition:
		return true
	case connect.CodeUnknown, connect.CodeInternal, connect.CodeCanceled:
		// connect gives a broken connection any of these codes; the
		// caller's own cancellation was ruled out above.
		return isTransportError(err)
	}
	return false
}

// IsNotFound reports whether err says that a topic or partition does not
// exist.
func IsNotFound(err error) bool {
	return err != nil && connect.CodeOf(err) == connect.CodeNotFound
}

// IsOutOfRange reports whether err says that an offset is outside the
// partition's retained records, typically because retention deleted them.
// Start again from Beginning.
func IsOutOfRange(err error) bool {
	return err != nil && connect.CodeOf(err) == connect.CodeOutOfRange
}

// isTransportError reports whether err comes from a broken connection
// rather than from the SPU's answer.
func isTransportError(err error) bool {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// The HTTP/2 transport's GOAWAY and connection errors are unexported.
	msg := err.Error()
	return strings.Contains(msg, "GOAWAY") || strings.Contains(msg, "connection reset") ||
		strings.Contains(msg, "client connection lost")
}

// isDialError reports whether err says that no connection could be made,
// so that nothing sent on it reached the SPU.
func isDialError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// wireError turns the error code and message of a ProduceResponse into an
// error.
func wireError(code uint32, msg string) error {
	if msg == "" {
		msg = "the SPU refused the batch"
	}
	return connect.NewError(connect.Code(code), errors.New(msg))
}
