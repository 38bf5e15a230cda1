package spu_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	dataplanev1 "github.com/spatehq/spate/api/gen/spate/dataplane/v1"
	"github.com/spatehq/spate/api/gen/spate/dataplane/v1/dataplanev1connect"
	internalv1 "github.com/spatehq/spate/api/gen/spate/internalapi/v1"
	"github.com/spatehq/spate/api/gen/spate/internalapi/v1/internalv1connect"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/internal/certs"
	"github.com/spatehq/spate/data-plane/spu"
	"github.com/spatehq/spate/data-plane/spu/sputest"
)

const (
	testTenant  = "t-acme"
	testCluster = "c-main"
)

// pki is a root, the cluster's intermediate, and another cluster's under
// the same root.
type pki struct {
	root, cluster, other *sputest.CA
}

func newPKI(t testing.TB) pki {
	root := sputest.NewRootCA(t)
	return pki{root: root, cluster: root.NewIntermediate(t, testTenant, testCluster), other: root.NewIntermediate(t, testTenant, "c-other")}
}

func member(kind identity.Kind, id string) identity.Identity {
	return identity.Identity{Tenant: testTenant, Cluster: testCluster, Kind: kind, Principal: id}
}

// tlsRegistry is a fakeRegistry served over TLS with a control-plane
// certificate from the root; it records the identities of its callers.
type tlsRegistry struct {
	*fakeRegistry
	URL string

	mu    sync.Mutex // guards peers
	peers map[string]bool
}

func startTLSRegistry(t testing.TB, p pki) *tlsRegistry {
	t.Helper()
	f := &fakeRegistry{watchers: map[int32]chan *internalv1.WatchReplicasResponse{}, addresses: map[int32]string{}, quit: make(chan struct{})}
	r := &tlsRegistry{fakeRegistry: f, peers: map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle(internalv1connect.NewRegistryServiceHandler(f))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if id, err := certs.PeerIdentity(req.TLS); err == nil {
			r.mu.Lock()
			r.peers[id.String()] = true
			r.mu.Unlock()
		}
		mux.ServeHTTP(w, req)
	}))
	cp := p.root.Issue(t, sputest.Leaf{ID: identity.Identity{Tenant: "operator", Cluster: identity.NoCluster, Kind: identity.ControlPlane, Principal: "control-plane"}, Server: true})
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cp.Cert}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.root.Pool()}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	r.URL = srv.URL
	t.Cleanup(func() { f.stop(); srv.Close() })
	return r
}

func (r *tlsRegistry) sawPeer(id identity.Identity) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peers[id.String()]
}

// acl is the access list of the tests: a service account that may only
// produce to orders*, two member users.
func acl(users ...string) []*internalv1.Principal {
	ps := []*internalv1.Principal{{
		Kind: "service-account", Id: "sa-orders",
		Grants: []*internalv1.Grant{{Topic: "orders*", Ops: []string{"produce"}}},
	}}
	for _, u := range users {
		ps = append(ps, &internalv1.Principal{Kind: "user", Id: u, Role: "member"})
	}
	return ps
}

// startTLSSPU starts SPU id of the test cluster against reg.
func startTLSSPU(t testing.TB, p pki, reg *tlsRegistry, id int32) *sputest.SPU {
	t.Helper()
	return sputest.Start(t, spu.Config{ID: id, ControlPlane: reg.URL, TLS: sputest.SPUFiles(t, p.cluster, id, "")})
}

// clientsAs returns clients of the SPU at url that present tc.
func clientsAs(url string, tc *tls.Config) clients {
	hc := sputest.TLSClient(tc)
	return clients{
		produce:  dataplanev1connect.NewProduceServiceClient(hc, url),
		consume:  dataplanev1connect.NewConsumeServiceClient(hc, url),
		parts:    dataplanev1connect.NewPartitionServiceClient(hc, url),
		replicas: internalv1connect.NewReplicaServiceClient(hc, url),
	}
}

// waitProduce retries produce until the SPU holds the topic and has the
// access list, and fails after 10 s.
func waitProduce(t *testing.T, c clients, topic string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.produceOne(t, topic, 0, makeBatch(t, 0, "first"))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantCode(t *testing.T, what string, err error, code connect.Code, contains ...string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("%s = %v, want %v", what, err, code)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s = %q, want it to say %q", what, err, s)
		}
	}
}

