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
	"path/filepath"
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

// syncLog collects the control plane's log lines; safe for concurrent
// use.
type syncLog struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines that contain every one of substrs.
func (b *syncLog) lines(substrs ...string) []string {
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

// cloudCP is a secure control plane under test with the local
// provisioner.
type cloudCP struct {
	srv     *server.Server
	url     string
	hc      *http.Client // trusts the root CA; presents no certificate
	rootPEM []byte
	logs    *syncLog
	dir     string // the data directory; SPU logs in clusters/<id>/spu-<n>.log
	// store reads the control plane's etcd directly, as an attacker with
	// a copy of it could: signing keys, cluster CAs.
	store *tenancy.Store
}

// startCloudCP starts a secure control plane on 127.0.0.1:0 whose
// clusters run as `spate spu serve` processes; it stops at cleanup.
func startCloudCP(t testing.TB) *cloudCP {
	t.Helper()
	logs := &syncLog{}
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
	return &cloudCP{dir: dir, srv: srv, url: "https://" + l.Addr().String(), hc: hc, rootPEM: srv.RootCA(), logs: logs, store: tenancy.New(ec)}
}

// rootPool returns a pool of the root CA.
func (c *cloudCP) rootPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, err := client.PoolFromPEM(c.rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// spuLog returns the log of SPU 0 of a cluster.
func (c *cloudCP) spuLog(t testing.TB, clusterID string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "clusters", clusterID, "spu-0.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// operatorKey returns the operator's API key that the control plane wrote
// at its first start.
func (c *cloudCP) operatorKey(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(c.srv.OperatorKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// tenantEnv is a tenant and its owner's login.
type tenantEnv struct {
	id      string
	name    string
	owner   *cpLogin
	ownerID string
}

// newTenant creates a tenant with the operator's key, as `spate local up`
// does, and logs its owner in with the API key minted with it.
func (c *cloudCP) newTenant(t testing.TB, name, ownerEmail string) *tenantEnv {
	t.Helper()
	ctx := context.Background()
	tenants := controlplanev1connect.NewTenantServiceClient(c.hc, c.url, connect.WithInterceptors(client.BearerInterceptor(client.StaticToken(c.operatorKey(t)))))
	resp, err := tenants.CreateTenant(ctx, connect.NewRequest(&controlplanev1.CreateTenantRequest{Name: name, OwnerEmail: ownerEmail, OwnerApiKey: true}))
	if err != nil {
		t.Fatalf("create tenant %s: %v", name, err)
	}
	return &tenantEnv{
		id:      resp.Msg.Tenant.Id,
		name:    name,
		ownerID: resp.Msg.Owner.Id,
		owner:   c.apiKeyLogin(t, ownerEmail, resp.Msg.OwnerApiKey),
	}
}

// cpLogin is a principal logged in to the control plane: its calls carry an
// access token (or an API key) as a bearer token.
type cpLogin struct {
	cp     *cloudCP
	name   string
	apiKey string
	sess   *cloud.Session // nil for a login with a bare token
	tokens client.TokenSource
}

// apiKeyLogin exchanges an API key for tokens at the token endpoint.
func (c *cloudCP) apiKeyLogin(t testing.TB, name, key string) *cpLogin {
	t.Helper()
	tokens, err := cloud.APIKeyLogin(context.Background(), c.url, c.hc, key)
	if err != nil {
		t.Fatalf("log in as %s: %v", name, err)
	}
	sess := cloud.NewSession(c.url, c.hc, tokens)
	return &cpLogin{cp: c, name: name, apiKey: key, sess: sess, tokens: sess}
}

// bearer is a cpLogin whose calls carry raw as their bearer token: an
// access token, an API key or garbage.
func (c *cloudCP) bearer(name, raw string) *cpLogin {
	return &cpLogin{cp: c, name: name, tokens: client.StaticToken(raw)}
}

func (l *cpLogin) opts(cluster string) []connect.ClientOption {
	ics := []connect.Interceptor{client.BearerInterceptor(l.tokens)}
	if cluster != "" {
		ics = append(ics, headerInterceptor{server.ClusterHeader, cluster})
	}
	return []connect.ClientOption{connect.WithInterceptors(ics...)}
}

func (l *cpLogin) tenants() controlplanev1connect.TenantServiceClient {
	return controlplanev1connect.NewTenantServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

func (l *cpLogin) clusters() controlplanev1connect.ClusterServiceClient {
	return controlplanev1connect.NewClusterServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

func (l *cpLogin) auth() controlplanev1connect.AuthServiceClient {
	return controlplanev1connect.NewAuthServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

// topics returns a TopicService client acting on the cluster named in the
// Spate-Cluster header.
func (l *cpLogin) topics(cluster string) controlplanev1connect.TopicServiceClient {
	return controlplanev1connect.NewTopicServiceClient(l.cp.hc, l.cp.url, l.opts(cluster)...)
}

func (l *cpLogin) meta(cluster string) controlplanev1connect.MetadataServiceClient {
	return controlplanev1connect.NewMetadataServiceClient(l.cp.hc, l.cp.url, l.opts(cluster)...)
}

func (l *cpLogin) registry() internalv1connect.RegistryServiceClient {
	return internalv1connect.NewRegistryServiceClient(l.cp.hc, l.cp.url, l.opts("")...)
}

// createAPIKey creates an API key for the cpLogin's principal, or for a
// service account of its tenant.
func (l *cpLogin) createAPIKey(t testing.TB, serviceAccount string, ttl time.Duration) *controlplanev1.CreateAPIKeyResponse {
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
func (l *cpLogin) createCluster(t testing.TB, name string) {
	t.Helper()
	if _, err := l.clusters().CreateCluster(context.Background(), connect.NewRequest(&controlplanev1.CreateClusterRequest{Name: name, Spus: 1})); err != nil {
		t.Fatalf("create cluster %s as %s: %v", name, l.name, err)
	}
}

func (l *cpLogin) waitReady(t testing.TB, name string) *controlplanev1.Cluster {
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
func (l *cpLogin) createTopic(t testing.TB, cluster, name string) {
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
		if st := resp.Msg.Topic.State; st != controlplanev1.TopicState_TOPIC_STATE_READY {
			return fmt.Errorf("topic %s is %v", name, st)
		}
		return nil
	})
}

// certLogin is a principal with a client certificate of one cluster.
type certLogin struct {
	cp      *cloudCP
	name    string
	profile profile.Profile
	spuTLS  *tls.Config // trusts the cluster CA only
	cpTLS   *tls.Config // trusts the root CA
}

// useCluster downloads a client certificate for a cluster, as `spate cloud
// cluster use` does.
func (l *cpLogin) useCluster(t testing.TB, cluster string) *certLogin {
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
func (c *cloudCP) withCert(t testing.TB, name string, chainPEM, keyPEM []byte) *certLogin {
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

// alwaysPresent returns tc changed to present its certificate whatever
// CAs the server asks for (crypto/tls offers a certificate only if it
// chains to one of them).
func alwaysPresent(tc *tls.Config) *tls.Config {
	tc = tc.Clone()
	cert := tc.Certificates[0]
	tc.Certificates = nil
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return tc
}

// alwaysPresent returns the login presenting its certificate to every
// server, whatever CAs the server asks for.
func (cl *certLogin) alwaysPresent() *certLogin {
	c := *cl
	c.spuTLS, c.cpTLS = alwaysPresent(cl.spuTLS), alwaysPresent(cl.cpTLS)
	return &c
}

// tlsHTTPClient speaks HTTP/2 (or HTTP/1.1) over TLS with tc, on a
// transport of its own so that no connection is shared between
// identities.
func tlsHTTPClient(tc *tls.Config) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: tc.Clone(), ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}}
}

func (cl *certLogin) cpClient() *http.Client { return tlsHTTPClient(cl.cpTLS) }

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
// if not nil, replaces the cpLogin's SPU TLS configuration.
func (cl *certLogin) spu(url string, tc *tls.Config) spuClients {
	if tc == nil {
		tc = cl.spuTLS
	}
	hc := tlsHTTPClient(tc)
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

// tokenForger forges access tokens with the control plane's real signing keys,
// read from its etcd.
type tokenForger struct {
	issuer string
	keys   *token.Keyring
	kid    string
}

func (c *cloudCP) tokenForger(t testing.TB) *tokenForger {
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
	return &tokenForger{issuer: c.url, keys: kr, kid: kr.Signer().KID}
}

// claims returns valid claims for a principal: what the control plane
// itself would sign.
func (s *tokenForger) claims(tenant string, kind identity.Kind, principal string) token.Claims {
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
func (s *tokenForger) sign(t testing.TB, c token.Claims) string {
	t.Helper()
	raw, err := s.keys.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// clusterCA returns the CA of a cluster as stored in etcd: the
// certificate and private key an attacker with etcd would hold.
func (c *cloudCP) clusterCA(t testing.TB, clusterID string) (*x509.Certificate, crypto.Signer) {
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
	cert, err := x509.ParseCertificate(pemDER(t, cl.CACertPEM))
	if err != nil {
		t.Fatal(err)
	}
	der := pemDER(t, cl.CAKeyPEM)
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

func pemDER(t testing.TB, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	return blk.Bytes
}

// forgeLeafCert makes a client certificate naming id, valid from notBefore to
// notAfter, signed by parent's key (or self-signed when parent is nil).
// It returns the chain (leaf, then parent) and the key, in PEM.
func forgeLeafCert(t testing.TB, id identity.Identity, parent *x509.Certificate, parentKey crypto.Signer, notBefore, notAfter time.Time) (chainPEM, keyPEM []byte) {
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

// answerText is what a call returned, as text to search for leaks: the error
// with its details, or the response message.
func answerText(msg proto.Message, err error) string {
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
	if msg != nil && !protoNil(msg) {
		b.WriteString(protojson.Format(msg))
	}
	return b.String()
}

func protoNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }

// tenantSecrets are names and ids of one tenant that no other tenant may learn.
type tenantSecrets []string

// leaks returns the tenantSecrets found in text, except those the caller
// supplied itself.
func (s tenantSecrets) leaks(text string, supplied ...string) []string {
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

// sameRefusal checks that got, the answerText to a call naming gotName, is
// the very answerText want that the same call naming wantName got: the same
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

// wantConnectCode fails unless err has code.
func wantConnectCode(t testing.TB, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("call succeeded, want %v", code)
	}
	if c := connect.CodeOf(err); c != code {
		t.Fatalf("code %v (%v), want %v", c, err, code)
	}
}

// wantHandshakeRefused fails unless err is a call that got no answer
// from the server at all: the connection failed (here, because the
// server refused the client's certificate in the handshake; see
// handshakeAlert for the proof that it did).
func wantHandshakeRefused(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want the TLS handshake refused")
	}
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeCanceled:
	default:
		t.Fatalf("error %v: the server answered; want the connection refused in the TLS handshake", err)
	}
}

// handshakeAlert connects to the HTTPS server at url with tc and returns
// the TLS alert the server sends (crypto/tls reports it as "remote error:
// tls: ..."), or fails if the server accepts the connection. In TLS 1.3
// the client finishes its side of the handshake before the server checks
// the client's certificate, so the alert arrives with the first read.
func handshakeAlert(t testing.TB, rawURL string, tc *tls.Config) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host, tc)
	if err == nil {
		defer conn.Close()
		// A server that accepts sends nothing more until the client
		// speaks: the read times out.
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
		t.Fatalf("connection to %s: %v; want a TLS alert from the server", rawURL, err)
	}
	return err.Error()
}

// world is the shared fixture of the secure tests: tenant A ("alpha-corp")
// with clusters "prod" and "a-secret-cluster", topics "a-secret-topic" and
// "orders-eu" on prod, a member, a service account allowed only to consume
// "orders*"; and, when asked, tenant B ("bravo-corp") with its own "prod"
// topic "b-topic" and service account "b-writer". Three (or two) one-SPU clusters in all.
type world struct {
	cp *cloudCP

	a             *tenantEnv
	aProd         *controlplanev1.Cluster
	aSecret       *controlplanev1.Cluster
	aOwnerProd    *certLogin // A's owner's certificate for A's prod
	aOwnerSecret  *certLogin // ... for a-secret-cluster
	aMemberID     string
	aSA           *controlplanev1.ServiceAccount // a-orders-reader: consume orders*
	aSALogin      *cpLogin
	aOwnerKeyID   string // an API key of A's owner
	aSecretsNames tenantSecrets

	b      *tenantEnv
	bProd  *controlplanev1.Cluster
	bOwner *certLogin // B's owner's certificate for B's prod
}

// Names in the fixture.
const (
	aTenantName   = "alpha-corp"
	aOwnerEmail   = "owner@alpha.example"
	aMemberEmail  = "member@alpha.example"
	aSecretClust  = "a-secret-cluster"
	aSecretTopic  = "a-secret-topic"
	aOrdersTopic  = "orders-eu"
	aSAName       = "a-orders-reader"
	bTenantName   = "bravo-corp"
	bOwnerEmail   = "owner@bravo.example"
	bTopic        = "b-topic"
	bSAName       = "b-writer"
	prodCluster   = "prod"
	missingTopic  = "no-such-topic"
	missingClust  = "no-such-cluster"
	missingSA     = "no-such-account"
	missingEmail  = "nobody@nowhere.example"
	missingKeyID  = "aaaaaaaaaaaa"
	missingClusID = "c-aaaaaaaaaa"
)

// newWorld builds the fixture on a fresh control plane; withB adds
// tenant B.
func newWorld(t *testing.T, withB bool) *world {
	t.Helper()
	ctx := context.Background()
	cp := startCloudCP(t)
	w := &world{cp: cp}
	w.a = cp.newTenant(t, aTenantName, aOwnerEmail)
	a := w.a.owner
	a.createCluster(t, prodCluster)
	a.createCluster(t, aSecretClust)
	if withB {
		w.b = cp.newTenant(t, bTenantName, bOwnerEmail)
		w.b.owner.createCluster(t, prodCluster)
	}

	// People, service accounts and keys while the SPUs start.
	mresp, err := a.tenants().AddMember(ctx, connect.NewRequest(&controlplanev1.AddMemberRequest{Email: aMemberEmail, Role: controlplanev1.Role_ROLE_MEMBER}))
	if err != nil {
		t.Fatal(err)
	}
	w.aMemberID = mresp.Msg.Member.Id
	saResp, err := a.tenants().CreateServiceAccount(ctx, connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{
		Name:   aSAName,
		Grants: []*controlplanev1.Grant{{Topic: "orders*", Ops: []controlplanev1.TopicOp{controlplanev1.TopicOp_TOPIC_OP_CONSUME}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	w.aSA = saResp.Msg.ServiceAccount
	saKey := a.createAPIKey(t, aSAName, 0)
	w.aSALogin = cp.apiKeyLogin(t, aSAName, saKey.Secret)
	w.aOwnerKeyID = a.createAPIKey(t, "", 0).Key.Id

	w.aProd = a.waitReady(t, prodCluster)
	w.aSecret = a.waitReady(t, aSecretClust)
	a.createTopic(t, prodCluster, aSecretTopic)
	a.createTopic(t, prodCluster, aOrdersTopic)
	w.aOwnerProd = a.useCluster(t, prodCluster)
	w.aOwnerSecret = a.useCluster(t, aSecretClust)
	if withB {
		b := w.b.owner
		w.bProd = b.waitReady(t, prodCluster)
		b.createTopic(t, prodCluster, bTopic)
		if _, err := b.tenants().CreateServiceAccount(ctx, connect.NewRequest(&controlplanev1.CreateServiceAccountRequest{
			Name:   bSAName,
			Grants: []*controlplanev1.Grant{{Topic: "*", Ops: []controlplanev1.TopicOp{controlplanev1.TopicOp_TOPIC_OP_PRODUCE}}},
		})); err != nil {
			t.Fatal(err)
		}
		b.createAPIKey(t, bSAName, 0)
		w.bOwner = b.useCluster(t, prodCluster)
	}

	// Everything of A that no other tenant may learn.
	w.aSecretsNames = tenantSecrets{w.a.id, aTenantName, w.a.ownerID, aOwnerEmail, aMemberEmail, w.aMemberID,
		w.aProd.Id, w.aSecret.Id, aSecretClust, aSecretTopic, aOrdersTopic, w.aSA.Id, aSAName}
	keys, err := a.tenants().ListAPIKeys(ctx, connect.NewRequest(&controlplanev1.ListAPIKeysRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys.Msg.Keys {
		w.aSecretsNames = append(w.aSecretsNames, k.Id)
	}
	if len(w.aProd.SpuEndpoints) != 1 || len(w.aSecret.SpuEndpoints) != 1 {
		t.Fatalf("A's clusters have SPU endpoints %v and %v, want one each", w.aProd.SpuEndpoints, w.aSecret.SpuEndpoints)
	}
	w.aSecretsNames = append(w.aSecretsNames, w.aProd.SpuEndpoints...)
	w.aSecretsNames = append(w.aSecretsNames, w.aSecret.SpuEndpoints...)
	return w
}

// aSPU is the URL of A's prod SPU.
func (w *world) aSPU() string { return w.aProd.SpuEndpoints[0] }

// msgOf returns a response's message, or nil.
func msgOf[T any](resp *connect.Response[T], err error) (proto.Message, error) {
	if resp == nil {
		return nil, err
	}
	return any(resp.Msg).(proto.Message), err
}

// firstMetadata returns the first message of a WatchMetadata stream, or
// the error that ended it.
func firstMetadata(ctx context.Context, meta controlplanev1connect.MetadataServiceClient) (*controlplanev1.WatchMetadataResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := meta.WatchMetadata(ctx, connect.NewRequest(&controlplanev1.WatchMetadataRequest{}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	if stream.Receive() {
		return stream.Msg(), nil
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("metadata stream ended without a message")
}
