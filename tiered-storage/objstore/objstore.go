// Package objstore is Spate's object-store abstraction: a flat namespace of
// immutable-by-convention objects addressed by key, with atomic writes, ranged
// reads, ordered listing and batch deletes. Tiered storage keeps every
// retained segment and index in one.
//
// Two implementations live in sub-packages: objstore/s3 (any S3-compatible
// server, through aws-sdk-go-v2) and objstore/local (a folder, the default of
// `spate local up`). Both pass the conformance suite in objstore/objstoretest,
// which is the executable form of the contract written on [Store].
//
// Metrics, tracing and retries above the transport wrap a Store rather than
// grow it.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Store is an object store. Keys are validated with [ValidateKey]; a key that
// fails validation makes every method fail with an error wrapping
// [ErrInvalidKey] before any I/O.
//
// Every method is safe for concurrent use, honours ctx (cancellation and
// deadline) and returns errors that wrap one of the package's sentinels where
// one applies, so callers test them with errors.Is:
//
//   - [ErrNotFound]: the object does not exist (Get, Head).
//   - [ErrInvalidKey], [ErrInvalidRange]: the caller's mistake; do not retry.
//   - [ErrUnavailable]: the store could not be reached or failed on its side
//     after the implementation's own retries; retrying later may succeed.
//   - [ErrPermission]: the store refused the credentials or the operation.
//
// Errors name the operation and the key, and, for remote stores, where the
// object lives (bucket, endpoint), never the secret.
type Store interface {
	// Put stores the bytes read from r under key, replacing any object
	// already there. size is the number of bytes r will yield, or -1 when
	// unknown; when size >= 0 and r yields fewer or more bytes, Put fails and
	// stores nothing.
	//
	// Put is atomic: until it returns nil, readers see the previous object (or
	// none), never part of the new one; if it fails (r returns an error, ctx
	// is cancelled, the store fails), nothing of the new object is visible.
	// Large objects go up in parts (S3 multipart uploads). Put is idempotent
	// for equal contents. Concurrent Puts to the same key leave one of them.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Get returns a reader of bytes [off, off+n) of the object; n = -1 means
	// to the end of the object. The caller must Close it.
	//
	// A range that ends past the end of the object is cut short: the reader
	// yields the bytes up to the end, then io.EOF (a short read, not an
	// error). A range that starts at or past the end fails with
	// [ErrInvalidRange], except off = 0, which reads an empty object as empty.
	// off < 0 or n < -1 fails with [ErrInvalidRange]. n = 0 yields nothing but
	// still reports [ErrNotFound] for a missing object.
	//
	// A missing object fails with [ErrNotFound]. Errors while reading the
	// stream (a connection that breaks) come from the reader's Read and are
	// not retried: callers resume with a new Get from the offset reached.
	Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)

	// Head returns the object's metadata, or [ErrNotFound].
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// List returns the objects whose keys start with prefix and sort strictly
	// after startAfter ("" for no lower bound), in ascending byte order of
	// keys, at most limit of them (limit <= 0: all). Implementations paginate
	// internally. A listing is a snapshot per page, not of the whole store:
	// objects written or deleted during a List may or may not appear. To page
	// through a large listing, pass the last key returned as the next
	// startAfter.
	List(ctx context.Context, prefix, startAfter string, limit int) ([]ObjectInfo, error)

	// Delete removes the objects under keys. Keys that do not exist are not
	// an error, so Delete is idempotent. All keys are validated before
	// anything is deleted; remote stores delete in batches of 1000 and, on
	// failure, may have deleted some of the keys: retry the whole call.
	Delete(ctx context.Context, keys ...string) error
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is the object's key, as passed to Put (without any store prefix).
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ETag identifies the object's contents: equal ETags mean equal contents
	// for the same key. It is opaque: an S3 ETag (an MD5 for single-part
	// uploads, not for multipart ones) or a local version stamp; do not
	// compare ETags across stores.
	ETag string
	// LastModified is when the object was last written, as the store
	// records it (S3: second precision).
	LastModified time.Time
}

// Errors that Store methods wrap; test for them with errors.Is.
var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("objstore: object not found")
	// ErrInvalidKey means a key failed [ValidateKey].
	ErrInvalidKey = errors.New("objstore: invalid key")
	// ErrInvalidRange means a Get range starts past the end of the object or
	// is malformed.
	ErrInvalidRange = errors.New("objstore: invalid range")
	// ErrUnavailable means the store could not be reached, timed out or
	// failed on its side (S3 5xx, throttling) after the implementation's own
	// retries. The operation may succeed later.
	ErrUnavailable = errors.New("objstore: store unavailable")
	// ErrPermission means the store refused the credentials or the
	// operation (S3 AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch;
	// a local permission error). Retrying does not help: fix the
	// credentials or the policy.
	ErrPermission = errors.New("objstore: permission denied")
)

// MaxKeyLen is the longest key, in bytes (the S3 limit).
const MaxKeyLen = 1024

// ValidateKey reports whether key can name an object in every Store. A valid
// key is 1 to [MaxKeyLen] bytes of UTF-8, made of printable characters (the
// ASCII space included; no control characters), does not start or end with
// '/', contains no empty segment ("//"), no "." segment and no ".." anywhere.
// '/' separates segments, which stores may map to directories. The error wraps
// [ErrInvalidKey] and says what is wrong.
func ValidateKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidKey, truncate(key), why)
	}
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return bad(fmt.Sprintf("%d bytes, more than %d", len(key), MaxKeyLen))
	case !utf8.ValidString(key):
		return bad("not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("starts with '/'")
	case strings.HasSuffix(key, "/"):
		return bad("ends with '/'")
	case strings.Contains(key, "//"):
		return bad("contains an empty segment (\"//\")")
	case strings.Contains(key, ".."):
		return bad("contains \"..\"")
	case key == "." || strings.HasPrefix(key, "./") || strings.HasSuffix(key, "/.") || strings.Contains(key, "/./"):
		return bad("contains a \".\" segment")
	}
	for i, r := range key {
		if !unicode.IsPrint(r) {
			return bad(fmt.Sprintf("non-printable character %U at byte %d", r, i))
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix can be passed to List: "" or a string
// that would be a valid key once completed, that is, one that passes
// [ValidateKey] after an "x" is appended when it ends with '/'.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	p := prefix
	if strings.HasSuffix(p, "/") {
		p += "x"
	}
	if err := ValidateKey(p); err != nil {
		return fmt.Errorf("prefix %q: %w", truncate(prefix), err)
	}
	return nil
}

// ValidateRange checks the arguments of Get: off >= 0 and n >= -1. The error
// wraps [ErrInvalidRange].
func ValidateRange(off, n int64) error {
	if off < 0 || n < -1 {
		return fmt.Errorf("%w: offset %d, length %d", ErrInvalidRange, off, n)
	}
	return nil
}

// truncate shortens s for error messages.
func truncate(s string) string {
	const max = 128
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
