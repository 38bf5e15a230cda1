package spate

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/bench/internal/proc"
	"github.com/spatehq/spate/bench/internal/scenario"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/internal/h2c"
)

// The tenant, its owner and the cluster that the mTLS setup creates.
const (
	benchTenant  = "bench"
	benchOwner   = "bench@localhost"
	benchCluster = "bench"
)

// setupTimeout bounds the start of the control plane and of its cluster.
const setupTimeout = 90 * time.Second

// cluster is a control plane process and the one SPU it provisions for
// the cluster: the mTLS setup, or the h2c-cluster one.
type cluster struct {
	cp  *proc.Process
	dir string // the control plane's data directory
	// In the mTLS setup: the user's profile and its TLS towards the SPU.
	profile profile.Profile
	spuTLS  *tls.Config
	// spuURL is the SPU's URL.
	spuURL string
}

// startCluster starts a control plane on a fresh data directory and a
// cluster of one SPU (with --fsync in the Fsync mode), and a client for
// it. A secure control plane serves TLS with authentication: the
// benchmark creates a tenant, logs in as its owner and gets a user's
// client certificate for the cluster. An insecure one (--insecure
// --local-spus 1) runs the SPU over h2c and lets anyone do anything.
func (s *System) startCluster(ctx context.Context, d scenario.Durability) error {
	secure := s.cfg.Setup == MTLS
	addr, err := proc.FreeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(s.cfg.WorkDir, s.Name()+"-"+string(d)+"-")
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	spuArgs := []string{"--log-level", "warn"}
	if d == scenario.Fsync {
		spuArgs = append(spuArgs, "--fsync")
	}
	if s.cfg.ProfileDir != "" {
		spuArgs = append(spuArgs, "--pprof")
	}
	args := []string{"control-plane", "serve", "--addr", addr, "--data-dir", dir, "--log-level", "warn", "--spu-args=" + strings.Join(spuArgs, ",")}
	flags := "--tls-host localhost,127.0.0.1"
	spuLine := "spate spu serve --id 0 --addr 127.0.0.1:PORT --data-dir DIR --control-plane https://127.0.0.1:PORT --tls-cert FILE --tls-key FILE --cluster-ca FILE --control-plane-ca FILE"
	if secure {
		args = append(args, "--tls-host", "localhost,127.0.0.1")
	} else {
		args = append(args, "--insecure", "--local-spus", "1")
		flags = "--insecure --local-spus 1"
		spuLine = "spate spu serve --id 0 --addr 127.0.0.1:PORT --data-dir DIR --control-plane http://127.0.0.1:PORT"
	}
	p, err := proc.Start(proc.Spec{Path: s.cfg.Binary, Args: args, Log: s.cfg.ServerLog})
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("spate: %w", err)
	}
	c := &cluster{cp: p, dir: dir}
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var cl *client.Client
	if secure {
		err = c.setUpSecure(sctx, "https://"+addr)
		if err == nil {
			cl, err = client.FromProfile(c.profile, client.WithLogger(s.cfg.Logger))
		}
	} else {
		cl, err = c.setUpInsecure(sctx, "http://"+addr, s.cfg.Logger)
	}
	if err != nil {
		c.stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("spate: %s setup: %w", s.Name(), err)
	}
	s.cluster, s.dir, s.durability, s.client, s.spuURL = c, dir, d, cl, c.spuURL
	s.newHTTP = h2c.NewClient
	if secure {
		s.newHTTP = func() *http.Client { return h2c.NewTLSClient(c.spuTLS) }
	}
	s.serverLine = fmt.Sprintf("spate control-plane serve --addr 127.0.0.1:PORT --data-dir DIR %s --log-level warn --spu-args=%s # runs the cluster's SPU: %s %s",
		flags, strings.Join(spuArgs, ","), spuLine, strings.Join(spuArgs, " "))
	s.produced = make(map[string]int64)
	s.topics = make(map[string]int)
	return nil
}

