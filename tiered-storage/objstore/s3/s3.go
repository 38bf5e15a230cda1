// Package s3 is an [objstore.Store] over any S3-compatible server (AWS S3,
// MinIO, Versity S3 Gateway, Ceph RGW, ...), built on aws-sdk-go-v2.
//
// Objects live in one bucket, under an optional prefix ([Config.Prefix]):
// key K is stored as "<prefix>/K". Put sends objects up to [Config.PartSize]
// in one PutObject and larger ones as multipart uploads with bounded
// concurrency; a failed multipart upload is aborted, so nothing of it becomes
// visible (set a bucket lifecycle rule that aborts incomplete multipart
// uploads after a day, for uploads cut short by a crash). Requests are retried
// with exponential backoff by the SDK's standard retryer; errors name the
// bucket, key and endpoint and wrap the objstore sentinels (plus
// [ErrNoSuchBucket]). An upload bandwidth limit applies to all the Store's
// uploads together.
//
// Servers differ in small ways that show in errors. Versity S3 Gateway's
// posix backend maps keys to files, so a key and keys below it ("a" and
// "a/b") cannot both exist (ObjectParentIsFile); it answers an unknown access
// key with a 404 (XAdminUserNotFound, reported as a credentials error), and
// resets the connection when it refuses a large single PutObject before
// reading its body (reported as [objstore.ErrUnavailable]). Call
// [Store.Check] at start-up for a clear verdict on bucket and credentials.
//
// The test helper in s3test starts a real S3-compatible server (Versity S3
// Gateway) for tests and benchmarks.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/spatehq/spate/tiered-storage/objstore"
)

var _ objstore.Store = (*Store)(nil)

// deleteBatch is the most keys one DeleteObjects request may carry.
const deleteBatch = 1000

// Store is an [objstore.Store] over an S3 bucket. Create it with [New]. It is
// safe for concurrent use.
type Store struct {
	cfg      Config
	client   *s3api.Client
	endpoint string // for error messages: the URL, or "AWS S3 (<region>)"
	keyBase  string // "" or cfg.Prefix + "/"

	bufs sync.Pool // *[]byte of cfg.PartSize bytes: part buffers of Put
}

// New returns a Store for cfg. It does no I/O apart from resolving the AWS
// configuration when cfg has no static credentials; use [Store.Check] to
// verify that the bucket is reachable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = 64
		})),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxAttempts
				o.MaxBackoff = cfg.MaxBackoff
				// No client-side retry quota: a long outage must not leave
				// the Store failing fast after the server is back.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore/s3: load AWS configuration: %w", err)
	}
	// Replace or wrap the client after loading, which configures the
	// default one (AWS_CA_BUNDLE, for instance).
	if cfg.HTTPClient != nil {
		awsCfg.HTTPClient = cfg.HTTPClient
	}
	if cfg.UploadBytesPerSecond > 0 {
		burst := int(min(max(cfg.UploadBytesPerSecond/8, 32<<10), 1<<20))
		awsCfg.HTTPClient = &limitedClient{next: awsCfg.HTTPClient, lim: rate.NewLimiter(rate.Limit(cfg.UploadBytesPerSecond), burst), burst: burst}
	}
	client := s3api.NewFromConfig(awsCfg, func(o *s3api.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Ranged and multipart GETs have no whole-object checksum to check;
		// that is expected, not worth a warning per request.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{cfg: cfg, client: client, endpoint: cfg.Endpoint}
	if s.endpoint == "" {
		s.endpoint = fmt.Sprintf("AWS S3 (%s)", cfg.Region)
	}
	if cfg.Prefix != "" {
		s.keyBase = cfg.Prefix + "/"
	}
	s.bufs.New = func() any { b := make([]byte, cfg.PartSize); return &b }
	return s, nil
}

// Client returns the underlying SDK client, for operations the Store does not
// offer.
func (s *Store) Client() *s3api.Client { return s.client }

// Check verifies that the bucket exists and the credentials may use it. The
// error wraps [ErrNoSuchBucket], [objstore.ErrPermission] or
// [objstore.ErrUnavailable].
func (s *Store) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3api.HeadBucketInput{Bucket: &s.cfg.Bucket})
	if err != nil {
		var apiErr interface{ ErrorCode() string }
		if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NotFound" || apiErr.ErrorCode() == "NoSuchBucket") {
			return fmt.Errorf("objstore/s3: check s3://%s: %w: bucket %q at %s", s.cfg.Bucket, ErrNoSuchBucket, s.cfg.Bucket, s.endpoint)
		}
		return s.wrap("check", "", err)
	}
	return nil
}

