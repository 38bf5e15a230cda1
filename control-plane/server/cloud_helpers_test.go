package server_test

// The harness of the secure control plane's tests (isolation_test.go,
// credentials_test.go): one control plane serving HTTPS with a local
// provisioner that runs real SPU processes ($SPATE_BIN), tenants created
// with the operator's key through the real TenantService, logins with API
// keys, clusters, client certificates, and the tools to forge credentials
// (the signing keys and cluster CAs read from the control plane's etcd).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/cloud"
	"github.com/spatehq/spate/client/profile"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/control-plane/provisioner"
	"github.com/spatehq/spate/control-plane/server"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

// setupTimeout bounds each wait of the harness (a cluster becoming ready,
// an SPU learning a new principal): generous, for a loaded machine.
const setupTimeout = 90 * time.Second

// logBuffer collects the control plane's log lines; safe for concurrent
// use.
type logBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines that contain every one of substrs.
func (b *logBuffer) lines(substrs ...string) []string {
	var out []string
	for l := range strings.SplitSeq(b.String(), "\n") {
		ok := true
		for _, s := range substrs {
			ok = ok && strings.Contains(l, s)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// secureCP is a secure control plane under test with the local
// provisioner.
type secureCP struct {
	srv     *server.Server
	url     string
	hc      *http.Client // trusts the root CA; presents no certificate
	rootPEM []byte
	logs    *logBuffer
	// store reads the control plane's etcd directly, as an attacker with
	// a copy of it could: signing keys, cluster CAs.
	store *tenancy.Store
}

// startSecureCP starts a secure control plane on 127.0.0.1:0 whose
// clusters run as `spate spu serve` processes; it stops at cleanup.
func startSecureCP(t testing.TB) *secureCP {
	t.Helper()
	logs := &logBuffer{}
	var w io.Writer = logs
	if os.Getenv("SPATE_TEST_LOG") != "" {
		w = io.MultiWriter(logs, os.Stderr)
	}
	logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir := t.TempDir()
	prov := provisioner.NewLocal(provisioner.LocalConfig{
		Binary:      sputest.Binary(t),
		DataDir:     dir,
		StopTimeout: 5 * time.Second,
	}, logger.With("component", "provisioner"))
	srv, err := server.New(server.Config{
		DataDir:         dir,
		Provisioner:     prov,
		LivenessTimeout: livenessTimeout,
		ElectionTTL:     2 * time.Second,
	}, logger)
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
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("control plane did not stop")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("control plane stopped at start: %v", err)
	case <-time.After(setupTimeout):
		t.Fatal("control plane not ready")
	}
	hc, err := cloud.NewHTTPClient(srv.RootCA())
	if err != nil {
		t.Fatal(err)
	}
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return &secureCP{srv: srv, url: "https://" + l.Addr().String(), hc: hc, rootPEM: srv.RootCA(), logs: logs, store: tenancy.New(ec)}
}

// operatorKey returns the operator's API key that the control plane wrote
// at its first start.
func (c *secureCP) operatorKey(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(c.srv.OperatorKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// tenantEnv is a tenant and its owner's login.
type tenantEnv struct {
	cp      *secureCP
	id      string
	name    string
	owner   *login
	ownerID string
}

// newTenant creates a tenant with the operator's key, as `spate local up`
// does, and logs its owner in with the API key minted with it.
func (c *secureCP) newTenant(t testing.TB, name, ownerEmail string) *tenantEnv {
	t.Helper()
	ctx := context.Background()
	tenants := controlplanev1connect.NewTenantServiceClient(c.hc, c.url, connect.WithInterceptors(client.BearerInterceptor(client.StaticToken(c.operatorKey(t)))))
	resp, err := tenants.CreateTenant(ctx, connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: name, OwnerEmail: ownerEmail, OwnerApiKey: true}))
	if err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	return &tenantEnv{
		cp:      c,
		id:      resp.Msg.Tenant.Id,
		name:    name,
		ownerID: resp.Msg.Owner.Id,
		owner:   c.apiKeyLogin(t, ownerEmail, resp.Msg.OwnerApiKey),
	}
}

// login is a principal logged in to the control plane: its calls carry an
// access token (or an API key) as a bearer token.
type login struct {
	cp     *secureCP
	name   string
	apiKey string
	sess   *cloud.Session // nil for a login with a bare token
	tokens client.TokenSource
}

// apiKeyLogin exchanges an API key for tokens at the token endpoint.
func (c *secureCP) apiKeyLogin(t testing.TB, name, key string) *login {
	t.Helper()
	tokens, err := cloud.APIKeyLogin(context.Background(), c.url, c.hc, key)
	if err != nil {
		t.Fatalf("log in as %s: %v", name, err)
	}
	sess := cloud.NewSession(c.url, c.hc, tokens)
	return &login{cp: c, name: name, apiKey: key, sess: sess, tokens: sess}
}

// bearer is a login whose calls carry raw as their bearer token: an
// access token, an API key or garbage.
func (c *secureCP) bearer(name, raw string) *login {
	return &login{cp: c, name: name, tokens: client.StaticToken(raw)}
}

func (l *login) opts(cluster string) []connect.ClientOption {
	ics := []connect.Interceptor{client.BearerInterceptor(l.tokens)}
	if cluster != "" {
		ics = append(ics, headerInterceptor{server.ClusterHeader, cluster})
	}
	return []connect.ClientOption{connect.WithInterceptors(ics...)}
}

func (l *login) tenants() controlplanev1connect.TenantServiceClient {
	return controlplanev1connect.NewTenantServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

func (l *login) clusters() controlplanev1connect.ClusterServiceClient {
	return controlplanev1connect.NewClusterServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

func (l *login) auth() controlplanev1connect.AuthServiceClient {
	return controlplanev1connect.NewAuthServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

// topics returns a TopicService client acting on the cluster named in the
// Spate-Cluster header.
func (l *login) topics(cluster string) controlplanev1connect.TopicServiceClient {
	return controlplanev1connect.NewTopicServiceClient(l.cp.hc, l.cp.url, l.opts(cluster)...)
}

func (l *login) meta(cluster string) controlplanev1connect.MetadataServiceClient {
	return controlplanev1connect.NewMetadataServiceClient(l.cp.hc, l.cp.url, l.opts(cluster)...)
}

func (l *login) registry() internalv1connect.RegistryServiceClient {
	return internalv1connect.NewRegistryServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

// createAPIKey creates an API key for the login's principal, or for a
// service account of its tenant.
func (l *login) createAPIKey(t testing.TB, serviceAccount string, ttl time.Duration) *controlplanev1.CreateAPIKeyResponse {
	t.Helper()
	resp, err := l.tenants().CreateAPIKey(context.Background(), connect.NewRequest(&controlplanev1.CreateAPIKeyRequest{
		ServiceAccount: serviceAccount, Description: "test key", TtlSeconds: int64(ttl / time.Second),
	}))
	if err != nil {
		t.Fatalf("create API key (service account %q) as %s: %v", serviceAccount, l.name, err)
	}
	return resp.Msg
}

// headerInterceptor sets a request header on every call.
type headerInterceptor struct{ key, value string }

func (h headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set(h.key, h.value)
		return next(ctx, req)
	}
}

func (h headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set(h.key, h.value)
		return conn
	}
}

func (h headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// createCluster asks for a one-SPU cluster; waitReady waits for it.
func (l *login) createCluster(t testing.TB, name string) {
	t.Helper()
	if _, err := l.clusters().CreateCluster(context.Background(), connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: name, Spus: 1})); err != nil {
		t.Fatalf("create cluster %s as %s: %v", name, l.name, err)
	}
}

func (l *login) waitReady(t testing.TB, name string) *controlplanev1.Cluster {
	t.Helper()
	var c *controlplanev1.Cluster
	eventually(t, setupTimeout, func() error {
		resp, err := l.clusters().GetCluster(context.Background(), connect.NewRequest(&controlplanev1.GetClusterRequest{Name: name}))
		if err != nil {
			return err
		}
		c = resp.Msg.Cluster
		switch c.Status {
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_READY:
			return nil
		case controlplanev1.ClusterStatus_CLUSTER_STATUS_FAILED:
			t.Fatalf("cluster %s failed: %s", name, c.Reason)
		}
		return fmt.Errorf("cluster %s is %v", name, c.Status)
	})
	return c
}

// createTopic creates a one-partition topic on a cluster and waits until
// its partition is online.
func (l *login) createTopic(t testing.TB, cluster, name string) {
	t.Helper()
	ctx := context.Background()
	topics := l.topics(cluster)
	_, err := topics.CreateTopic(ctx, connect.NewRequest(&controlplanev1.CreateTopicRequest{Spec: &controlplanev1.TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1}}))
	if err != nil {
		t.Fatalf("create topic %s on %s as %s: %v", name, cluster, l.name, err)
	}
	eventually(t, setupTimeout, func() error {
		resp, err := topics.DescribeTopic(ctx, connect.NewRequest(&controlplanev1.DescribeTopicRequest{Name: name}))
		if err != nil {
			return err
		}
		if st := resp.Msg.Topic.State; st != controlplanev1.TopicState_TOPIC_STATE_ONLINE {
			return fmt.Errorf("topic %s is %v", name, st)
		}
		return nil
	})
}

// certLogin is a principal with a client certificate of one cluster.
type certLogin struct {
	cp      *secureCP
	name    string
	profile profile.Profile
	spuTLS  *tls.Config // trusts the cluster CA only
	cpTLS   *tls.Config // trusts the root CA
}

// useCluster downloads a client certificate for a cluster, as `spate cloud
// cluster use` does.
func (l *login) useCluster(t testing.TB, cluster string) *certLogin {
	t.Helper()
	sess := l.sess
	if sess == nil {
		sess = cloud.NewSession(l.cp.url, l.cp.hc, cloud.Tokens{AccessToken: mustToken(t, l.tokens)})
	}
	p, err := cloud.UseCluster(context.Background(), sess, cluster)
	if err != nil {
		t.Fatalf("use cluster %s as %s: %v", cluster, l.name, err)
	}
	spuTLS, cpTLS, err := client.ProfileTLS(p)
	if err != nil {
		t.Fatal(err)
	}
	return &certLogin{cp: l.cp, name: l.name + "@" + cluster, profile: p, spuTLS: spuTLS, cpTLS: cpTLS}
}

func mustToken(t testing.TB, ts client.TokenSource) string {
	t.Helper()
	tok, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// withCert returns a certLogin presenting chainPEM and keyPEM, trusting
// the root CA everywhere: a certificate the control plane did not issue
// through IssueClientCertificate.
func (c *secureCP) withCert(t testing.TB, name string, chainPEM, keyPEM []byte) *certLogin {
	t.Helper()
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := client.PoolFromPEM(c.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &certLogin{
		cp:     c,
		name:   name,
		spuTLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
		cpTLS:  &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
}

// httpsClient speaks HTTP/2 (or HTTP/1.1) over TLS with tc, on a
// transport of its own so that no connection is shared between
// identities.
func httpsClient(tc *tls.Config) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}}
}

func (cl *certLogin) cpClient() *http.Client { return httpsClient(cl.cpTLS) }

func (cl *certLogin) topics() controlplanev1connect.TopicServiceClient {
	return controlplanev1connect.NewTopicServiceClient(cl.cpClient(), cl.cp.url)
}

func (cl *certLogin) meta() controlplanev1connect.MetadataServiceClient {
	return controlplanev1connect.NewMetadataServiceClient(cl.cpClient(), cl.cp.url)
}

func (cl *certLogin) registry() internalv1connect.RegistryServiceClient {
	return internalv1connect.NewRegistryServiceClient(cl.cpClient(), cl.cp.url)
}

func (cl *certLogin) auth() controlplanev1connect.AuthServiceClient {
	return controlplanev1connect.NewAuthServiceClient(cl.cpClient(), cl.cp.url)
}

func (cl *certLogin) tenants() controlplanev1connect.TenantServiceClient {
	return controlplanev1connect.NewTenantServiceClient(cl.cpClient(), cl.cp.url)
}

func (cl *certLogin) clusters() controlplanev1connect.ClusterServiceClient {
	return controlplanev1connect.NewClusterServiceClient(cl.cpClient(), cl.cp.url)
}

// spuClients are the clients of every service of one SPU.
type spuClients struct {
	produce    dataplanev1connect.ProduceServiceClient
	consume    dataplanev1connect.ConsumeServiceClient
	partitions dataplanev1connect.PartitionServiceClient
	replicas   internalv1connect.ReplicaServiceClient
}

// spu returns clients of the SPU at url presenting the certificate; tc,
// if not nil, replaces the login's SPU TLS configuration.
func (cl *certLogin) spu(url string, tc *tls.Config) spuClients {
	if tc == nil {
		tc = cl.spuTLS
	}
	hc := httpsClient(tc)
	return spuClients{
		produce:    dataplanev1connect.NewProduceServiceClient(hc, url),
		consume:    dataplanev1connect.NewConsumeServiceClient(hc, url),
		partitions: dataplanev1connect.NewPartitionServiceClient(hc, url),
		replicas:   internalv1connect.NewReplicaServiceClient(hc, url),
	}
}

// listPartitions lists the partitions an SPU shows the caller, once the
// SPU knows the caller (it learns new principals from the control plane
// within moments).
func (s spuClients) listPartitions(t testing.TB) []*dataplanev1.PartitionStatus {
	t.Helper()
	var parts []*dataplanev1.PartitionStatus
	eventually(t, setupTimeout, func() error {
		resp, err := s.partitions.ListPartitions(context.Background(), connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
		if err != nil {
			return err
		}
		parts = resp.Msg.Partitions
		return nil
	})
	return parts
}

// signer forges access tokens with the control plane's real signing keys,
// read from its etcd.
type signer struct {
	issuer string
	keys   *token.Keyring
	kid    string
}

func (c *secureCP) signer(t testing.TB) *signer {
	t.Helper()
	raw, _, err := c.store.SigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var keys []token.Key
	for _, b := range raw {
		k, err := token.UnmarshalKey(b)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		t.Fatal("no signing keys in etcd")
	}
	kr := token.NewKeyring(keys...)
	return &signer{issuer: c.url, keys: kr, kid: kr.Signer().KID}
}

// claims returns valid claims for a principal: what the control plane
// itself would sign.
func (s *signer) claims(tenant string, kind identity.Kind, principal string) token.Claims {
	now := time.Now()
	var c token.Claims
	c.Issuer = s.issuer
	c.Subject = principal
	c.Audience = []string{token.Audience}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(10 * time.Minute))
	c.Tenant, c.Kind = tenant, string(kind)
	return c
}

// sign signs c with the real newest key.
func (s *signer) sign(t testing.TB, c token.Claims) string {
	t.Helper()
	raw, err := s.keys.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// clusterCA returns the CA of a cluster as stored in etcd: the
// certificate and private key an attacker with etcd would hold.
func (c *secureCP) clusterCA(t testing.TB, clusterID string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	ctx := context.Background()
	cl, err := c.store.GetCluster(ctx, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, rootKey, err := c.store.RootCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(rootCert, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadIntermediate(cl.CACertPEM, cl.CAKeyPEM, root); err != nil {
		t.Fatalf("cluster CA in etcd: %v", err)
	}
	cert, err := x509.ParseCertificate(pemBlock(t, cl.CACertPEM))
	if err != nil {
		t.Fatal(err)
	}
	der := pemBlock(t, cl.CAKeyPEM)
	var key crypto.Signer
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		key = k.(crypto.Signer)
	} else if k, err := x509.ParseECPrivateKey(der); err == nil {
		key = k
	} else {
		t.Fatalf("cluster CA key: %v", err)
	}
	return cert, key
}

func pemBlock(t testing.TB, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	return blk.Bytes
}

// leafCert makes a client certificate naming id, valid from notBefore to
// notAfter, signed by parent's key (or self-signed when parent is nil).
// It returns the chain (leaf, then parent) and the key, in PEM.
func leafCert(t testing.TB, id identity.Identity, parent *x509.Certificate, parentKey crypto.Signer, notBefore, notAfter time.Time) (chainPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Principal, Organization: []string{id.Tenant}, OrganizationalUnit: []string{id.Cluster}},
		URIs:         []*url.URL{id.URI()},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	issuer, signKey := tmpl, any(key)
	if parent != nil {
		issuer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if parent != nil {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: parent.Raw})...)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return chainPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
}

// answer is what a call returned, as text to search for leaks: the error
// with its details, or the response message.
func answer(msg proto.Message, err error) string {
	var b strings.Builder
	if err != nil {
		b.WriteString(err.Error())
		var ce *connect.Error
		if errors.As(err, &ce) {
			for _, d := range ce.Details() {
				b.WriteString(" detail " + d.Type() + ":")
				if v, derr := d.Value(); derr == nil {
					b.WriteString(protojson.Format(v))
				}
			}
			for k, v := range ce.Meta() {
				b.WriteString(" meta " + k + "=" + strings.Join(v, ","))
			}
		}
	}
	if msg != nil && !isNil(msg) {
		b.WriteString(protojson.Format(msg))
	}
	return b.String()
}

func isNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }

// secrets are names and ids of one tenant that no other tenant may learn.
type secrets []string

// leaks returns the secrets found in text, except those the caller
// supplied itself.
func (s secrets) leaks(text string, supplied ...string) []string {
	var out []string
	for _, v := range s {
		if v == "" || slices.Contains(supplied, v) {
			continue
		}
		if strings.Contains(text, v) {
			out = append(out, v)
		}
	}
	return out
}

// sameRefusal checks that got, the answer to a call naming gotName, is
// the very answer want that the same call naming wantName got: the same
// code, the same message with the name substituted, as many details.
func sameRefusal(t testing.TB, got, want error, gotName, wantName string) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("want two refusals, got %v and %v", got, want)
	}
	if connect.CodeOf(got) != connect.CodeOf(want) {
		t.Errorf("code %v (%v), but %v for %q (%v)", connect.CodeOf(got), got, connect.CodeOf(want), wantName, want)
		return
	}
	gm, wm := errMessage(got), errMessage(want)
	if wantName != "" {
		wm = strings.ReplaceAll(wm, wantName, gotName)
	}
	if gm != wm {
		t.Errorf("message %q, but %q for %q", gm, errMessage(want), wantName)
	}
	var ge, we *connect.Error
	if errors.As(got, &ge) && errors.As(want, &we) && len(ge.Details()) != len(we.Details()) {
		t.Errorf("%d error details, but %d for %q", len(ge.Details()), len(we.Details()), wantName)
	}
}

func errMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// wantCode fails unless err has code.
func wantCode(t testing.TB, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v", code)
	}
	if c := connect.CodeOf(err); c != code {
		t.Fatalf("code %v (%v), want %v", c, err, code)
	}
}

// wantHandshakeRefused fails unless err is the server refusing the
// client's certificate in the TLS handshake (a TLS alert from the server),
// as opposed to the client distrusting the server.
func wantHandshakeRefused(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want the TLS handshake refused")
	}
	if !strings.Contains(err.Error(), "remote error: tls:") {
		t.Fatalf("error %v: want a TLS alert from the server (remote error: tls: ...)", err)
	}
}