// setUpInsecure waits until the insecure control plane answers and its
// local cluster's SPU is online, and returns a client of the control
// plane.
func (c *cluster) setUpInsecure(ctx context.Context, url string, logger *slog.Logger) (*client.Client, error) {
	hc := h2c.NewClient()
	for !healthy(ctx, hc, url) {
		if err := c.wait(ctx, 50*time.Millisecond); err != nil {
			return nil, fmt.Errorf("the control plane did not answer at %s: %w", url, err)
		}
	}
	cl, err := client.New(client.WithControlPlane(url), client.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	for {
		spus, err := cl.ListSPUs(ctx)
		if err == nil && len(spus) == 1 && spus[0].Online {
			c.spuURL = spus[0].Address
			return cl, nil
		}
		if err := c.wait(ctx, 100*time.Millisecond); err != nil {
			cl.Close()
			return nil, fmt.Errorf("the local SPU is not online (%v): %w\n%s", spus, err, c.spuLog())
		}
	}
}

// setUpSecure waits for the secure control plane, then does what `spate
// local up` does: creates the tenant with the operator's key, logs in as
// its owner with an API key, creates the cluster, waits until it is ready
// and gets a client certificate for it.
func (c *cluster) setUpSecure(ctx context.Context, url string) error {
	hc, err := c.waitHealthy(ctx, url)
	if err != nil {
		return err
	}
	opKey, err := os.ReadFile(filepath.Join(c.dir, "operator.key"))
	if err != nil {
		return fmt.Errorf("read the operator key: %w", err)
	}
	tenants := controlplanev1connect.NewTenantServiceClient(hc, url)
	req := connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: benchTenant, OwnerEmail: benchOwner, OwnerApiKey: true})
	req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(opKey)))
	resp, err := tenants.CreateTenant(ctx, req)
	if err != nil {
		return fmt.Errorf("create tenant %q: %w", benchTenant, err)
	}
	tokens, err := cloud.APIKeyLogin(ctx, url, hc, resp.Msg.OwnerApiKey)
	if err != nil {
		return fmt.Errorf("log in as %s: %w", benchOwner, err)
	}
	sess := cloud.NewSession(url, hc, tokens)
	if _, err := sess.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: benchCluster, Spus: 1})); err != nil {
		return fmt.Errorf("create cluster %q: %w", benchCluster, err)
	}
	for {
		resp, err := sess.Clusters().GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: benchCluster}))
		if err != nil {
			return fmt.Errorf("cluster %q: %w", benchCluster, err)
		}
		st := resp.Msg.Cluster.GetStatus()
		if st == controlplanev1.ClusterStatus_CLUSTER_STATUS_READY {
			break
		}
		if st == controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED {
			return fmt.Errorf("cluster %q failed: %s\n%s", benchCluster, resp.Msg.Cluster.GetReason(), c.spuLog())
		}
		if err := c.wait(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("cluster %q not ready (%s): %w\n%s", benchCluster, st, err, c.spuLog())
		}
	}
	if c.profile, err = cloud.UseCluster(ctx, sess, benchCluster); err != nil {
		return fmt.Errorf("client certificate for cluster %q: %w", benchCluster, err)
	}
	if len(c.profile.SPUs) != 1 {
		return fmt.Errorf("cluster %q has SPUs %v, want one", benchCluster, c.profile.SPUs)
	}
	if c.spuTLS, _, err = client.ProfileTLS(c.profile); err != nil {
		return err
	}
	c.spuURL = c.profile.SPUs[0]
	return nil
}

// waitHealthy waits until the control plane answers /healthz over TLS,
// trusting the root CA it writes into its data directory, and returns an
// HTTP client for it.
func (c *cluster) waitHealthy(ctx context.Context, url string) (*http.Client, error) {
	for {
		if caPEM, err := os.ReadFile(filepath.Join(c.dir, server.RootCAFile)); err == nil {
			if hc, err := cloud.NewHTTPClient(caPEM); err == nil && healthy(ctx, hc, url) {
				return hc, nil
			}
		}
		if err := c.wait(ctx, 50*time.Millisecond); err != nil {
			return nil, fmt.Errorf("the control plane did not answer at %s: %w", url, err)
		}
	}
}