// BucketKey returns the key in the bucket of the Store's key: the key under
// [Config.Prefix].
func (s *Store) BucketKey(key string) string { return s.keyBase + key }

func (s *Store) objectKey(key string) string { return s.keyBase + key }

func (s *Store) checkKey(op, key string) error {
	if err := objstore.ValidateKey(key); err != nil {
		return fmt.Errorf("objstore/s3: %s s3://%s/%s: %w", op, s.cfg.Bucket, s.objectKey(key), err)
	}
	return nil
}

// Put implements [objstore.Store]. Objects of up to [Config.PartSize] bytes
// go up in one PutObject, larger ones as a multipart upload with
// [Config.Concurrency] parts in flight, which is aborted when anything fails.
//
// When r is also an [io.ReaderAt] and an [io.Seeker] (an *os.File, a
// *bytes.Reader) and size is known, parts are read from r at their offsets
// (from r's current position) instead of being copied into memory, and r is
// left positioned after the object.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.checkKey("put", key); err != nil {
		return err
	}
	objKey := s.objectKey(key)
	if size < -1 {
		return fmt.Errorf("objstore/s3: put s3://%s/%s: invalid size %d", s.cfg.Bucket, objKey, size)
	}
	if err := ctx.Err(); err != nil {
		return s.wrap("put", objKey, err)
	}
	partSize := s.cfg.PartSize
	if size > partSize*MaxParts {
		const mib = 1 << 20
		partSize = ((size+MaxParts-1)/MaxParts + mib - 1) / mib * mib
	}
	if ra, ok := r.(readerAtSeeker); ok && size >= 0 {
		return s.putAt(ctx, key, ra, size, partSize)
	}
	src := &ctxReader{ctx: ctx, r: r}

	// Read the first part: when the object fits, send it in one request.
	buf := s.getBuf(partSize)
	want := partSize
	if size >= 0 {
		want = min(size, partSize)
	}
	n, err := io.ReadFull(src, (*buf)[:want])
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if size >= 0 {
			s.putBuf(buf)
			return s.sizeError(key, int64(n), size)
		}
	case err != nil:
		s.putBuf(buf)
		return s.readError(key, int64(n), err)
	case size >= 0 && size <= partSize:
		if err := expectEOF(src); err != nil {
			s.putBuf(buf)
			return s.readOrSizeError(key, size, err)
		}
	default: // a full part and more to come, or size unknown
		return s.putMultipart(ctx, key, s.bufferedParts(key, src, size, partSize, buf))
	}
	defer s.putBuf(buf)
	return s.putObject(ctx, objKey, bytes.NewReader((*buf)[:n]), int64(n))
}

type readerAtSeeker interface {
	io.ReaderAt
	io.Seeker
}

// putAt uploads the size bytes of r from its current position, which must be
// all that remains of r.
func (s *Store) putAt(ctx context.Context, key string, r readerAtSeeker, size, partSize int64) error {
	pos, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return s.readError(key, 0, err)
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = r.Seek(pos, io.SeekStart)
	}
	if err != nil {
		return s.readError(key, 0, err)
	}
	if end-pos != size {
		return s.sizeError(key, end-pos, size)
	}
	if size <= partSize {
		err = s.putObject(ctx, s.objectKey(key), io.NewSectionReader(r, pos, size), size)
	} else {
		off := pos
		err = s.putMultipart(ctx, key, func(int32) (io.ReadSeeker, int64, func(), bool, error) {
			n := min(partSize, pos+size-off)
			body := io.NewSectionReader(r, off, n)
			off += n
			return body, n, func() {}, off == pos+size, nil
		})
	}
	if err != nil {
		return err
	}
	if _, err := r.Seek(pos+size, io.SeekStart); err != nil {
		return s.readError(key, size, err)
	}
	return nil
}

