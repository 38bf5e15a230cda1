package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

// ErrNoSuchBucket means the configured bucket does not exist on the server.
// It does not wrap [objstore.ErrNotFound]: a missing bucket is a
// configuration error, not a missing object. (HeadObject answers a bare 404
// for a missing bucket too, so Head reports ErrNotFound there; use
// [Store.Check] at start-up.)
var ErrNoSuchBucket = errors.New("objstore/s3: bucket does not exist")

// wrap turns an SDK error of operation op on target (a key or a listing) into
// an error that names the bucket, the key and the endpoint, and wraps the
// matching objstore sentinel and the original error.
func (s *Store) wrap(op, target string, err error) error {
	where := fmt.Sprintf("s3://%s/%s", s.cfg.Bucket, target)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("objstore/s3: %s %s: %w", op, where, err)
	}
	code, status := "", 0
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	attempts := ""
	var maxErr *retry.MaxAttemptsError
	if errors.As(err, &maxErr) {
		attempts = fmt.Sprintf(" after %d attempts", maxErr.Attempt)
	}
	var sendErr *smithyhttp.RequestSendError
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("objstore/s3: %s %s: %w: bucket %q at %s: %w", op, where, ErrNoSuchBucket, s.cfg.Bucket, s.endpoint, err)
	case code == "NoSuchKey" || code == "NotFound" || (status == http.StatusNotFound && code == ""):
		return fmt.Errorf("objstore/s3: %s %s: %w", op, where, objstore.ErrNotFound)
	case code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable:
		return fmt.Errorf("objstore/s3: %s %s: %w: %w", op, where, objstore.ErrInvalidRange, err)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "InvalidToken" || code == "ExpiredToken" || code == "AccessDenied" || status == http.StatusForbidden ||
		code == "XAdminUserNotFound": // versitygw's answer to an unknown access key
		why := code
		if why == "" {
			why = http.StatusText(status)
		}
		return fmt.Errorf("objstore/s3: %s %s: the server at %s refused the credentials (%s): check the access key and secret key, and that they may use this bucket and prefix: %w: %w",
			op, where, s.endpoint, why, objstore.ErrPermission, err)
	case errors.As(err, &sendErr):
		return fmt.Errorf("objstore/s3: %s %s: cannot reach the server at %s%s: %w: %w", op, where, s.endpoint, attempts, objstore.ErrUnavailable, err)
	case status >= 500 || status == http.StatusTooManyRequests || code == "SlowDown" || code == "RequestTimeout" || code == "InternalError":
		return fmt.Errorf("objstore/s3: %s %s: the server at %s failed%s: %w: %w", op, where, s.endpoint, attempts, objstore.ErrUnavailable, err)
	}
	return fmt.Errorf("objstore/s3: %s %s at %s: %w", op, where, s.endpoint, err)
}
