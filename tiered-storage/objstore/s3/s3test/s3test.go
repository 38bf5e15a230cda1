// Package s3test runs a real S3-compatible server, the Versity S3 Gateway
// (versitygw) with its posix backend over a temporary folder, for the tests
// and benchmarks of objstore/s3 and of what is built on it.
//
// The binary comes from $SPATE_VERSITYGW or <repo>/.cache/bin/versitygw,
// where infra/scripts/install-versitygw.sh installs it. When it is missing,
// [Start] skips the test, or fails it when CI=true, so CI never passes
// without having run the S3 tests.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spatehq/spate/tiered-storage/objstore/s3"
)

// Credentials and region of the servers that Start runs.
const (
	AccessKey = "spate-test-access"
	SecretKey = "spate-test-secret-0123456789"
	Region    = "us-east-1"
	// Bucket is the bucket Start creates.
	Bucket = "spate-test"
)

// Binary returns the path of the versitygw binary, or skips t (fails it when
// the environment variable CI is "true") when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("SPATE_VERSITYGW")
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		path = filepath.Join(root, ".cache", "bin", "versitygw")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("s3test: no S3 server binary at %s (%v): run infra/scripts/install-versitygw.sh, or set SPATE_VERSITYGW", path, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// repoRoot returns the folder of the nearest go.mod above the working
// folder (the package's folder in `go test`).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working folder")
		}
		dir = parent
	}
}

// Server is a running versitygw. Its methods are safe for concurrent use.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:<port>.
	Endpoint string

	bin  string
	dir  string // the posix backend's root: one folder per bucket
	addr string // 127.0.0.1:<port>

	mu   sync.Mutex // guards cmd, done, out
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *capped       // the server's output, for failure messages

	prefixes atomic.Int64 // for Config
}

// Start starts a server on a free port of 127.0.0.1 over a temporary folder,
// waits until it answers, creates [Bucket], and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // another process may take the port first
		s.addr, err = freeAddr()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3api.CreateBucketInput{Bucket: aws.String(Bucket)}); err != nil {
		t.Fatalf("s3test: create bucket %s: %v\nserver output:\n%s", Bucket, err, s.Output())
	}
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start runs the server and waits until it answers HTTP.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("server already running")
	}
	out := &capped{max: 64 << 10}
	cmd := exec.Command(s.bin, "--port", s.addr, "--region", Region, "--quiet", "posix", s.dir)
	// Credentials in the environment rather than flags, which ps shows.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before answering on %s: %s", s.bin, s.addr, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s did not answer on %s within 20s: %v\n%s", s.bin, s.addr, err, out)
		}
	}
	s.cmd, s.done, s.out = cmd, done, out
	return nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it
// to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts a stopped server again, on the same address over the same
// folder, so it serves the same buckets and objects.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("s3test: restart: %v", err)
}

// Output returns the last 64 KiB of the server's output.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Config returns a configuration of an objstore/s3 Store for this server,
// with path-style addressing, few fast retries, and a prefix of its own
// ("t<n>"), so stores made from one server do not see each other's objects.
func (s *Server) Config() s3.Config {
	return s3.Config{
		Endpoint:    s.Endpoint,
		Region:      Region,
		Bucket:      Bucket,
		Prefix:      fmt.Sprintf("t%d", s.prefixes.Add(1)),
		PathStyle:   true,
		AccessKey:   AccessKey,
		SecretKey:   SecretKey,
		MaxAttempts: 3,
		MaxBackoff:  100 * time.Millisecond,
	}
}

// Client returns a plain SDK client for the server, for baselines and for
// looking behind a Store's back.
func (s *Server) Client() *s3api.Client {
	return s3api.New(s3api.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		Region:       Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// capped is a buffer that keeps the last max bytes written.
type capped struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.buf.Len() > c.max {
		c.buf.Next(c.buf.Len() - c.max)
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}