func (s *Store) putObject(ctx context.Context, objKey string, body io.ReadSeeker, n int64) error {
	_, err := s.client.PutObject(ctx, &s3api.PutObjectInput{
		Bucket:        &s.cfg.Bucket,
		Key:           &objKey,
		Body:          body,
		ContentLength: aws.Int64(n),
	})
	if err != nil {
		return s.wrap("put", objKey, err)
	}
	return nil
}

// nextPartFunc returns part number num of an upload: its body and length, a
// function that releases its memory once it is uploaded, and whether it is
// the last part. With an error, it releases what it holds itself. Parts are
// asked for in order and never after the last one.
type nextPartFunc func(num int32) (body io.ReadSeeker, n int64, release func(), last bool, err error)

// bufferedParts returns the parts of src read into part buffers: first, a
// full part already read, then the rest of src, which must yield size bytes
// in all (-1: any number).
func (s *Store) bufferedParts(key string, src io.Reader, size, partSize int64, first *[]byte) nextPartFunc {
	total := int64(0)
	return func(num int32) (io.ReadSeeker, int64, func(), bool, error) {
		var buf *[]byte
		var n int
		last := false
		if num == 1 {
			buf, n = first, len(*first)
		} else {
			want := partSize
			if size >= 0 {
				want = min(partSize, size-total)
			}
			buf = s.getBuf(partSize)
			var err error
			n, err = io.ReadFull(src, (*buf)[:want])
			switch {
			case err == nil:
			case size < 0 && err == io.ErrUnexpectedEOF: // a short last part
				last = true
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				s.putBuf(buf)
				if size < 0 { // the previous part was the last: send an empty one
					return bytes.NewReader(nil), 0, func() {}, true, nil
				}
				return nil, 0, nil, false, s.sizeError(key, total+int64(n), size)
			default:
				s.putBuf(buf)
				return nil, 0, nil, false, s.readError(key, total+int64(n), err)
			}
		}
		total += int64(n)
		if size >= 0 && total == size {
			if err := expectEOF(src); err != nil {
				s.putBuf(buf)
				return nil, 0, nil, false, s.readOrSizeError(key, size, err)
			}
			last = true
		}
		return bytes.NewReader((*buf)[:n]), int64(n), func() { s.putBuf(buf) }, last, nil
	}
}

// putMultipart uploads the parts that next returns as one multipart upload,
// with up to Config.Concurrency parts in flight, and aborts the upload if
// anything fails.
func (s *Store) putMultipart(ctx context.Context, key string, next nextPartFunc) (err error) {
	objKey := s.objectKey(key)
	created, err := s.client.CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{
		Bucket:            &s.cfg.Bucket,
		Key:               &objKey,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return s.wrap("put (create multipart upload)", objKey, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			// Abort even when ctx is cancelled, so no parts linger.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, aerr := s.client.AbortMultipartUpload(actx, &s3api.AbortMultipartUploadInput{
				Bucket: &s.cfg.Bucket, Key: &objKey, UploadId: uploadID,
			}); aerr != nil {
				err = errors.Join(err, s.wrap("put (abort multipart upload "+aws.ToString(uploadID)+")", objKey, aerr))
			}
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	var (
		mu    sync.Mutex // guards parts
		parts []types.CompletedPart
	)
	var readErr error
	for num := int32(1); gctx.Err() == nil; num++ {
		if num > MaxParts {
			readErr = fmt.Errorf("objstore/s3: put s3://%s/%s: more than %d parts: pass the size to Put or raise the part size", s.cfg.Bucket, objKey, MaxParts)
			break
		}
		body, n, release, last, err := next(num)
		if err != nil {
			readErr = err
			break
		}
		if n == 0 && num > 1 { // nothing after the previous part
			release()
			break
		}
		g.Go(func() error {
			defer release()
			out, err := s.client.UploadPart(gctx, &s3api.UploadPartInput{
				Bucket:            &s.cfg.Bucket,
				Key:               &objKey,
				UploadId:          uploadID,
				PartNumber:        aws.Int32(num),
				Body:              body,
				ContentLength:     aws.Int64(n),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				return s.wrap(fmt.Sprintf("put (upload part %d)", num), objKey, err)
			}
			mu.Lock()
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32: out.ChecksumCRC32})
			mu.Unlock()
			return nil
		})
		if last {
			break
		}
	}
	uploadErr := g.Wait()
	if readErr != nil {
		return readErr
	}
	if uploadErr != nil {
		return uploadErr
	}
	if err := ctx.Err(); err != nil {
		return s.wrap("put", objKey, err)
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3api.CompleteMultipartUploadInput{
		Bucket:          &s.cfg.Bucket,
		Key:             &objKey,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return s.wrap("put (complete multipart upload)", objKey, err)
	}
	return nil
}

