// Package sputest starts real SPUs for tests: in-process on a loopback
// port, or as a `spate spu serve` process that a test can kill, without
// TLS or with it. For TLS it has a small certificate authority shaped like
// Spate's (a root, an intermediate per cluster, leaves with identity URI
// SANs): NewRootCA, CA.NewIntermediate, SPUFiles, CA.ClientTLS.
package sputest

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/internal/h2c"
)

// SPU is an in-process SPU serving on 127.0.0.1.
type SPU struct {
	// URL is the SPU's base URL, such as http://127.0.0.1:41234, or
	// https:// when cfg.TLS is set.
	URL string
	// Config is what the SPU was started with (DataDir filled in).
	Config spu.Config

	cancel context.CancelFunc
	done   chan error
}

// Start starts an SPU with cfg (a temporary data dir when cfg.DataDir is
// empty) and stops it when the test ends. With cfg.TLS set (see SPUFiles)
// it serves HTTPS. Logs go to stderr when SPATE_TEST_LOG is set.
func Start(t testing.TB, cfg spu.Config) *SPU {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SPATE_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := spu.New(cfg, logger)
	if err != nil {
		t.Fatalf("start spu: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "http://"
	if cfg.TLS.Enabled() {
		scheme = "https://"
	}
	s := &SPU{URL: scheme + l.Addr().String(), Config: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop stops the SPU and waits for it; it is safe to call twice.
func (s *SPU) Stop(t testing.TB) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("spu stopped with: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("spu did not stop within 30s")
	}
}

// HTTPClient returns an HTTP client that speaks HTTP/2 without TLS (h2c),
// which the SPU's streaming RPCs need.
func HTTPClient() *http.Client {
	return h2c.NewClient()
}

// TLSClient returns an HTTP/2 client over TLS with tc (such as
// CA.ClientTLS), with the settings SPUs use between themselves.
func TLSClient(tc *tls.Config) *http.Client {
	return h2c.NewTLSClient(tc)
}
