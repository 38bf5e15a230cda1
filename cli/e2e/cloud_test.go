// Package e2e tests Spate as a person uses it: the real spate binary, a
// real control plane process with its SPU processes, and the sign-in page
// in a real headless Chromium.
package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"

	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/chromedp"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu/sputest"
	"github.com/spatehq/spate/internal/browser"
)

// TestCloudAsAPersonUsesIt signs in through the device page in Chromium,
// creates a cluster, downloads its profile, produces and consumes over
// mTLS, creates a second cluster, switches to it and back.
func TestCloudAsAPersonUsesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane, SPUs and Chromium")
	}
	bin := sputest.Binary(t)
	dir := t.TempDir()
	env := append(os.Environ(), "SPATE_CONFIG="+filepath.Join(dir, "config.toml"), "NO_COLOR=1")
	cp := startControlPlane(t, bin, filepath.Join(dir, "cp"))

	// The operator opens the service to a new tenant.
	email, password := "ada@example.com", "correct horse battery staple"
	tenants := controlplanev1connect.NewTenantServiceClient(cp.hc, cp.url)
	req := connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: "analytical-engines", OwnerEmail: email, OwnerPassword: password})
	req.Header().Set("Authorization", "Bearer "+cp.operatorKey)
	if _, err := tenants.CreateTenant(context.Background(), req); err != nil {
		t.Fatalf("create tenant: %v", err)
	}

	// Ada signs in: the CLI shows a URL with a code; she approves it in
	// the browser.
	login := exec.Command(bin, "cloud", "login", "--control-plane", cp.url, "--ca-file", cp.caFile)
	login.Env = env
	stderr, err := login.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	login.Stdout = &out
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { login.Process.Kill() })
	page := make(chan string, 1)
	var shown strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`https://\S+/device\?user_code=[A-Z-]+`)
		for sc.Scan() {
			shown.WriteString(sc.Text() + "\n")
			if u := re.FindString(sc.Text()); u != "" {
				select {
				case page <- u:
				default:
				}
			}
		}
	}()
	var verificationURL string
	select {
	case verificationURL = <-page:
	case <-time.After(30 * time.Second):
		t.Fatalf("spate cloud login showed no verification URL; it printed:\n%s", shown.String())
	}
	approveInBrowser(t, cp, verificationURL, email, password)
	if err := waitCmd(login, 60*time.Second); err != nil {
		t.Fatalf("spate cloud login: %v\n%s%s", err, out.String(), shown.String())
	}
	whoami := run(t, env, bin, "cloud", "whoami")
	if !strings.Contains(whoami, email) {
		t.Fatalf("whoami after login = %q, want it to name %s", whoami, email)
	}

	// A cluster, its profile, and records over mTLS.
	start := time.Now()
	run(t, env, bin, "cloud", "cluster", "create", "one", "--spus", "1")
	t.Logf("cluster create to ready: %v", time.Since(start).Round(time.Millisecond))
	run(t, env, bin, "cloud", "cluster", "use", "one", "--profile", "one")
	run(t, env, bin, "topic", "create", "events")
	runIn(t, env, "first\nsecond\n", bin, "produce", "events")
	if got := run(t, env, bin, "consume", "events", "-B", "-d"); got != "first\nsecond\n" {
		t.Fatalf("consume from cluster one = %q", got)
	}

	// A second cluster is a different world.
	run(t, env, bin, "cloud", "cluster", "create", "two", "--spus", "1")
	run(t, env, bin, "cloud", "cluster", "use", "two", "--profile", "two")
	if got := run(t, env, bin, "topic", "list"); strings.Contains(got, "events") {
		t.Fatalf("cluster two lists cluster one's topic:\n%s", got)
	}
	run(t, env, bin, "topic", "create", "events")
	runIn(t, env, "other\n", bin, "produce", "events")
	if got := run(t, env, bin, "consume", "events", "-B", "-d"); got != "other\n" {
		t.Fatalf("consume from cluster two = %q", got)
	}

	// And back.
	run(t, env, bin, "profile", "switch", "one")
	if got := run(t, env, bin, "consume", "events", "-B", "-d"); got != "first\nsecond\n" {
		t.Fatalf("consume from cluster one after switching back = %q", got)
	}
	list := run(t, env, bin, "cloud", "cluster", "list")
	for _, name := range []string{"one", "two"} {
		if !strings.Contains(list, name) {
			t.Fatalf("cluster list lacks %q:\n%s", name, list)
		}
	}
}

// controlPlane is a `spate control-plane serve` process.
type controlPlane struct {
	url, caFile, operatorKey string
	hc                       interface {
		connect.HTTPClient
	}
	leaf *x509.Certificate
}

func startControlPlane(t *testing.T, bin, dir string) *controlPlane {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "control-plane.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "control-plane", "serve", "--addr", addr, "--data-dir", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		if waitCmd(cmd, 20*time.Second) != nil {
			cmd.Process.Kill()
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("control plane log:\n%s", b)
		}
	})
	cp := &controlPlane{url: "https://" + addr, caFile: filepath.Join(dir, server.RootCAFile)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		caPEM, err1 := os.ReadFile(cp.caFile)
		key, err2 := os.ReadFile(filepath.Join(dir, "operator.key"))
		if err1 == nil && err2 == nil {
			hc, err := cloud.NewHTTPClient(caPEM)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool}); err == nil {
				cp.leaf = conn.ConnectionState().PeerCertificates[0]
				conn.Close()
				cp.hc, cp.operatorKey = hc, strings.TrimSpace(string(key))
				return cp
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the control plane did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// approveInBrowser signs in on the device page and approves the code.
// Chromium trusts the control plane's certificate by its public key pin,
// as a browser with the root CA installed would trust it.
func approveInBrowser(t *testing.T, cp *controlPlane, url, email, password string) {
	t.Helper()
	spki := sha256.Sum256(cp.leaf.RawSubjectPublicKeyInfo)
	ctx := browser.NewWithOptions(t, chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])))
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("approve")),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.ID("result")),
	); err != nil {
		t.Fatalf("approve in the browser: %v", err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatalf("approve in the browser: %v", err)
	}
	if !strings.Contains(strings.ToLower(result), "approved") {
		t.Fatalf("the page says %q after approving", result)
	}
}

func run(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	return runIn(t, env, "", bin, args...)
}

func runIn(t *testing.T, env []string, stdin, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := waitStarted(cmd, 120*time.Second); err != nil {
		t.Fatalf("spate %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func waitStarted(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	return waitCmd(cmd, d)
}

func waitCmd(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not finish within %v", d)
	}
}