func healthy(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// wait sleeps for d, or returns an error when ctx ends or the control
// plane exits first.
func (c *cluster) wait(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.cp.Done():
		return c.cp.Exited()
	case <-time.After(d):
		return nil
	}
}

// down returns an error with the end of the logs when the control plane
// or its SPU is not running.
func (c *cluster) down() error {
	if err := c.cp.Exited(); err != nil {
		return fmt.Errorf("spate: the control plane is down: %w", err)
	}
	if c.spuPID() == 0 {
		return fmt.Errorf("spate: the SPU is not running; its log ends with:\n%s", c.spuLog())
	}
	return nil
}

// spuLogPath is where the control plane's provisioner writes the output
// of SPU 0 of the cluster, in the cluster's folder (named by its id, or
// "local").
func (c *cluster) spuLogPath() string {
	matches, _ := filepath.Glob(filepath.Join(c.dir, "clusters", "*", "spu-0.log"))
	if len(matches) == 0 {
		return ""
	}
	return matches[0]
}

// spuLog returns the end of the SPU's log, for error messages.
func (c *cluster) spuLog() string {
	path := c.spuLogPath()
	if path == "" {
		return "(no SPU log yet)"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}

// spuPID returns the pid of the SPU process the control plane started,
// or 0 when there is none.
func (c *cluster) spuPID() int {
	pids, err := proc.Children(c.cp.Pid())
	if err != nil {
		return 0
	}
	for _, pid := range pids {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("\x00spu\x00serve\x00")) {
			return pid
		}
	}
	return 0
}

// stop stops the control plane, which stops its SPU, and deletes their
// data.
func (c *cluster) stop() {
	c.cp.Stop()
	os.RemoveAll(c.dir)
}

// createClusterTopic deletes the topics of earlier scenarios through the
// control plane, waiting until they are gone, then creates topic and
// waits until the SPU serves it to the benchmark's user.
func (s *System) createClusterTopic(ctx context.Context, topic string, partitions int) error {
	for t := range s.topics {
		if err := s.client.DeleteTopic(ctx, t); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			return fmt.Errorf("spate: %w", err)
		}
		delete(s.topics, t)
		delete(s.produced, t)
		if err := s.waitTopic(ctx, t, func(_ client.Topic, err error) bool { return connect.CodeOf(err) == connect.CodeNotFound }); err != nil {
			return fmt.Errorf("spate: topic %q not deleted: %w", t, err)
		}
	}
	d := client.DurabilityWrite
	if s.durability == scenario.Fsync {
		d = client.DurabilityFsync
	}
	_, err := s.client.CreateTopic(ctx, client.TopicSpec{
		Name:              topic,
		Partitions:        int32(partitions),
		ReplicationFactor: 1,
		Settings:          client.TopicSettings{Durability: d, Retention: -1},
	})
	if err != nil {
		return fmt.Errorf("spate: %w", err)
	}
	s.topics[topic] = partitions
	if err := s.waitTopic(ctx, topic, func(t client.Topic, err error) bool { return err == nil && t.State == client.TopicStateReady }); err != nil {
		return fmt.Errorf("spate: topic %q not ready: %w", topic, err)
	}
	// The SPU refuses users until the control plane's access list reaches
	// it: wait until it answers the benchmark's user for the topic.
	deadline := time.Now().Add(30 * time.Second)
	for {
		offs, err := s.client.Offsets(ctx, topic)
		if err == nil && len(offs) == partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("spate: the SPU does not serve topic %q to the benchmark's user: %v", topic, err)
		}
		if err := s.cluster.wait(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("spate: %w", err)
		}
	}
}

// waitTopic polls DescribeTopic until done says so, for up to 30 seconds.
func (s *System) waitTopic(ctx context.Context, topic string, done func(client.Topic, error) bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		t, err := s.client.DescribeTopic(ctx, topic)
		if done(t, err) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("state %s %s", t.State, t.Reason)
			}
			return errors.Join(errors.New("gave up after 30s"), err)
		}
		if err := s.cluster.wait(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}
