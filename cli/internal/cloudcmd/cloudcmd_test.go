package cloudcmd_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/spatehq/spate/cli/internal/cloudcmd"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/profilecmd"
	"github.com/spatehq/spate/cli/internal/topiccmd"
	"github.com/spatehq/spate/client/cloud/cloudtest"
	"github.com/spatehq/spate/client/profile"
)

// env is a config file and a fake control plane.
type env struct {
	t      *testing.T
	cp     *cloudtest.Server
	config string
	caFile string
}

func newEnv(t *testing.T, cfg cloudtest.Config) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, cp: cloudtest.Start(t, cfg), config: filepath.Join(dir, "config.toml"), caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(e.caFile, e.cp.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run runs `spate ARGS` in-process, as root.Main would, with the commands
// this package needs (the full tree pulls in the servers).
func (e *env) run(stdin string, args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{IO: &cmdutil.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut}, ConfigPath: e.config}
	root := &cobra.Command{Use: "spate", SilenceUsage: true, SilenceErrors: true}
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.PersistentFlags().StringVar(&f.Profile, "profile", "", "")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	root.AddCommand(cloudcmd.NewCmdCloud(f), profilecmd.NewCmdProfile(f), topiccmd.NewCmdTopic(f))
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	if err != nil {
		errOut.WriteString(cmdutil.Explain(err, f.Hint()))
	}
	return out.String(), errOut.String(), cmdutil.ExitCode(err)
}

