package s3

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

// Defaults of [Config].
const (
	DefaultRegion      = "us-east-1"
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 4
	DefaultMaxAttempts = 5
	DefaultMaxBackoff  = 10 * time.Second

	// MinPartSize and MaxPartSize are S3's limits on the size of a part
	// (except the last one, which may be smaller).
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	// MaxParts is S3's limit on the number of parts of an upload.
	MaxParts = 10000
)

// Config configures a [Store]. The zero values of optional fields select the
// documented defaults; [Config.Validate] reports what is wrong.
type Config struct {
	// Endpoint is the URL of an S3-compatible server, such as
	// "http://127.0.0.1:7070" or "https://s3.eu-west-1.amazonaws.com".
	// Empty: AWS S3 for Region (or what the AWS environment configures).
	Endpoint string
	// Region is the region requests are signed for; default "us-east-1".
	// Most S3-compatible servers accept any region they were started with.
	Region string
	// Bucket is the bucket that holds the objects. Required; it must exist.
	Bucket string
	// Prefix, when set, puts every key under Prefix + "/", so several
	// tenants, clusters or tests can share a bucket, and credentials that
	// allow only that prefix confine the Store to it. Surrounding '/' are
	// ignored; the rest must be a valid key (see [objstore.ValidateKey]).
	Prefix string
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// rather than in the host name (http://bucket.host/key). Most
	// S3-compatible servers need it.
	PathStyle bool

	// AccessKey and SecretKey (and SessionToken for temporary credentials)
	// are static credentials. When AccessKey is empty, the AWS default
	// credential chain is used (environment, shared files, web identity,
	// ECS/EC2 roles).
	AccessKey    string
	SecretKey    string
	SessionToken string

	// PartSize is the size of the parts of a multipart upload, and the size
	// above which Put uses one; default 16 MiB, at least 5 MiB. Put grows it
	// for an object of known size that would need more than 10,000 parts.
	// A Put from a plain stream holds up to Concurrency+1 parts in memory;
	// one from an io.ReaderAt (a segment file) reads parts in place.
	PartSize int64
	// Concurrency is the number of parts of one Put uploaded at a time;
	// default 4.
	Concurrency int
	// MaxAttempts is how many times a request is tried before failing (1:
	// no retry); default 5. Retries back off exponentially with jitter, up
	// to MaxBackoff (default 10 s). Only requests whose failure is
	// transient are retried (connection errors, 5xx, throttling).
	MaxAttempts int
	MaxBackoff  time.Duration
	// UploadBytesPerSecond, when positive, limits the rate at which the
	// Store sends request bodies (uploads), over all its Puts together.
	UploadBytesPerSecond int64

	// HTTPClient, when set, sends the requests (custom TLS, proxies, tests).
	// Default: the SDK's client, with more idle connections per host.
	HTTPClient *http.Client
}

// withDefaults returns c with defaults in place of zero values.
func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	return c
}

// Validate reports every problem of c, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q is not an http:// or https:// URL", c.Endpoint))
		}
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket is required"))
	} else if len(c.Bucket) < 3 || len(c.Bucket) > 63 || strings.ContainsAny(c.Bucket, "/ ") {
		errs = append(errs, fmt.Errorf("bucket %q is not a valid bucket name", c.Bucket))
	}
	if c.Prefix != "" {
		if err := objstore.ValidateKey(c.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("set both access key and secret key, or neither for the default credential chain"))
	}
	if c.PartSize < MinPartSize || c.PartSize > MaxPartSize {
		errs = append(errs, fmt.Errorf("part size %d is outside [%d, %d]", c.PartSize, MinPartSize, MaxPartSize))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d is less than 1", c.Concurrency))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d is less than 1", c.MaxAttempts))
	}
	if c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max backoff %v is negative", c.MaxBackoff))
	}
	if c.UploadBytesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("upload bytes per second %d is negative", c.UploadBytesPerSecond))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("objstore/s3: invalid config: %w", err)
	}
	return nil
}