// consumeErr opens a Consume stream and returns its error.
func consumeErr(t *testing.T, c clients, topic string) error {
	t.Helper()
	end := int64(1)
	stream, err := c.consume.Consume(testContext(t), connect.NewRequest(&dataplanev1.ConsumeRequest{
		Topic: topic, Partitions: []*dataplanev1.PartitionConsume{{Partition: 0, EndOffset: &end}},
	}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
	}
	return stream.Err()
}

func TestTLSAuthorizesByCertificateAndAccessList(t *testing.T) {
	p := newPKI(t)
	reg := startTLSRegistry(t, p)
	s := startTLSSPU(t, p, reg, 1)
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("URL %s", s.URL)
	}
	reg.send(t, 1, &internalv1.WatchReplicasResponse{
		Revision:   1,
		Replicas:   append(desiredLedBy(1, "orders-1", 0), desiredLedBy(1, "secrets", 0)...),
		Principals: acl("u-alice"),
	})
	sa := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.ServiceAccount, "sa-orders")))
	alice := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.User, "u-alice")))

	// A member user produces and consumes every topic.
	waitProduce(t, alice, "orders-1")
	waitProduce(t, alice, "secrets")
	if recs := alice.consumeRange(t, "secrets", 0, nil, 1); len(recs) != 1 {
		t.Fatalf("alice consumed %d records", len(recs))
	}
	if got := held(t, alice); !slices.Equal(got, []string{"orders-1/0", "secrets/0"}) {
		t.Fatalf("alice lists %v", got)
	}

	// The service account produces to orders-1 ...
	if _, err := sa.produceOne(t, "orders-1", 0, makeBatch(t, 0, "a")); err != nil {
		t.Fatalf("produce with a grant: %v", err)
	}
	// ... gets NotFound for secrets, which it may not see ...
	hidden := saHiddenErrors(t, sa, "secrets")
	if want := `not_found: replica: unknown topic: "secrets"`; hidden.produce != want || hidden.consume != want || hidden.offsets != want ||
		hidden.streamCode != uint32(connect.CodeNotFound) || hidden.stream != strings.TrimPrefix(want, "not_found: ") {
		t.Fatalf("answers for a hidden topic: %+v", hidden)
	}

	// It sees orders-1 but may not consume it.
	wantCode(t, "consume without a grant", consumeErr(t, sa, "orders-1"), connect.CodePermissionDenied, "consume", `"orders-1"`)
	// It lists only what it sees.
	if got := held(t, sa); !slices.Equal(got, []string{"orders-1/0"}) {
		t.Fatalf("the service account lists %v", got)
	}
	// Neither may call the SPU's internal services.
	for name, c := range map[string]clients{"service account": sa, "user": alice} {
		_, err := c.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: "x", Partition: 0}))
		wantCode(t, name+" calling ReplicaService", err, connect.CodePermissionDenied, "ReplicaService")
	}
	// The SPU's own peers may.
	peer := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.SPU, "spu-2")))
	if _, err := peer.replicas.EnsureReplica(context.Background(), connect.NewRequest(&internalv1.EnsureReplicaRequest{Topic: "internal", Partition: 0})); err != nil {
		t.Fatalf("a peer SPU calling ReplicaService: %v", err)
	}

	// A principal not in the access list may do nothing.
	carol := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.User, "u-carol")))
	_, err := carol.produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantCode(t, "produce by a non-member", err, connect.CodePermissionDenied, "principal is not a member of tenant")
	_, err = carol.parts.ListPartitions(context.Background(), connect.NewRequest(&dataplanev1.ListPartitionsRequest{}))
	wantCode(t, "list by a non-member", err, connect.CodePermissionDenied, "principal is not a member of tenant")

	// No client certificate: the handshake succeeds, health answers, and
	// the metrics (which name topics) and every RPC are refused.
	anon := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: p.cluster.Pool()}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusUnauthorized, "/debug/pprof/": http.StatusUnauthorized} {
		resp, err := sputest.TLSClient(anon).Get(s.URL + path)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("GET %s without a certificate: %v %v, want status %d", path, resp, err, want)
		}
		resp.Body.Close()
	}
	_, err = clientsAs(s.URL, anon).produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantCode(t, "produce without a certificate", err, connect.CodeUnauthenticated, "client certificate required")
	wantCode(t, "consume without a certificate", consumeErr(t, clientsAs(s.URL, anon), "orders-1"), connect.CodeUnauthenticated, "client certificate required")

	// A certificate of another cluster (same root) or an expired one fails
	// the handshake.
	// (Go's client does not even send a certificate whose issuer the SPU
	// did not name as acceptable: then the RPC is refused for want of one.)
	otherCert := p.other.Issue(t, sputest.Leaf{ID: identity.Identity{Tenant: testTenant, Cluster: "c-other", Kind: identity.User, Principal: "u-alice"}}).Cert
	forced := &tls.Config{RootCAs: p.cluster.Pool(), GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &otherCert, nil }}
	handshakeFails(t, s.URL, forced, "unknown certificate authority")
	_, err = clientsAs(s.URL, forced).produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantConnectionRefused(t, "produce with another cluster's certificate", err)
	filtered := &tls.Config{RootCAs: p.cluster.Pool(), Certificates: []tls.Certificate{otherCert}}
	_, err = clientsAs(s.URL, filtered).produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantCode(t, "produce with another cluster's certificate, not sent", err, connect.CodeUnauthenticated, "client certificate required")
	expired := p.cluster.Issue(t, sputest.Leaf{ID: member(identity.User, "u-alice"), NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expiredTLS := &tls.Config{RootCAs: p.cluster.Pool(), Certificates: []tls.Certificate{expired.Cert}}
	handshakeFails(t, s.URL, expiredTLS, "expired certificate")
	_, err = clientsAs(s.URL, expiredTLS).produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantConnectionRefused(t, "produce with an expired certificate", err)

	// ... exactly what it, or anyone, gets once secrets does not exist.
	reg.send(t, 1, &internalv1.WatchReplicasResponse{Revision: 2, Replicas: desiredLedBy(1, "orders-1", 0), Principals: acl("u-alice")})
	waitHeld(t, alice, "orders-1/0")
	for name, c := range map[string]clients{"service account": sa, "user": alice} {
		if missing := saHiddenErrors(t, c, "secrets"); missing != hidden {
			t.Errorf("%s: hidden topic %+v, missing topic %+v", name, hidden, missing)
		}
	}

	// Refusals are counted per reason; the metrics take a certificate of
	// the cluster.
	metrics := scrape(t, s.URL, p.cluster.ClientTLS(t, member(identity.ServiceAccount, "sa-monitoring")))
	for _, reason := range []string{"no_certificate", "not_member", "internal_only", "topic_not_visible", "operation_denied"} {
		m := regexp.MustCompile(`spate_spu_auth_refused_total\{reason="` + reason + `"\} (\d+)`).FindStringSubmatch(metrics)
		if m == nil || m[1] == "0" {
			t.Errorf("spate_spu_auth_refused_total{reason=%q} = %v", reason, m)
		}
	}
}

// topicErrors are the answers to one caller about one topic, as code and
// message.
type topicErrors struct {
	produce, consume, offsets, stream string
	streamCode                        uint32
}

// saHiddenErrors gathers c's answers for topic from ProduceOne, Consume,
// Offsets and a Produce stream (which goes on after the refusal).
func saHiddenErrors(t *testing.T, c clients, topic string) topicErrors {
	t.Helper()
	str := func(err error) string {
		if err == nil {
			return "<nil>"
		}
		return connect.CodeOf(err).String() + ": " + err.(*connect.Error).Message()
	}
	var out topicErrors
	_, err := c.produceOne(t, topic, 0, makeBatch(t, 0, "a"))
	out.produce = str(err)
	out.consume = str(consumeErr(t, c, topic))
	_, err = c.consume.Offsets(context.Background(), connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: topic}))
	out.offsets = str(err)
	stream := c.produce.Produce(testContext(t))
	defer stream.CloseResponse()
	for i, tp := range []string{topic, "orders-1"} {
		if err := stream.Send(&dataplanev1.ProduceRequest{RequestId: uint64(i), Topic: tp, Batches: makeBatch(t, 0, "s")}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		resp, err := stream.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			out.streamCode, out.stream = resp.ErrorCode, resp.ErrorMessage
		} else if resp.ErrorCode != 0 {
			t.Fatalf("the produce stream after a refusal: %v", resp)
		}
	}
	stream.CloseRequest()
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// handshakeFails checks that the SPU at url ends a TLS connection made
// with tc with an alert that says alert. (With TLS 1.3 the client learns
// that the server refused its certificate on its first read.)
// wantConnectionRefused checks that a call failed in the connection, not
// with an answer of the server. In TLS 1.3 the client may already be
// writing its request when the server's alert arrives: the call then fails
// as unavailable or, on a broken pipe or reset, as canceled.
func wantConnectionRefused(t *testing.T, what string, err error) {
	t.Helper()
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled:
		if err != nil {
			return
		}
	}
	t.Fatalf("%s = %v, want the connection to fail", what, err)
}