func (s *Store) getBuf(size int64) *[]byte {
	if size != s.cfg.PartSize {
		b := make([]byte, size)
		return &b
	}
	return s.bufs.Get().(*[]byte)
}

func (s *Store) putBuf(b *[]byte) {
	if int64(len(*b)) == s.cfg.PartSize {
		s.bufs.Put(b)
	}
}

// expectEOF reads one byte more from r: nil means r was at its end.
func expectEOF(r io.Reader) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n > 0 {
		return errTooLong
	}
	if err == io.EOF {
		return nil
	}
	return err
}

var errTooLong = errors.New("reader yielded more bytes than the size")

func (s *Store) sizeError(key string, n, size int64) error {
	return fmt.Errorf("objstore/s3: put s3://%s/%s: reader yielded %d bytes, want %d", s.cfg.Bucket, s.objectKey(key), n, size)
}

func (s *Store) readError(key string, n int64, err error) error {
	return fmt.Errorf("objstore/s3: put s3://%s/%s: read after %d bytes: %w", s.cfg.Bucket, s.objectKey(key), n, err)
}

func (s *Store) readOrSizeError(key string, size int64, err error) error {
	if err == errTooLong {
		return fmt.Errorf("objstore/s3: put s3://%s/%s: reader yielded more than %d bytes", s.cfg.Bucket, s.objectKey(key), size)
	}
	return s.readError(key, size, err)
}

// Get implements [objstore.Store]. ctx also governs the returned reader.
//
// A GET of a whole object asks for its checksum and the SDK checks the body
// against it, when the server has one. A ranged GET does not: S3 keeps no
// checksum of an arbitrary range, and the SDK would otherwise hash every
// byte of the response for nothing; readers of ranges (the remote tier)
// check the CRCs of what they read themselves.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if err := s.checkKey("get", key); err != nil {
		return nil, err
	}
	objKey := s.objectKey(key)
	if err := objstore.ValidateRange(off, n); err != nil {
		return nil, fmt.Errorf("objstore/s3: get s3://%s/%s: %w", s.cfg.Bucket, objKey, err)
	}
	if n == 0 {
		info, err := s.Head(ctx, key)
		if err != nil {
			return nil, err
		}
		if off >= info.Size && off > 0 {
			return nil, fmt.Errorf("objstore/s3: get s3://%s/%s: %w: offset %d, object size %d", s.cfg.Bucket, objKey, objstore.ErrInvalidRange, off, info.Size)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	in := &s3api.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &objKey}
	var optFns []func(*s3api.Options)
	if off > 0 || n > 0 {
		rng := fmt.Sprintf("bytes=%d-", off)
		if n > 0 {
			rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
		}
		in.Range = &rng
		optFns = append(optFns, noResponseChecksum)
	}
	out, err := s.client.GetObject(ctx, in, optFns...)
	if err != nil {
		err = s.wrap("get", objKey, err)
		if off == 0 && errors.Is(err, objstore.ErrInvalidRange) {
			// Only an empty object cannot satisfy a range from 0.
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		if errors.Is(err, objstore.ErrInvalidRange) {
			err = fmt.Errorf("%w (offset %d)", err, off)
		}
		return nil, err
	}
	return out.Body, nil
}

// noResponseChecksum leaves a response's checksum unasked for and
// unchecked (unless the request asks for it).
func noResponseChecksum(o *s3api.Options) {
	o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
}

// Head implements [objstore.Store].
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := s.checkKey("head", key); err != nil {
		return objstore.ObjectInfo{}, err
	}
	objKey := s.objectKey(key)
	out, err := s.client.HeadObject(ctx, &s3api.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &objKey})
	if err != nil {
		return objstore.ObjectInfo{}, s.wrap("head", objKey, err)
	}
	return objstore.ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		LastModified: aws.ToTime(out.LastModified),
	}, nil
}

