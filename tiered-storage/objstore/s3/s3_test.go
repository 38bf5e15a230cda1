package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spatehq/spate/tiered-storage/objstore"
	"github.com/spatehq/spate/tiered-storage/objstore/objstoretest"
	"github.com/spatehq/spate/tiered-storage/objstore/s3"
	"github.com/spatehq/spate/tiered-storage/objstore/s3/s3test"
)

func newStore(t testing.TB, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	srv := s3test.Start(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		cfg := srv.Config()
		cfg.PartSize = s3.MinPartSize
		cfg.Concurrency = 3
		return newStore(t, cfg)
	}, objstoretest.WithoutNestedKeys()) // versitygw's posix backend: ObjectParentIsFile
}

func put(t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func getAll(t *testing.T, s objstore.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b
}

// faultConfig returns the configuration for fault tests: parts of 5 MiB,
// so that ops' large Put is a multipart upload. (versitygw resets the
// connection when it refuses a large single PutObject before reading it, so
// the client sees a connection error instead of the server's answer; a
// multipart upload learns the answer from CreateMultipartUpload first.)
func faultConfig(srv *s3test.Server) s3.Config {
	cfg := srv.Config()
	cfg.PartSize = s3.MinPartSize
	return cfg
}

// ops runs every Store operation once and returns their errors by name.
func ops(ctx context.Context, s objstore.Store, key string) map[string]error {
	_, getErr := s.Get(ctx, key, 0, -1)
	_, headErr := s.Head(ctx, key)
	_, listErr := s.List(ctx, "", "", 0)
	return map[string]error{
		"Put":       s.Put(ctx, key+"-new", strings.NewReader("x"), 1),
		"Put large": s.Put(ctx, key+"-large", bytes.NewReader(objstoretest.Data(1, s3.MinPartSize+1)), -1),
		"Get":       getErr,
		"Head":      headErr,
		"List":      listErr,
		"Delete":    s.Delete(ctx, key),
	}
}

func TestMultipart(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.Config()
	cfg.PartSize = s3.MinPartSize
	s := newStore(t, cfg)
	data := objstoretest.Data(1, 2*s3.MinPartSize+100)
	put(t, s, "mp", data)
	info, err := s.Head(t.Context(), "mp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-3") {
		t.Errorf("ETag %q of a 3-part upload does not end in -3: not a multipart upload?", info.ETag)
	}
	if !bytes.Equal(getAll(t, s, "mp"), data) {
		t.Fatal("multipart object differs")
	}
	// A failed multipart upload is aborted: no upload is left behind.
	r := io.MultiReader(bytes.NewReader(data[:s3.MinPartSize+10]), errReader{})
	if err := s.Put(t.Context(), "mp-failed", r, -1); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	ups, err := srv.Client().ListMultipartUploads(t.Context(), &s3api.ListMultipartUploadsInput{Bucket: aws.String(s3test.Bucket), Prefix: aws.String(cfg.Prefix + "/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after a failed Put", len(ups.Uploads))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestPrefixIsolation(t *testing.T) {
	srv := s3test.Start(t)
	cfgA, cfgB := srv.Config(), srv.Config()
	cfgA.Prefix, cfgB.Prefix = "tenant-a/cluster-1", "tenant-a/cluster-10"
	a, b := newStore(t, cfgA), newStore(t, cfgB)
	put(t, a, "k", []byte("a"))
	put(t, b, "k", []byte("b"))
	if got := getAll(t, a, "k"); string(got) != "a" {
		t.Errorf("store a reads %q", got)
	}
	for name, s := range map[string]objstore.Store{"a": a, "b": b} {
		list, err := s.List(t.Context(), "", "", 0)
		if err != nil || len(list) != 1 || list[0].Key != "k" {
			t.Errorf("store %s lists %+v, %v; want only k", name, list, err)
		}
	}
	// Behind the Store: the objects are under the prefixes.
	if _, err := srv.Client().HeadObject(t.Context(), &s3api.HeadObjectInput{Bucket: aws.String(s3test.Bucket), Key: aws.String("tenant-a/cluster-1/k")}); err != nil {
		t.Errorf("object not under its prefix: %v", err)
	}
}

func TestServerStopped(t *testing.T) {
	srv := s3test.Start(t)
	s := newStore(t, faultConfig(srv)) // 3 attempts, backoff up to 100 ms
	put(t, s, "k", []byte("before"))

	srv.Stop()
	start := time.Now()
	for op, err := range ops(t.Context(), s, "k") {
		switch {
		case err == nil:
			t.Errorf("%s with the server stopped succeeded", op)
		case !errors.Is(err, objstore.ErrUnavailable):
			t.Errorf("%s: %v; want ErrUnavailable", op, err)
		case !strings.Contains(err.Error(), srv.Endpoint) || !strings.Contains(err.Error(), "cannot reach the server"):
			t.Errorf("%s: error does not say the server at %s cannot be reached: %v", op, srv.Endpoint, err)
		case !strings.Contains(err.Error(), "after 3 attempts"):
			t.Errorf("%s: error does not say it was retried: %v", op, err)
		}
	}
	t.Logf("6 operations failed in %v; e.g. %v", time.Since(start), ops(t.Context(), s, "k")["Get"])

	srv.Restart(t)
	if got := getAll(t, s, "k"); string(got) != "before" {
		t.Fatalf("after restart Get = %q", got)
	}
	for op, err := range ops(t.Context(), s, "k") {
		if err != nil {
			t.Errorf("%s after restart: %v", op, err)
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := s3test.Start(t)
	put(t, newStore(t, srv.Config()), "k", []byte("x"))
	for _, tt := range []struct {
		name        string
		access, sec string
	}{
		{"wrong secret", s3test.AccessKey, "not-the-secret"},
		{"unknown access key", "nobody", s3test.SecretKey},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := faultConfig(srv)
			cfg.AccessKey, cfg.SecretKey = tt.access, tt.sec
			s := newStore(t, cfg)
			for op, err := range ops(t.Context(), s, "k") {
				if tt.access == "nobody" && op == "Head" {
					// versitygw answers an unknown access key with a 404
					// (XAdminUserNotFound), which a HEAD has no body to
					// explain.
					continue
				}
				if !errors.Is(err, objstore.ErrPermission) || !strings.Contains(err.Error(), "refused the credentials") {
					t.Errorf("%s: %v; want ErrPermission saying the credentials were refused", op, err)
				}
				if err != nil && strings.Contains(err.Error(), tt.sec) {
					t.Errorf("%s: error shows the secret: %v", op, err)
				}
			}
			t.Logf("e.g. %v", ops(t.Context(), s, "k")["Put"])
		})
	}
}

func TestMissingBucket(t *testing.T) {
	srv := s3test.Start(t)
	cfg := faultConfig(srv)
	cfg.Bucket = "no-such-bucket"
	s := newStore(t, cfg)
	err := s.Check(t.Context())
	if !errors.Is(err, s3.ErrNoSuchBucket) || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Fatalf("Check = %v; want ErrNoSuchBucket naming the bucket", err)
	}
	t.Logf("Check: %v", err)
	for op, err := range ops(t.Context(), s, "k") {
		if op == "Head" || op == "Delete" && err == nil {
			continue // HEAD has no error body: a 404 reads as a missing object
		}
		if !errors.Is(err, s3.ErrNoSuchBucket) || errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("%s: %v; want ErrNoSuchBucket", op, err)
		}
	}
	if err := newStore(t, srv.Config()).Check(t.Context()); err != nil {
		t.Fatalf("Check of the existing bucket: %v", err)
	}
}

func TestBandwidthLimit(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.Config()
	cfg.UploadBytesPerSecond = 4 << 20
	s := newStore(t, cfg)
	data := objstoretest.Data(1, 6<<20)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range 2 { // the limit is shared by concurrent Puts
		wg.Go(func() { put(t, s, fmt.Sprint(i), data) })
	}
	wg.Wait()
	// 12 MiB at 4 MiB/s, less the initial burst: about 3 s.
	if d := time.Since(start); d < 2500*time.Millisecond {
		t.Fatalf("2 × 6 MiB uploaded in %v with a limit of 4 MiB/s", d)
	} else {
		t.Logf("2 × 6 MiB uploaded in %v (%.1f MiB/s)", d, 12/d.Seconds())
	}
}

func TestConfigValidate(t *testing.T) {
	valid := s3.Config{Bucket: "b-1", AccessKey: "a", SecretKey: "s"}
	for _, tt := range []struct {
		name string
		edit func(*s3.Config)
		want string // "" for valid
	}{
		{"valid", func(*s3.Config) {}, ""},
		{"default chain", func(c *s3.Config) { c.AccessKey, c.SecretKey = "", "" }, ""},
		{"prefix with slashes", func(c *s3.Config) { c.Prefix = "/t/c/" }, ""},
		{"no bucket", func(c *s3.Config) { c.Bucket = "" }, "bucket is required"},
		{"bad endpoint", func(c *s3.Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{"bad prefix", func(c *s3.Config) { c.Prefix = "a/../b" }, "prefix"},
		{"secret only", func(c *s3.Config) { c.AccessKey = "" }, "both access key and secret key"},
		{"small parts", func(c *s3.Config) { c.PartSize = 1 << 20 }, "part size"},
		{"negative concurrency", func(c *s3.Config) { c.Concurrency = -1 }, "concurrency"},
		{"negative limit", func(c *s3.Config) { c.UploadBytesPerSecond = -1 }, "upload bytes per second"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			err := cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
