package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/control-plane/provisioner"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// secureCP is a secure control plane under test, with a tenant whose owner
// is logged in.
type secureCP struct {
	url      string
	dir      string
	hc       *http.Client
	srv      *server.Server
	session  *cloud.Session
	ownerKey string
}

// startSecureCP starts a secure control plane that runs clusters as local
// SPU processes of the spate binary, and creates a tenant "acme" whose
// owner logs in with an API key.
func startSecureCP(t *testing.T, binary string, mutate func(*server.Config)) *secureCP {
	t.Helper()
	dir := t.TempDir()
	cfg := server.Config{
		DataDir:         dir,
		LivenessTimeout: livenessTimeout,
		ElectionTTL:     2 * time.Second,
		Provisioner: provisioner.NewLocal(provisioner.LocalConfig{
			Binary:      binary,
			DataDir:     dir,
			StopTimeout: 5 * time.Second,
		}, testLogger(t)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := server.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	hc, err := cloud.NewHTTPClient(srv.RootCA())
	if err != nil {
		t.Fatal(err)
	}
	c := &secureCP{url: "https://" + l.Addr().String(), dir: dir, hc: hc, srv: srv}
	op, err := os.ReadFile(srv.OperatorKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	req := connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: "acme", OwnerEmail: "owner@acme.test", OwnerApiKey: true})
	req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(op)))
	resp, err := controlplanev1connect.NewTenantServiceClient(hc, c.url).CreateTenant(context.Background(), req)
	if err != nil {
		t.Fatalf("create tenant: %v", err)
	}
	c.ownerKey = resp.Msg.OwnerApiKey
	tokens, err := cloud.APIKeyLogin(context.Background(), c.url, hc, c.ownerKey)
	if err != nil {
		t.Fatalf("log in: %v", err)
	}
	c.session = cloud.NewSession(c.url, hc, tokens)
	return c
}

// waitStatus waits until the named cluster reaches want, and returns it.
func (c *secureCP) waitStatus(t *testing.T, name string, want controlplanev1.ClusterStatus) *controlplanev1.Cluster {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.session.Clusters().GetCluster(context.Background(), connect.NewRequest(&controlplanev1.GetClusterRequest{Name: name}))
		if err != nil {
			t.Fatalf("get cluster %s: %v", name, err)
		}
		if resp.Msg.Cluster.Status == want {
			return resp.Msg.Cluster
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s is %v (%s), want %v", name, resp.Msg.Cluster.Status, resp.Msg.Cluster.Reason, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestClusterGoesFromProvisioningToReadyAndIsDeletedWithItsSPUs(t *testing.T) {
	c := startSecureCP(t, sputest.Binary(t), nil)
	ctx := context.Background()
	created, err := c.session.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "prod", Spus: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if got := created.Msg.Cluster.Status; got != controlplanev1.ClusterStatus_CLUSTER_STATUS_PROVISIONING {
		t.Fatalf("a new cluster is %v, want PROVISIONING", got)
	}
	ready := c.waitStatus(t, "prod", controlplanev1.ClusterStatus_CLUSTER_STATUS_READY)
	t.Logf("create to ready: %v", ready.ReadyAt.AsTime().Sub(ready.CreatedAt.AsTime()))
	if len(ready.SpuEndpoints) != 2 {
		t.Fatalf("ready cluster lists SPUs %v, want 2", ready.SpuEndpoints)
	}
	for _, e := range ready.SpuEndpoints {
		if !strings.HasPrefix(e, "https://") {
			t.Fatalf("SPU endpoint %q is not https", e)
		}
	}
	if _, err := c.session.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "prod"})); connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("creating prod again: %v, want AlreadyExists", err)
	}

	if _, err := c.session.Clusters().DeleteCluster(ctx, connect.NewRequest(&controlplanev1.DeleteClusterRequest{Name: "prod"})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := c.session.Clusters().GetCluster(ctx, connect.NewRequest(&controlplanev1.GetClusterRequest{Name: "prod"}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster still there after delete: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "clusters", ready.Id)); !os.IsNotExist(err) {
		t.Fatalf("the deleted cluster's data is still on disk: %v", err)
	}
	for _, e := range ready.SpuEndpoints {
		if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(e, "https://"), time.Second); err == nil {
			conn.Close()
			t.Fatalf("SPU %s of the deleted cluster still listens", e)
		}
	}
	// The name is free again.
	if _, err := c.session.Clusters().CreateCluster(ctx, connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "prod"})); err != nil {
		t.Fatalf("create prod after deleting it: %v", err)
	}
}

func TestClusterWhoseSPUsCannotStartFailsWithTheReason(t *testing.T) {
	c := startSecureCP(t, "/bin/false", func(cfg *server.Config) { cfg.ProvisionTimeout = 3 * time.Second })
	if _, err := c.session.Clusters().CreateCluster(context.Background(), connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: "doomed"})); err != nil {
		t.Fatal(err)
	}
	failed := c.waitStatus(t, "doomed", controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED)
	if !strings.Contains(failed.Reason, "0 of 1 SPUs registered") || !strings.Contains(failed.Reason, "SPU 0") {
		t.Fatalf("failed cluster's reason %q does not say what went wrong", failed.Reason)
	}
}

func TestSigningKeyRotationLogsNobodyOut(t *testing.T) {
	c := startSecureCP(t, sputest.Binary(t), func(cfg *server.Config) { cfg.KeyRotation = 2 * time.Second })
	ctx := context.Background()
	old := c.session.Tokens().AccessToken
	oldKID := kid(t, old)
	// Wait for a rotation: the JWKS then holds the old key and a new one.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if n := jwksKeys(t, c); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the signing key was not rotated")
		}
		time.Sleep(100 * time.Millisecond)
	}
	who := controlplanev1connect.NewAuthServiceClient(c.hc, c.url)
	req := connect.NewRequest(&controlplanev1.WhoAmIRequest{})
	req.Header().Set("Authorization", "Bearer "+old)
	if _, err := who.WhoAmI(ctx, req); err != nil {
		t.Fatalf("a token signed before the rotation is refused: %v", err)
	}
	fresh, err := cloud.APIKeyLogin(ctx, c.url, c.hc, c.ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	if kid(t, fresh.AccessToken) == oldKID {
		t.Fatal("a token issued after the rotation is signed with the old key")
	}
	req = connect.NewRequest(&controlplanev1.WhoAmIRequest{})
	req.Header().Set("Authorization", "Bearer "+fresh.AccessToken)
	if _, err := who.WhoAmI(ctx, req); err != nil {
		t.Fatalf("a token signed after the rotation is refused: %v", err)
	}
}

// kid returns the key id in a JWT's header.
func kid(t *testing.T, jwt string) string {
	t.Helper()
	head, _, _ := strings.Cut(jwt, ".")
	b, err := base64RawURL(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.KID
}

func jwksKeys(t *testing.T, c *secureCP) int {
	t.Helper()
	resp, err := c.hc.Get(c.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if err := json.Unmarshal(buf.Bytes(), &set); err != nil {
		t.Fatalf("jwks: %v: %s", err, buf.String())
	}
	return len(set.Keys)
}

func base64RawURL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