func handshakeFails(t *testing.T, url string, tc *tls.Config, alert string) {
	t.Helper()
	tc = tc.Clone()
	tc.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), tc)
	if err == nil {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil || !strings.Contains(err.Error(), "tls: "+alert) {
		t.Fatalf("TLS connection = %v, want the alert %q", err, alert)
	}
}

func scrape(t *testing.T, url string, tc *tls.Config) string {
	t.Helper()
	resp, err := sputest.TLSClient(tc).Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTLSRemovedPrincipalLosesAccessWithoutReconnecting(t *testing.T) {
	p := newPKI(t)
	reg := startTLSRegistry(t, p)
	s := startTLSSPU(t, p, reg, 1)
	bob := clientsAs(s.URL, p.cluster.ClientTLS(t, member(identity.User, "u-bob")))

	// Before the access list arrives, only the cluster's own principals
	// pass.
	_, err := bob.produceOne(t, "orders-1", 0, makeBatch(t, 0, "a"))
	wantCode(t, "produce before the access list", err, connect.CodeUnavailable, "access list")

	reg.send(t, 1, &internalv1.WatchReplicasResponse{Revision: 1, Replicas: desiredLedBy(1, "orders-1", 0), Principals: acl("u-alice", "u-bob")})
	waitProduce(t, bob, "orders-1")

	// Bob holds a consume stream and a produce stream open.
	ctx := testContext(t)
	cs, err := bob.consume.Consume(ctx, connect.NewRequest(&dataplanev1.ConsumeRequest{Topic: "orders-1", Partitions: []*dataplanev1.PartitionConsume{{Partition: 0}}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if !cs.Receive() {
		t.Fatalf("consume: %v", cs.Err())
	}
	ps := bob.produce.Produce(ctx)
	if err := ps.Send(&dataplanev1.ProduceRequest{RequestId: 1, Topic: "orders-1", Batches: makeBatch(t, 0, "b")}); err != nil {
		t.Fatal(err)
	}
	if resp, err := ps.Receive(); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("produce stream: %v %v", resp, err)
	}

	// Bob is removed from the tenant.
	reg.send(t, 1, &internalv1.WatchReplicasResponse{Revision: 2, Replicas: desiredLedBy(1, "orders-1", 0), Principals: acl("u-alice")})

	// The consume stream ends with the refusal.
	for cs.Receive() {
	}
	wantCode(t, "open consume stream after removal", cs.Err(), connect.CodePermissionDenied, "principal is not a member of tenant")
	// The next request on the open produce stream is refused.
	if err := ps.Send(&dataplanev1.ProduceRequest{RequestId: 2, Topic: "orders-1", Batches: makeBatch(t, 0, "c")}); err != nil {
		t.Fatal(err)
	}
	resp, err := ps.Receive()
	if err != nil || resp.ErrorCode != uint32(connect.CodePermissionDenied) || !strings.Contains(resp.ErrorMessage, "principal is not a member of tenant") {
		t.Fatalf("produce stream after removal: %v %v", resp, err)
	}
	ps.CloseRequest()
	ps.CloseResponse()
	// And so is a new call on the same connection.
	_, err = bob.produceOne(t, "orders-1", 0, makeBatch(t, 0, "d"))
	wantCode(t, "produce after removal", err, connect.CodePermissionDenied, "principal is not a member of tenant")
}

func TestTLSFollowerReplicatesOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	reg := startTLSRegistry(t, p)
	a := startTLSSPU(t, p, reg, 1)
	b := startTLSSPU(t, p, reg, 2)
	msg := &internalv1.WatchReplicasResponse{Revision: 1, Principals: acl("u-alice")}
	d := desiredLedBy(1, "repl", 0)
	d[0].LeaderAddress = a.URL
	msg.Replicas = d
	reg.send(t, 1, msg)
	reg.send(t, 2, msg)

	alice := p.cluster.ClientTLS(t, member(identity.User, "u-alice"))
	ca, cb := clientsAs(a.URL, alice), clientsAs(b.URL, alice)
	waitProduce(t, ca, "repl")
	for i := range 20 {
		if _, err := ca.produceOne(t, "repl", 0, makeBatch(t, 0, values("a", i*10, 10)...)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := cb.consume.Offsets(context.Background(), connect.NewRequest(&dataplanev1.OffsetsRequest{Topic: "repl", Partitions: []int32{0}}))
		if err == nil && resp.Msg.Partitions[0].EndOffset == 201 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the follower did not catch up: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	recs := cb.consumeRange(t, "repl", 0, nil, 201)
	if len(recs) != 201 || string(recs[200].Value) != "a-199" {
		t.Fatalf("the follower holds %d records", len(recs))
	}
	// Both agents reached the control plane with their own certificates,
	// and registered https addresses.
	for _, id := range []int32{1, 2} {
		if !reg.sawPeer(sputest.SPUIdentity(p.cluster, id)) {
			t.Errorf("the control plane never saw SPU %d's certificate", id)
		}
	}
	reg.mu.Lock()
	addr := reg.addresses[2]
	reg.mu.Unlock()
	if addr != b.URL {
		t.Errorf("SPU 2 registered %q, want %q", addr, b.URL)
	}
}

func TestTLSConfigValidate(t *testing.T) {
	full := spu.TLS{CertFile: "c", KeyFile: "k", ClusterCAFile: "cc", ControlPlaneCAFile: "cp"}
	for _, tc := range []struct {
		name string
		cfg  spu.Config
		want string // "" for valid
	}{
		{"none", spu.Config{DataDir: "d"}, ""},
		{"all", spu.Config{DataDir: "d", TLS: full, ControlPlane: "https://cp:9000"}, ""},
		{"missing", spu.Config{DataDir: "d", TLS: spu.TLS{CertFile: "c", ClusterCAFile: "cc"}}, "missing --tls-key, --control-plane-ca"},
		{"http control plane with TLS", spu.Config{DataDir: "d", TLS: full, ControlPlane: "http://cp:9000"}, "must be https://"},
		{"https control plane without TLS", spu.Config{DataDir: "d", ControlPlane: "https://cp:9000"}, "needs the TLS files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTLSRefusesACertificateForAnotherSPU(t *testing.T) {
	p := newPKI(t)
	files := sputest.SPUFiles(t, p.cluster, 3, "")
	_, err := spu.New(spu.Config{DataDir: t.TempDir(), ID: 4, TLS: files}, discardLogger())
	if err == nil || !strings.Contains(err.Error(), "spu/spu-4") {
		t.Fatalf("New with SPU 3's certificate as SPU 4 = %v", err)
	}
}

func TestTLSProcessServesWithFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the spate binary")
	}
	p := newPKI(t)
	files := sputest.SPUFiles(t, p.cluster, 0, "")
	proc := sputest.StartProcessTLS(t, t.TempDir(), files)
	// Standalone with TLS: no access list ever arrives, so only the
	// cluster's own principals may call it.
	op := clientsAs(proc.URL, p.cluster.ClientTLS(t, member(identity.SPU, "spu-9")))
	op.ensure(t, "p", 1, nil)
	if _, err := op.produceOne(t, "p", 0, makeBatch(t, 0, "x")); err != nil {
		t.Fatal(err)
	}
	_, err := clientsAs(proc.URL, p.cluster.ClientTLS(t, member(identity.User, "u-alice"))).produceOne(t, "p", 0, makeBatch(t, 0, "x"))
	wantCode(t, "user before any access list", err, connect.CodeUnavailable)
	// The process writes its log line as it answers: the client may read
	// the answer before the line reaches the log file.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log := proc.Log()
		if strings.Contains(log, "spu serving over TLS") && strings.Contains(log, "reason=acl_not_received") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log:\n%s", log)
		}
	}
}