// List implements [objstore.Store] with ListObjectsV2, 1000 keys a page.
func (s *Store) List(ctx context.Context, prefix, startAfter string, limit int) ([]objstore.ObjectInfo, error) {
	if err := objstore.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("objstore/s3: list s3://%s/%s: %w", s.cfg.Bucket, s.objectKey(prefix), err)
	}
	in := &s3api.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(s.keyBase + prefix)}
	if startAfter != "" {
		in.StartAfter = aws.String(s.keyBase + startAfter)
	}
	var out []objstore.ObjectInfo
	for {
		in.MaxKeys = aws.Int32(1000)
		if limit > 0 {
			in.MaxKeys = aws.Int32(int32(min(1000, limit-len(out))))
		}
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.wrap("list", s.keyBase+prefix+"*", err)
		}
		for _, o := range page.Contents {
			out = append(out, objstore.ObjectInfo{
				Key:          strings.TrimPrefix(aws.ToString(o.Key), s.keyBase),
				Size:         aws.ToInt64(o.Size),
				ETag:         strings.Trim(aws.ToString(o.ETag), `"`),
				LastModified: aws.ToTime(o.LastModified),
			})
		}
		if limit > 0 && len(out) >= limit {
			return out[:limit], nil
		}
		if !aws.ToBool(page.IsTruncated) || len(page.Contents) == 0 {
			return out, nil
		}
		if page.NextContinuationToken != nil {
			in.ContinuationToken = page.NextContinuationToken
		} else {
			in.StartAfter = page.Contents[len(page.Contents)-1].Key
		}
	}
}

// Delete implements [objstore.Store] with DeleteObjects, 1000 keys a request.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	for _, key := range keys {
		if err := s.checkKey("delete", key); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil && len(keys) > 0 {
		return s.wrap("delete", s.objectKey(keys[0]), err)
	}
	for batch := range slices.Chunk(keys, deleteBatch) {
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, key := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.objectKey(key))}
		}
		out, err := s.client.DeleteObjects(ctx, &s3api.DeleteObjectsInput{
			Bucket: &s.cfg.Bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.wrap(fmt.Sprintf("delete %d keys from", len(batch)), s.objectKey(batch[0]), err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			err := fmt.Errorf("objstore/s3: delete s3://%s/%s at %s: %s: %s (and %d more keys failed)",
				s.cfg.Bucket, aws.ToString(e.Key), s.endpoint, aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
			if c := aws.ToString(e.Code); c == "AccessDenied" {
				err = fmt.Errorf("%w: %w", objstore.ErrPermission, err)
			} else if c == "InternalError" || c == "SlowDown" {
				err = fmt.Errorf("%w: %w", objstore.ErrUnavailable, err)
			}
			return err
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done, so an upload stops reading its
// source when cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// limitedClient limits the rate at which request bodies are sent.
type limitedClient struct {
	next  aws.HTTPClient
	lim   *rate.Limiter
	burst int
}

func (c *limitedClient) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		ctx := req.Context()
		req.Body = &limitedBody{rc: req.Body, ctx: ctx, c: c}
		if getBody := req.GetBody; getBody != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				rc, err := getBody()
				if err != nil || rc == http.NoBody {
					return rc, err
				}
				return &limitedBody{rc: rc, ctx: ctx, c: c}, nil
			}
		}
	}
	return c.next.Do(req)
}

type limitedBody struct {
	rc  io.ReadCloser
	ctx context.Context
	c   *limitedClient
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if len(p) > b.c.burst {
		p = p[:b.c.burst]
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if werr := b.c.lim.WaitN(b.ctx, n); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