// must runs a command that must succeed.
func (e *env) must(stdin string, args ...string) (stdout, stderr string) {
	e.t.Helper()
	out, errOut, code := e.run(stdin, args...)
	if code != 0 {
		e.t.Fatalf("spate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out, errOut
}

// fail runs a command that must exit with code and say want on stderr.
func (e *env) fail(code int, want string, args ...string) {
	e.t.Helper()
	out, errOut, got := e.run("", args...)
	if got != code || !strings.Contains(errOut, want) {
		e.t.Fatalf("spate %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, want, out, errOut)
	}
}

func (e *env) loadConfig() *profile.Config {
	e.t.Helper()
	cfg, err := profile.Load(e.config)
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// loginWithKey signs in with an API key from a file.
func (e *env) loginWithKey() {
	e.t.Helper()
	keyFile := filepath.Join(e.t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(e.cp.AddAPIKey("spk_abcdefghijkl_s3cret")+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.must("", "cloud", "login", "--control-plane", e.cp.URL, "--ca-file", e.caFile, "--api-key-file", keyFile)
}

func TestLoginWithTheDeviceFlow(t *testing.T) {
	e := newEnv(t, cloudtest.Config{Interval: 1})
	out, errOut := e.must("", "cloud", "login", "--control-plane", e.cp.URL+"/", "--ca-file", e.caFile)
	for _, want := range []string{cloudtest.UserCode, e.cp.URL + "/device", "user_code=" + cloudtest.UserCode, "Waiting for approval"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if want := "Logged in to " + e.cp.URL + " as ada@example.com (owner of tenant acme)."; !strings.Contains(out, want) {
		t.Errorf("stdout %q, want %q", out, want)
	}
	st, err := os.Stat(e.config)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st.Mode(), err)
	}
	l, err := e.loadConfig().Login(e.cp.URL)
	if err != nil {
		t.Fatal(err)
	}
	if l.Tenant != cloudtest.TenantID || l.Principal != cloudtest.UserEmail || l.RefreshToken == "" || l.AccessToken == "" ||
		string(l.ControlPlaneCA) != string(e.cp.CAPEM) || l.AccessTokenExpires.IsZero() {
		t.Fatalf("login %+v", l)
	}
	out, _ = e.must("", "cloud", "whoami")
	for _, want := range []string{"ada@example.com (user u-ada)", "acme (t-testtenant)", "owner", e.cp.URL} {
		if !strings.Contains(out, want) {
			t.Errorf("whoami lacks %q:\n%s", want, out)
		}
	}

	// An access token near its expiry is refreshed, and the rotated
	// refresh token saved for the next command.
	cfg := e.loadConfig()
	l.AccessTokenExpires = time.Now().Add(30 * time.Second)
	cfg.SetLogin(e.cp.URL, l)
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	e.must("", "cloud", "whoami")
	e.must("", "cloud", "cluster", "list")
	if n := e.cp.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	l2, _ := e.loadConfig().Login(e.cp.URL)
	if l2.RefreshToken == l.RefreshToken || l2.AccessToken == l.AccessToken || time.Until(l2.AccessTokenExpires) < 10*time.Minute {
		t.Fatalf("refreshed login not saved: %+v", l2)
	}
}

func TestLoginErrors(t *testing.T) {
	e := newEnv(t, cloudtest.Config{DeviceAnswers: []string{"access_denied"}, Interval: 1})
	e.fail(cmdutil.ExitAuth, "sign-in was denied", "cloud", "login", "--control-plane", e.cp.URL, "--ca-file", e.caFile)
	e.fail(cmdutil.ExitUsage, "--control-plane URL is required", "cloud", "login")
	e.fail(cmdutil.ExitUsage, "exclude each other", "cloud", "login", "--control-plane", e.cp.URL, "--api-key-file", "x", "--api-key-stdin")
	_, errOut, code := e.run("spk_nope_nope\n", "cloud", "login", "--control-plane", e.cp.URL, "--ca-file", e.caFile, "--api-key-stdin")
	if code != cmdutil.ExitAuth || !strings.Contains(errOut, "API key was refused") {
		t.Fatalf("bad key: exit %d: %s", code, errOut)
	}
	// Without the CA, the control plane's certificate is not trusted.
	_, errOut, code = e.run("spk_x_y", "cloud", "login", "--control-plane", e.cp.URL, "--api-key-stdin")
	if code != cmdutil.ExitError || !strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "--ca-file") {
		t.Fatalf("untrusted control plane: exit %d: %s", code, errOut)
	}
	e.fail(cmdutil.ExitAuth, "not logged in", "cloud", "cluster", "list")
}

func TestLoginWithAnAPIKeyFromStdin(t *testing.T) {
	e := newEnv(t, cloudtest.Config{})
	key := e.cp.AddAPIKey("spk_abcdefghijkl_fromstdin")
	out, _ := e.must(key+"\n", "cloud", "login", "--control-plane", e.cp.URL, "--ca-file", e.caFile, "--api-key-stdin")
	if !strings.Contains(out, "Logged in") {
		t.Fatal(out)
	}
}

func TestClusterLifecycle(t *testing.T) {
	e := newEnv(t, cloudtest.Config{ReadyAfter: 2})
	e.loginWithKey()
	out, errOut := e.must("", "cloud", "cluster", "create", "orders", "--spus", "2", "--poll-interval", "10ms")
	if !strings.Contains(out, `cluster "orders" is ready (2 SPUs)`) || !strings.Contains(errOut, "provisioning (starting SPUs)") {
		t.Fatalf("create:\nstdout: %s\nstderr: %s", out, errOut)
	}
	e.fail(cmdutil.ExitError, "failed: no capacity for 3 SPUs", "cloud", "cluster", "create", "broken", "--poll-interval", "10ms")
	out, _ = e.must("", "cloud", "cluster", "create", "later", "--no-wait")
	if !strings.Contains(out, "provisioning") {
		t.Fatal(out)
	}
	e.fail(cmdutil.ExitExists, "exists", "cloud", "cluster", "create", "orders")
	e.fail(cmdutil.ExitUsage, "--spus must be at least 1", "cloud", "cluster", "create", "x", "--spus", "0")

	out, _ = e.must("", "cloud", "cluster", "list")
	if !strings.Contains(out, "orders") || !strings.Contains(out, "ready") || !strings.Contains(out, "failed") {
		t.Fatalf("list:\n%s", out)
	}
	out, _ = e.must("", "cloud", "cluster", "describe", "orders", "-o", "json")
	if !strings.Contains(out, `"status": "ready"`) || !strings.Contains(out, `"spu_endpoints"`) {
		t.Fatalf("describe:\n%s", out)
	}
	e.fail(cmdutil.ExitNotFound, "spate cloud cluster list", "cloud", "cluster", "describe", "nope")
	e.fail(cmdutil.ExitUsage, "pass --yes", "cloud", "cluster", "delete", "later")
	e.must("", "cloud", "cluster", "delete", "later", "--yes")
	e.fail(cmdutil.ExitNotFound, "No cluster \"later\"", "cloud", "cluster", "delete", "later", "--yes")
}

func TestClusterUseRenewAndLogout(t *testing.T) {
	// auth/ca backdates certificates by a minute: a 10 s certificate has
	// less than a third of its life left at once.
	e := newEnv(t, cloudtest.Config{CertValidity: 10 * time.Second})
	e.loginWithKey()
	e.must("", "cloud", "cluster", "create", "orders", "--poll-interval", "10ms")
	out, _ := e.must("", "cloud", "cluster", "use", "orders")
	if !strings.Contains(out, `switched to profile "orders"`) {
		t.Fatal(out)
	}
	cfg := e.loadConfig()
	name, p, err := cfg.Current()
	if err != nil || name != "orders" || !p.HasTLS() || p.ClusterCA == "" || p.RootCA == "" || p.ControlPlane != e.cp.URL || len(p.SPUs) != 1 {
		t.Fatalf("current profile %q %+v %v", name, p, err)
	}
	out, _ = e.must("", "profile", "list")
	if !strings.Contains(out, "orders") || !strings.Contains(out, e.cp.URL) {
		t.Fatalf("profile list:\n%s", out)
	}

	// A data command renews the certificate first and saves it. (The fake
	// has no TopicService, so the command itself then fails.)
	issued := e.cp.Issued()
	tout, terr, tcode := e.run("", "topic", "list")
	t.Logf("topic list: %d %s %s", tcode, tout, terr)
	if e.cp.Issued() != issued+1 {
		t.Fatal("topic list did not renew the certificate")
	}
	if _, p2, _ := e.loadConfig().Current(); p2.ClientCert == p.ClientCert {
		t.Fatal("renewed certificate not saved")
	}

	// With the login revoked, the renewal says to log in again.
	e.cp.RevokeAll()
	e.cp.ExpireAccessTokens()
	cfg = e.loadConfig()
	l, _ := cfg.Login(e.cp.URL)
	l.AccessTokenExpires = time.Now().Add(-time.Minute)
	cfg.SetLogin(e.cp.URL, l)
	if err := cfg.Save(); err != nil {
		t.Fatal(err)
	}
	_, terr, _ = e.run("", "topic", "list")
	t.Log(terr)
	e.fail(cmdutil.ExitAuth, "spate cloud login", "topic", "list")

	// A profile of another cluster name is not overwritten by accident.
	cfg = e.loadConfig()
	_ = cfg.Set("clicks", profile.Profile{ControlPlane: "http://elsewhere"})
	_ = cfg.Save()
	e.loginWithKey()
	e.must("", "cloud", "cluster", "create", "clicks", "--poll-interval", "10ms")
	e.fail(cmdutil.ExitUsage, "--profile", "cloud", "cluster", "use", "clicks")
	e.must("", "cloud", "cluster", "use", "clicks", "--profile", "clicks-cloud")

	out, _ = e.must("", "cloud", "logout")
	if !strings.Contains(out, "Logged out of "+e.cp.URL) || !strings.Contains(out, "clicks-cloud, orders") {
		t.Fatalf("logout:\n%s", out)
	}
	// Logging in again revoked the replaced login; logging out the last.
	if len(e.cp.Revoked()) != 2 {
		t.Fatalf("revoked %v", e.cp.Revoked())
	}
	cfg = e.loadConfig()
	if _, err := cfg.Login(e.cp.URL); err == nil {
		t.Fatal("login kept after logout")
	}
	if p, _ := cfg.Get("orders"); p.ClientKey != "" || p.Cluster != "orders" {
		t.Fatalf("profile after logout: %+v", p)
	}
	_, terr, _ = e.run("", "topic", "list")
	t.Log(terr)
	e.fail(cmdutil.ExitAuth, "spate cloud login", "topic", "list")
}

func TestMembersServiceAccountsAndKeys(t *testing.T) {
	e := newEnv(t, cloudtest.Config{})
	e.loginWithKey()
	out, errOut := e.must("", "cloud", "member", "add", "bob@example.com", "--role", "member")
	if strings.TrimSpace(out) != "generated-password-1" || !strings.Contains(errOut, "not shown again") {
		t.Fatalf("member add:\nstdout: %s\nstderr: %s", out, errOut)
	}
	e.fail(cmdutil.ExitUsage, "use owner, admin or member", "cloud", "member", "add", "c@example.com", "--role", "boss")
	e.fail(cmdutil.ExitUsage, "--role is required", "cloud", "member", "add", "c@example.com")
	out, _ = e.must("", "cloud", "member", "list")
	if !strings.Contains(out, "bob@example.com") || !strings.Contains(out, "ada@example.com") {
		t.Fatal(out)
	}
	e.must("", "cloud", "member", "remove", "bob@example.com")
	e.fail(cmdutil.ExitNotFound, "spate cloud member list", "cloud", "member", "remove", "bob@example.com")

	out, _ = e.must("", "cloud", "service-account", "create", "ingest", "--grant", "orders*:produce,consume", "--grant", "audit:admin")
	if !strings.Contains(out, "orders*:produce,consume audit:admin") {
		t.Fatal(out)
	}
	e.fail(cmdutil.ExitUsage, "use produce, consume or admin", "cloud", "service-account", "create", "x", "--grant", "orders:write")
	e.fail(cmdutil.ExitUsage, "TOPIC:OPS", "cloud", "service-account", "create", "x", "--grant", "orders")
	e.fail(cmdutil.ExitUsage, "at least one --grant", "cloud", "service-account", "create", "x")
	e.must("", "cloud", "sa", "update", "ingest", "--grant", "*:consume")
	out, _ = e.must("", "cloud", "service-account", "list", "-o", "json")
	if !strings.Contains(out, `"*:consume"`) {
		t.Fatal(out)
	}

	out, errOut = e.must("", "cloud", "api-key", "create", "--service-account", "ingest", "--ttl", "30d", "--description", "ingest job")
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "spk_") || strings.Contains(out, "Warning") || !strings.Contains(errOut, "only time the secret is shown") {
		t.Fatalf("api-key create:\nstdout: %s\nstderr: %s", out, errOut)
	}
	out, _ = e.must("", "cloud", "api-key", "list")
	if !strings.Contains(out, "service-account:ingest") || strings.Contains(out, secret) {
		t.Fatalf("api-key list:\n%s", out)
	}
	id := strings.Split(secret, "_")[1]
	e.must("", "cloud", "api-key", "revoke", id)
	e.fail(cmdutil.ExitNotFound, "spate cloud api-key list", "cloud", "api-key", "revoke", "nope")
	e.fail(cmdutil.ExitNotFound, "spate cloud service-account list", "cloud", "api-key", "create", "--service-account", "ghost")
	e.must("", "cloud", "service-account", "delete", "ingest")
}
