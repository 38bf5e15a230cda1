// Package browser starts headless Chromium for tests that drive a real web
// page with chromedp, such as the control plane's device sign-in page.
//
// Tests that need a browser call New; it skips the test when Chromium is
// missing, except on CI (CI=true), where a missing browser is a failure:
// run infra/scripts/install-chromium.sh there.
//
// The browser runs headless, with the sandbox off when the test runs as
// root (Chromium refuses to start otherwise). It trusts only the system's
// certificate authorities: certificate errors are never ignored, so tests
// serve plain HTTP on 127.0.0.1, or pass their own flags to NewWithOptions.
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvPath is the environment variable that names the Chromium binary,
// looked at before the usual places.
const EnvPath = "SPATE_CHROMIUM"

// Locations are where Path looks for Chromium after $SPATE_CHROMIUM.
var Locations = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"}

// ErrNotFound is returned by Path when no Chromium binary is found.
var ErrNotFound = errors.New("browser: chromium not found")

// startTimeout bounds the start of the browser: long enough for a busy
// machine, short enough that a hung start fails the test with a message.
const startTimeout = 2 * time.Minute

// Path returns the Chromium binary to run: $SPATE_CHROMIUM when set (an
// error if it is not an executable file), otherwise the first executable
// file of Locations. It returns an error wrapping ErrNotFound when there is
// none.
func Path() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		if !executable(p) {
			return "", fmt.Errorf("%w: %s=%s is not an executable file", ErrNotFound, EnvPath, p)
		}
		return p, nil
	}
	for _, p := range Locations {
		if executable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: looked at $%s and %v", ErrNotFound, EnvPath, Locations)
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// New starts headless Chromium and returns a chromedp context of its first
// tab, ready for chromedp.Run and chromedp.Do. The browser is stopped when
// the test ends. New skips the test when Chromium is missing, unless the
// environment variable CI is "true": then it fails the test.
func New(t testing.TB) context.Context {
	t.Helper()
	return NewWithOptions(t)
}

// NewWithOptions is New with extra options for the browser process, added
// after the defaults, e.g. chromedp.Flag("lang", "de") or
// chromedp.WindowSize(1280, 800).
func NewWithOptions(t testing.TB, opts ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path, err := Path()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v: run infra/scripts/install-chromium.sh", err)
		}
		t.Skipf("%v: run infra/scripts/install-chromium.sh to run this test", err)
	}

	out := &syncBuffer{}
	all := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	all = append(all,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.CombinedOutput(out),
	)
	if os.Geteuid() == 0 {
		all = append(all, chromedp.NoSandbox)
	}
	all = append(all, opts...)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), all...)
	// The browser's goroutines may log until it is stopped; the test's log
	// takes no lines once it has ended.
	var logMu sync.Mutex // guards stopped
	stopped := false
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		if !stopped {
			t.Logf("browser: "+format, args...)
		}
	}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		defer func() {
			logMu.Lock()
			stopped = true
			logMu.Unlock()
		}()
		// Close the browser gracefully, then free the allocator (which
		// waits for the process and removes its temporary files).
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("browser: close: %v", err)
		}
		ccancel()
		cancel()
		cancelAlloc()
		if t.Failed() && out.Len() > 0 {
			t.Logf("browser output:\n%s", out.String())
		}
	})

	// Start the browser now, so a broken installation fails here with its
	// output rather than in the test's first action, and so the browser's
	// lifetime is not bound to a timeout the test puts on an action.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("browser: start %s: %v\n%s", path, err, out.String())
		}
	case <-time.After(startTimeout):
		t.Fatalf("browser: %s did not start within %v\n%s", path, startTimeout, out.String())
	}
	return ctx
}

// Version returns the output of `chromium --version`, e.g. "Chromium
// 131.0.6778.85 built on Debian", for logs.
func Version() (string, error) {
	path, err := Path()
	if err != nil {
		return "", err
	}
	b, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("browser: %s --version: %w", path, err)
	}
	return string(bytes.TrimSpace(b)), nil
}

// syncBuffer collects the browser's output, written by the allocator's
// goroutine and read by the test's.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
