package localcmd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/cli/internal/cmdutil"
	"github.com/spatehq/spate/cli/internal/format"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/server"
)

// UpOptions are the flags of `spate local up`.
type UpOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	SPUs    int
	DataDir string
	Port    int
	Timeout time.Duration
	// Tiering, LocalRetentionTime and LocalRetentionBytes are the
	// defaults of new topics (see `spate control-plane serve`); zero
	// retention values leave the SPUs' defaults.
	Tiering             bool
	LocalRetentionTime  time.Duration
	LocalRetentionBytes int64
	// Binary is the spate executable to run; default this one.
	Binary string
}

func newCmdUp(f *cmdutil.Factory) *cobra.Command {
	opts := &UpOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start a control plane and a cluster in the background, and switch to it",
		Long: `Up starts, in the background, a control plane with an embedded etcd, serving
HTTPS with authentication on, as the service does. With the operator's key
it creates a development tenant "dev" whose owner is dev@localhost (the
password for the /device sign-in page is in DATA-DIR/dev-password), logs in
as that owner, creates a cluster "local" of --spus SPU processes, waits until
it is ready, then downloads its profile (endpoints, CAs, a client
certificate) into a profile named "local" and makes it current. Produce,
consume and topic commands then speak mTLS to the cluster.

The control plane restarts an SPU that dies, and stops the SPUs when it
stops. Logs: DATA-DIR/control-plane.log and DATA-DIR/clusters/<id>/spu-N.log.
Running up again while it runs only says so; running it again after
` + "`spate local down`" + ` starts the same tenant and cluster with their data.

Tiered storage is on for new topics by default (--tiering=false turns it
off): closed segments go up to the cluster's object store, a folder
DATA-DIR/tier/<cluster-id>, and consumes that start below what the SPUs keep
on disk read them back from there. --local-retention-time and
--local-retention-bytes bound what the SPUs keep (default: everything the
topic retains, so the folder is a second copy). A topic's own settings
(` + "`spate topic create --tiering=false`" + `) win over these defaults, which
apply from the next up after a down.`,
		Example: `  spate local up
  spate local up --spus 3
  spate local up --data-dir ./spate-data --port 9100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return upRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.SPUs, "spus", 1, "number of SPU processes")
	fl.StringVar(&opts.DataDir, "data-dir", defaultDataDir(), "directory of the data and logs")
	fl.IntVar(&opts.Port, "port", DefaultPort, "port of the control plane on 127.0.0.1")
	fl.DurationVar(&opts.Timeout, "timeout", 60*time.Second, "how long to wait for the cluster to be ready")
	fl.BoolVar(&opts.Tiering, "tiering", true, "turn tiering on for new topics, with the object store in DATA-DIR/tier")
	fl.Var(&format.DurationValue{D: &opts.LocalRetentionTime}, "local-retention-time", "default for tiered topics: keep uploaded segments on the SPU's disk this long: 7d, 36h; -1 for as long as the whole log (default: the SPUs')")
	fl.Int64Var(&opts.LocalRetentionBytes, "local-retention-bytes", 0, "default for tiered topics: keep at most this many bytes per partition on the SPU's disk; -1 for no limit (default: the SPUs')")
	return cmd
}

func upRun(ctx context.Context, opts *UpOptions) error {
	if opts.SPUs < 1 || opts.SPUs > 100 {
		return cmdutil.Usagef("--spus %d: use 1 to 100", opts.SPUs)
	}
	if opts.Port < 1 || opts.Port > 65535 {
		return cmdutil.Usagef("--port %d: use 1 to 65535", opts.Port)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	in, err := readInstall(opts.DataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", opts.DataDir, err)
	}
	if in.alive() {
		if healthy(ctx, in.dir, in.url) {
			fmt.Fprintf(opts.IO.Out, "Spate is already running from %s: control plane %s (pid %d).\n", in.dir, in.url, in.pid)
			fmt.Fprintf(opts.IO.Out, "See it with `spate local status`; stop it with `spate local down`.\n")
			return nil
		}
		return fmt.Errorf("a control plane from %s (pid %d) runs but does not answer at %s; see %s, or stop it with `spate local down`",
			in.dir, in.pid, in.url, filepath.Join(in.dir, logFile))
	}
	clearInstall(in.dir) // stale files of a control plane that died

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port))
	if l, err := net.Listen("tcp", addr); err != nil {
		return fmt.Errorf("port %d on 127.0.0.1 is taken (%v): stop what uses it, or choose another with --port", opts.Port, err)
	} else {
		l.Close()
	}
	url := "https://" + addr
	if err := os.MkdirAll(in.dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	pid, exited, err := startControlPlane(opts, in.dir, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "Starting a control plane at %s (data and logs in %s)\n", url, in.dir)
	fail := func(err error) error {
		_ = terminate(pid)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = kill(pid)
		}
		clearInstall(in.dir)
		return err
	}
	hc, err := waitHealthy(ctx, opts, in.dir, url, exited)
	if err != nil {
		return fail(err)
	}
	p, login, clusterID, err := setUpDev(ctx, opts, in.dir, url, hc)
	if err != nil {
		return fail(err)
	}
	elapsed := time.Since(start)

	var path string
	err = opts.Factory.UpdateConfig(ctx, func(cfg *profile.Config) error {
		path = cfg.Path()
		cfg.SetLogin(url, login)
		if err := cfg.Set(ProfileName, p); err != nil {
			return err
		}
		return cfg.Switch(ProfileName)
	})
	if err != nil {
		return &cmdutil.ConfigError{Err: err}
	}
	fmt.Fprintf(opts.IO.Out, "Spate is up in %.1fs: control plane %s (pid %d), cluster %q (%s) with %d SPU(s) ready.\n", elapsed.Seconds(), url, pid, devCluster, clusterID, len(p.SPUs))
	fmt.Fprintf(opts.IO.Out, "Signed in as %s of tenant %q; profile %q is now current (%s).\n", devEmail, devTenant, ProfileName, path)
	fmt.Fprintf(opts.IO.Out, "Try: spate topic create greetings --partitions 3 && echo hello | spate produce greetings && spate consume greetings -B\n")
	fmt.Fprintf(opts.IO.Out, "Stop it with `spate local down`.\n")
	return nil
}

// The development tenant, person and cluster that up creates.
const (
	devTenant  = "dev"
	devEmail   = "dev@localhost"
	devCluster = "local"
	// Files in the data directory, mode 0600.
	devPasswordFile = "dev-password"
	devAPIKeyFile   = "dev-api-key"
)

// waitHealthy waits until the control plane answers /healthz over TLS,
// trusting the root CA it writes into the data directory, and returns an
// HTTP client for it.
func waitHealthy(ctx context.Context, opts *UpOptions, dir, url string, exited <-chan struct{}) (*http.Client, error) {
	deadline := time.Now().Add(opts.Timeout)
	logPath := filepath.Join(dir, logFile)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("the control plane exited at start; its log %s ends with:\n%s", logPath, tail(logPath, 15))
		case <-ctx.Done():
			return nil, ctx.Err()
		default:
		}
		if caPEM, err := os.ReadFile(filepath.Join(dir, server.RootCAFile)); err == nil {
			if hc, err := cloud.NewHTTPClient(caPEM); err == nil && healthyWith(ctx, hc, url) {
				return hc, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the control plane did not answer within %v, so it was stopped; see %s", opts.Timeout, logPath)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setUpDev makes sure the development tenant and cluster exist, logs in
// as the tenant's owner and returns the cluster's profile and the login.
func setUpDev(ctx context.Context, opts *UpOptions, dir, url string, hc *http.Client) (profile.Profile, profile.Login, string, error) {
	fail := func(err error) (profile.Profile, profile.Login, string, error) {
		return profile.Profile{}, profile.Login{}, "", err
	}
	apiKey, err := devKey(ctx, opts, dir, url, hc)
	if err != nil {
		return fail(err)
	}
	tokens, err := cloud.APIKeyLogin(ctx, url, hc, apiKey)
	if err != nil {
		return fail(fmt.Errorf("log in as %s: %w", devEmail, err))
	}
	sess := cloud.NewSession(url, hc, tokens)
	clusters := sess.Clusters()
	_, err = clusters.CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: devCluster, Spus: int32(opts.SPUs)}))
	if err != nil && connect.CodeOf(err) != connect.CodeAlreadyExists {
		return fail(fmt.Errorf("create cluster %q: %w", devCluster, err))
	}
	c, err := waitCluster(ctx, opts, sess)
	if err != nil {
		return fail(err)
	}
	if int(c.Spus) != opts.SPUs {
		fmt.Fprintf(opts.IO.ErrOut, "  cluster %q exists already with %d SPU(s); --spus %d is ignored (delete %s to start afresh)\n", devCluster, c.Spus, opts.SPUs, dir)
	}
	p, err := cloud.UseCluster(ctx, sess, devCluster)
	if err != nil {
		return fail(fmt.Errorf("download the profile of cluster %q: %w", devCluster, err))
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, server.RootCAFile))
	t := sess.Tokens()
	login := profile.Login{ControlPlaneCA: profile.PEM(caPEM), Tenant: p.Tenant, Principal: devEmail, AccessToken: t.AccessToken, AccessTokenExpires: t.Expires, RefreshToken: t.RefreshToken}
	return p, login, c.Id, nil
}

// devKey returns the development owner's API key, creating the tenant with
// the operator's key the first time.
func devKey(ctx context.Context, opts *UpOptions, dir, url string, hc *http.Client) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, devAPIKeyFile)); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	op, err := os.ReadFile(filepath.Join(dir, operatorKeyFile))
	if err != nil {
		return "", fmt.Errorf("read the operator key: %w", err)
	}
	tenants := controlplanev1connect.NewTenantServiceClient(hc, url)
	req := connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: devTenant, OwnerEmail: devEmail, OwnerApiKey: true})
	req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(op)))
	resp, err := tenants.CreateTenant(ctx, req)
	if err != nil {
		return "", fmt.Errorf("create the development tenant: %w", err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "  created tenant %q with owner %s (password in %s)\n", devTenant, devEmail, filepath.Join(dir, devPasswordFile))
	if err := os.WriteFile(filepath.Join(dir, devPasswordFile), []byte(resp.Msg.OwnerPassword+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, devAPIKeyFile), []byte(resp.Msg.OwnerApiKey+"\n"), 0o600); err != nil {
		return "", err
	}
	return resp.Msg.OwnerApiKey, nil
}

// waitCluster waits until the development cluster is ready, printing its
// progress.
func waitCluster(ctx context.Context, opts *UpOptions, sess *cloud.Session) (*controlplanev1.Cluster, error) {
	deadline := time.Now().Add(opts.Timeout)
	last := ""
	for {
		resp, err := sess.Clusters().GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: devCluster}))
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", devCluster, err)
		}
		c := resp.Msg.Cluster
		state := strings.ToLower(strings.TrimPrefix(c.Status.String(), "CLUSTER_STATUS_"))
		if state != last {
			fmt.Fprintf(opts.IO.ErrOut, "  cluster %q: %s\n", devCluster, state)
			last = state
		}
		switch c.Status {
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_READY:
			return c, nil
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED:
			return nil, fmt.Errorf("cluster %q failed: %s; see the SPU logs under %s", devCluster, c.Reason, filepath.Join(opts.DataDir, "clusters", c.Id))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster %q was not ready after %v (%s), so the control plane was stopped; see the SPU logs under %s", devCluster, opts.Timeout, state, filepath.Join(opts.DataDir, "clusters", c.Id))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// startControlPlane starts `spate control-plane serve` in a new session,
// writes the pid and URL files, and returns the pid and a channel closed
// when the process exits (it is reaped, so that a test running up in
// process leaves no zombie).
func startControlPlane(opts *UpOptions, dir, addr string) (int, <-chan struct{}, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return 0, nil, fmt.Errorf("find the spate binary: %w", err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir, logFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- spate local up, %s\n", time.Now().Format(time.RFC3339))
	cmd := exec.Command(bin, serveArgs(opts, dir, addr)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	cmd.SysProcAttr = detached()
	if err := cmd.Start(); err != nil {
		return 0, nil, fmt.Errorf("start the control plane: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, urlFile), []byte("https://"+addr+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return 0, nil, err
	}
	return pid, exited, nil
}

// serveArgs is the command line of the background control plane.
func serveArgs(opts *UpOptions, dir, addr string) []string {
	args := []string{"control-plane", "serve",
		"--addr", addr,
		"--data-dir", dir,
		"--tls-host", "localhost,127.0.0.1",
		"--tiering=" + strconv.FormatBool(opts.Tiering)}
	if opts.LocalRetentionTime != 0 {
		args = append(args, "--local-retention-time", durationArg(opts.LocalRetentionTime))
	}
	if opts.LocalRetentionBytes != 0 {
		args = append(args, "--local-retention-bytes", strconv.FormatInt(opts.LocalRetentionBytes, 10))
	}
	return args
}

// durationArg writes d so that format.ParseDuration reads it back.
func durationArg(d time.Duration) string {
	if d < 0 {
		return "-1"
	}
	return d.String()
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
