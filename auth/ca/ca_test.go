package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
)

const tenant = "t-abcdefghij"

// fixture is a root with two clusters of one tenant, A and B.
type fixture struct {
	root *ca.Root
	a, b *ca.Intermediate
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	root := newRoot(t)
	return fixture{root: root, a: newIntermediate(t, root, "c-aaaaaaaaaa"), b: newIntermediate(t, root, "c-bbbbbbbbbb")}
}

func newRoot(t testing.TB) *ca.Root {
	t.Helper()
	certPEM, keyPEM, err := ca.NewRoot("Spate test root")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func newIntermediate(t testing.TB, root *ca.Root, cluster string) *ca.Intermediate {
	t.Helper()
	certPEM, keyPEM, err := root.NewIntermediate(tenant, cluster)
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.LoadIntermediate(certPEM, keyPEM, root)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func user(i *ca.Intermediate, name string) identity.Identity {
	return identity.Identity{Tenant: i.Tenant(), Cluster: i.Cluster(), Kind: identity.User, Principal: name}
}

func spu(i *ca.Intermediate, n string) identity.Identity {
	return identity.Identity{Tenant: i.Tenant(), Cluster: i.Cluster(), Kind: identity.SPU, Principal: "spu-" + n}
}

var controlPlane = identity.Identity{Tenant: "spate", Cluster: identity.NoCluster, Kind: identity.ControlPlane, Principal: "control-plane"}

// clientCert issues a client certificate of id from i the way a client
// gets one: its own key, a CSR, the chain back.
func clientCert(t testing.TB, i *ca.Intermediate, id identity.Identity) tls.Certificate {
	t.Helper()
	keyPEM, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	is, err := i.IssueClient(id, csrPEM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if is.KeyPEM != nil {
		t.Fatal("IssueClient returned a key")
	}
	c, err := tls.X509KeyPair(is.ChainPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serverCert(t testing.TB, is *ca.Issued, err error) tls.Certificate {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	c, err := is.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// spuConfig is how an SPU of cluster i serves: its own certificate, and
// client certificates verified against the cluster's intermediate only.
func spuConfig(t testing.TB, i *ca.Intermediate) *tls.Config {
	is, err := i.IssueServer(spu(i, "0"), nil, nil, 0)
	return &tls.Config{
		Certificates: []tls.Certificate{serverCert(t, is, err)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    i.Pool(),
	}
}

type handshakeResult struct {
	server    tls.ConnectionState // the server's view of the connection
	serverErr error
	clientErr error
}

// handshake runs a real TLS handshake over a 127.0.0.1 listener. The
// client reads one byte the server writes after its handshake, so a client
// certificate refused by a TLS 1.3 server shows up as a client error too.
func handshake(t *testing.T, server, client *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type served struct {
		state tls.ConnectionState
		err   error
	}
	done := make(chan served, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- served{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- served{state: tc.ConnectionState(), err: err}
	}()
	var r handshakeResult
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), client)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(c, make([]byte, 1))
		c.Close()
	}
	r.clientErr = err
	s := <-done
	r.server, r.serverErr = s.state, s.err
	return r
}

func TestSPUAcceptsClientCertificateOfItsClusterAndLearnsItsIdentity(t *testing.T) {
	f := newFixture(t)
	alice := user(f.a, "u-alice00000")
	r := handshake(t, spuConfig(t, f.a), &tls.Config{
		ServerName:   "localhost",
		RootCAs:      f.a.Pool(),
		Certificates: []tls.Certificate{clientCert(t, f.a, alice)},
	})
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("handshake: server %v, client %v", r.serverErr, r.clientErr)
	}
	got, err := ca.PeerIdentity(r.server)
	if err != nil {
		t.Fatal(err)
	}
	if got != alice {
		t.Errorf("PeerIdentity = %v, want %v", got, alice)
	}
}

func TestSPURefusesClientCertificates(t *testing.T) {
	f := newFixture(t)
	selfSigned := selfSignedCert(t, user(f.a, "u-mallory000"))

	past := newRoot(t)
	ca.SetClock(past, func() time.Time { return time.Now().Add(-48 * time.Hour) })
	pastA := newIntermediate(t, past, "c-aaaaaaaaaa")
	ca.SetClock(pastA, func() time.Time { return time.Now().Add(-48 * time.Hour) })
	expiredA := clientCert(t, pastA, user(pastA, "u-alice00000")) // valid 12 h, 48 h ago

	for _, tc := range []struct {
		name   string
		server *tls.Config
		cert   tls.Certificate
		reason func(error) bool
	}{
		{"of another cluster of the same root and tenant", spuConfig(t, f.a), clientCert(t, f.b, user(f.b, "u-alice00000")), isUnknownAuthority},
		{"self-signed with a spate identity", spuConfig(t, f.a), selfSigned, isUnknownAuthority},
		{"expired", spuConfig(t, pastA), expiredA, isExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := handshake(t, tc.server, &tls.Config{
				ServerName: "localhost",
				RootCAs:    tc.server.ClientCAs, // the client trusts the SPU
				// Send the certificate even when the server's acceptable
				// CAs do not name its issuer, as an attacker would.
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc.cert, nil },
			})
			if r.serverErr == nil {
				t.Fatal("server accepted the client certificate")
			}
			if r.clientErr == nil {
				t.Error("client did not notice the refusal")
			}
			if !tc.reason(r.serverErr) {
				t.Errorf("server error %q: wrong reason", r.serverErr)
			}
		})
	}
}

func isUnknownAuthority(err error) bool {
	var e x509.UnknownAuthorityError
	return errors.As(err, &e)
}

func isExpired(err error) bool {
	var e x509.CertificateInvalidError
	return errors.As(err, &e) && e.Reason == x509.Expired
}

// selfSignedCert is a certificate naming id that no Spate CA signed.
func selfSignedCert(t *testing.T, id identity.Identity) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: id.Principal},
		URIs:                  []*url.URL{id.URI()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestClientTrustsSPUOnlyWithItsClustersIntermediate(t *testing.T) {
	f := newFixture(t)
	is, err := f.a.IssueServer(spu(f.a, "0"), nil, nil, 0)
	server := &tls.Config{Certificates: []tls.Certificate{serverCert(t, is, err)}}

	r := handshake(t, server, &tls.Config{ServerName: "localhost", RootCAs: f.a.Pool()})
	if r.clientErr != nil {
		t.Fatalf("with cluster A's pool: %v", r.clientErr)
	}
	r = handshake(t, server, &tls.Config{ServerName: "localhost", RootCAs: f.b.Pool()})
	if !isUnknownAuthority(r.clientErr) {
		t.Fatalf("with cluster B's pool: client error %v, want unknown authority", r.clientErr)
	}
	r = handshake(t, server, &tls.Config{ServerName: "127.0.0.1", RootCAs: f.a.Pool()})
	if r.clientErr != nil {
		t.Fatalf("dialled by IP 127.0.0.1: %v", r.clientErr)
	}
}

func TestControlPlaneTrustsRootForItselfAndEveryCluster(t *testing.T) {
	f := newFixture(t)
	is, err := f.root.IssueServer(controlPlane, []string{"cp.spate.test"}, nil, 0)
	server := &tls.Config{
		Certificates: []tls.Certificate{serverCert(t, is, err)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.root.Pool(),
	}
	for _, i := range []*ca.Intermediate{f.a, f.b} {
		id := user(i, "u-alice00000")
		r := handshake(t, server, &tls.Config{
			ServerName:   "cp.spate.test",
			RootCAs:      f.root.Pool(),
			Certificates: []tls.Certificate{clientCert(t, i, id)},
		})
		if r.serverErr != nil || r.clientErr != nil {
			t.Fatalf("cluster %s: server %v, client %v", i.Cluster(), r.serverErr, r.clientErr)
		}
		if got, err := ca.PeerIdentity(r.server); err != nil || got != id {
			t.Errorf("PeerIdentity = %v, %v; want %v", got, err, id)
		}
		chain := r.server.VerifiedChains[0]
		if len(chain) != 3 || string(chain[1].Raw) != string(pemDER(t, i.CertPEM())) || string(chain[2].Raw) != string(pemDER(t, f.root.CertPEM())) {
			t.Errorf("verified chain has %d certificates, want leaf, intermediate of %s, root", len(chain), i.Cluster())
		}
	}
}

func TestControlPlaneCertificateIsAlsoAClientOfTheControlPlane(t *testing.T) {
	f := newFixture(t)
	is, err := f.root.IssueServer(controlPlane, []string{"cp.spate.test"}, nil, 0)
	cert := serverCert(t, is, err)
	r := handshake(t, &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    f.root.Pool(),
	}, &tls.Config{ServerName: "cp.spate.test", RootCAs: f.root.Pool(), Certificates: []tls.Certificate{cert}})
	if r.serverErr != nil || r.clientErr != nil {
		t.Fatalf("server %v, client %v", r.serverErr, r.clientErr)
	}
	if got, _ := ca.PeerIdentity(r.server); got != controlPlane {
		t.Errorf("PeerIdentity = %v, want %v", got, controlPlane)
	}
	if n := len(pemBlocks(t, is.ChainPEM)); n != 1 {
		t.Errorf("control plane chain has %d certificates, want the leaf alone", n)
	}
}

func TestRootRoundTrip(t *testing.T) {
	certPEM, keyPEM, err := ca.NewRoot("Spate test root")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if string(root.CertPEM()) != string(certPEM) {
		t.Error("CertPEM differs from the PEM loaded")
	}
	c := parseCert(t, certPEM)
	if !c.IsCA || c.Subject.CommonName != "Spate test root" || c.CheckSignatureFrom(c) != nil {
		t.Errorf("root: IsCA %v, CN %q, self-signed %v", c.IsCA, c.Subject.CommonName, c.CheckSignatureFrom(c) == nil)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("root key %T, want ECDSA P-256", c.PublicKey)
	}
	checkValidity(t, c, 10*365*24*time.Hour)
}

func TestIntermediateRoundTrip(t *testing.T) {
	root := newRoot(t)
	certPEM, keyPEM, err := root.NewIntermediate(tenant, "c-aaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	i, err := ca.LoadIntermediate(certPEM, keyPEM, root)
	if err != nil {
		t.Fatal(err)
	}
	if string(i.CertPEM()) != string(certPEM) || i.Tenant() != tenant || i.Cluster() != "c-aaaaaaaaaa" {
		t.Errorf("loaded intermediate: tenant %q cluster %q, PEM equal %v", i.Tenant(), i.Cluster(), string(i.CertPEM()) == string(certPEM))
	}
	c := parseCert(t, certPEM)
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("intermediate: IsCA %v MaxPathLen %d (zero %v), want a CA with MaxPathLen 0", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if err := c.CheckSignatureFrom(parseCert(t, root.CertPEM())); err != nil {
		t.Errorf("intermediate not signed by root: %v", err)
	}
	checkValidity(t, c, 5*365*24*time.Hour)
}

func TestNewIntermediateRefusesBadIDs(t *testing.T) {
	root := newRoot(t)
	if _, _, err := root.NewIntermediate("T/1", "c-1"); err == nil {
		t.Error("accepted tenant \"T/1\"")
	}
	if _, _, err := root.NewIntermediate("t-1", ""); err == nil {
		t.Error("accepted an empty cluster")
	}
}

func checkValidity(t *testing.T, c *x509.Certificate, want time.Duration) {
	t.Helper()
	now := time.Now()
	if d := now.Sub(c.NotBefore); d < ca.Backdate-2*time.Second || d > ca.Backdate+2*time.Second {
		t.Errorf("NotBefore %v is %v before now, want %v", c.NotBefore, d, ca.Backdate)
	}
	if d := c.NotAfter.Sub(now); d < want-time.Minute || d > want+time.Second {
		t.Errorf("NotAfter %v is %v after now, want %v", c.NotAfter, d, want)
	}
}

func TestLoadIntermediateRefuses(t *testing.T) {
	root, other := newRoot(t), newRoot(t)
	certA, keyA, err := root.NewIntermediate(tenant, "c-aaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := root.NewIntermediate(tenant, "c-bbbbbbbbbb")
	if err != nil {
		t.Fatal(err)
	}
	certOther, keyOther, err := other.NewIntermediate(tenant, "c-aaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"an intermediate of another root", certOther, keyOther, "not signed by root"},
		{"a key that is not the certificate's", certA, keyB, "key does not match"},
		{"the root itself", root.CertPEM(), keyA, "key does not match"},
		{"a leaf", mustIssue(t, newIntermediate(t, root, "c-cccccccccc")), keyA, "not a CA"},
		{"garbage", []byte("not PEM"), keyA, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.LoadIntermediate(tc.cert, tc.key, root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadIntermediate error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestLoadRootRefuses(t *testing.T) {
	certA, keyA, err := ca.NewRoot("a")
	if err != nil {
		t.Fatal(err)
	}
	_, keyB, err := ca.NewRoot("b")
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.LoadRoot(certA, keyA)
	if err != nil {
		t.Fatal(err)
	}
	interPEM, interKey, err := root.NewIntermediate(tenant, "c-aaaaaaaaaa")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.LoadRoot(certA, keyB); err == nil || !strings.Contains(err.Error(), "key does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, err := ca.LoadRoot(interPEM, interKey); err == nil || !strings.Contains(err.Error(), "not self-signed") {
		t.Errorf("an intermediate as root: %v", err)
	}
}

func mustIssue(t *testing.T, i *ca.Intermediate) []byte {
	is, err := i.IssueServer(spu(i, "0"), nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return is.ChainPEM
}

func TestSPUCertificate(t *testing.T) {
	f := newFixture(t)
	id := spu(f.a, "3")
	is, err := f.a.IssueServer(id, []string{"spu-3.c-aaaaaaaaaa.svc", "localhost"}, []net.IP{net.ParseIP("10.0.0.3"), net.IPv4(127, 0, 0, 1)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	blocks := pemBlocks(t, is.ChainPEM)
	if len(blocks) != 2 || string(blocks[1]) != string(pemDER(t, f.a.CertPEM())) {
		t.Fatalf("chain: %d certificates, want the leaf then cluster A's intermediate", len(blocks))
	}
	leaf := parseCert(t, is.ChainPEM)
	checkLeaf(t, leaf, id)
	if want := []string{"localhost", "spu-3.c-aaaaaaaaaa.svc"}; !slices.Equal(leaf.DNSNames, want) {
		t.Errorf("DNS names %q, want %q", leaf.DNSNames, want)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !leaf.IPAddresses[1].Equal(net.ParseIP("10.0.0.3")) {
		t.Errorf("IP addresses %v, want 127.0.0.1 10.0.0.3", leaf.IPAddresses)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(leaf.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage %v, want server and client auth", leaf.ExtKeyUsage)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !is.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("Issued.NotAfter %v, leaf %v", is.NotAfter, leaf.NotAfter)
	}
	checkValidity(t, leaf, ca.DefaultServerValidity)
}

// checkLeaf checks what every leaf says about its identity.
func checkLeaf(t *testing.T, leaf *x509.Certificate, id identity.Identity) {
	t.Helper()
	got, err := identity.FromCertificate(leaf)
	if err != nil || got != id || len(leaf.URIs) != 1 {
		t.Errorf("URI SANs %v: identity %v, %v; want only %v", leaf.URIs, got, err, id)
	}
	if leaf.Subject.CommonName != id.Principal || !slices.Equal(leaf.Subject.Organization, []string{id.Tenant}) || !slices.Equal(leaf.Subject.OrganizationalUnit, []string{id.Cluster}) {
		t.Errorf("subject %v, want CN=%s, O=%s, OU=%s", leaf.Subject, id.Principal, id.Tenant, id.Cluster)
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
}

func TestClientCertificateIgnoresEverythingTheRequestNames(t *testing.T) {
	f := newFixture(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	evil, _ := url.Parse("spate://t-other00000/c-aaaaaaaaaa/user/u-admin00000")
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "operator", Organization: []string{"operator"}},
		DNSNames:       []string{"cp.spate.test"},
		IPAddresses:    []net.IP{net.IPv4(127, 0, 0, 1)},
		EmailAddresses: []string{"root@spate.test"},
		URIs:           []*url.URL{evil},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	id := user(f.a, "u-alice00000")
	is, err := f.a.IssueClient(id, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := parseCert(t, is.ChainPEM)
	checkLeaf(t, leaf, id)
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
		t.Errorf("leaf copied names from the request: %v %v %v", leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage %v, want client auth only", leaf.ExtKeyUsage)
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		t.Error("leaf does not certify the request's key")
	}
	checkValidity(t, leaf, ca.DefaultClientValidity)
}

func TestIssueClientChecksTheKey(t *testing.T) {
	f := newFixture(t)
	id := user(f.a, "u-alice00000")
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, tc := range []struct {
		name string
		key  any
		ok   bool
	}{
		{"ECDSA P-256", p256, true},
		{"Ed25519", ed, true},
		{"RSA 2048", rsa2048, true},
		{"ECDSA P-384", p384, false},
		{"RSA 1024", rsa1024, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, tc.key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.a.IssueClient(id, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0)
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.Is(err, ca.ErrUnsupportedKey):
				t.Fatalf("error %v, want ErrUnsupportedKey", err)
			}
		})
	}
}

func TestIssueClientRefusesInvalidRequests(t *testing.T) {
	f := newFixture(t)
	_, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	der := pemDER(t, csrPEM)
	der[len(der)-3] ^= 0xff // inside the signature
	tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	for name, csr := range map[string][]byte{"empty": nil, "not PEM": []byte("hello"), "bad signature": tampered} {
		t.Run(name, func(t *testing.T) {
			if _, err := f.a.IssueClient(user(f.a, "u-alice00000"), csr, 0); !errors.Is(err, ca.ErrInvalidCSR) {
				t.Fatalf("error %v, want ErrInvalidCSR", err)
			}
		})
	}
}

func TestIntermediateIssuesOnlyForItsTenantAndCluster(t *testing.T) {
	f := newFixture(t)
	_, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []identity.Identity{
		user(f.b, "u-alice00000"),
		{Tenant: "t-other00000", Cluster: f.a.Cluster(), Kind: identity.User, Principal: "u-alice00000"},
		{Tenant: tenant, Cluster: identity.NoCluster, Kind: identity.Operator, Principal: "operator"},
	} {
		if _, err := f.a.IssueClient(id, csrPEM, 0); !errors.Is(err, ca.ErrWrongIdentity) {
			t.Errorf("IssueClient(%v): %v, want ErrWrongIdentity", id, err)
		}
		if _, err := f.a.IssueServer(id, nil, nil, 0); !errors.Is(err, ca.ErrWrongIdentity) {
			t.Errorf("IssueServer(%v): %v, want ErrWrongIdentity", id, err)
		}
	}
	bad := identity.Identity{Tenant: tenant, Cluster: f.a.Cluster(), Kind: "admin", Principal: "u-alice00000"}
	if _, err := f.a.IssueClient(bad, csrPEM, 0); err == nil {
		t.Errorf("IssueClient accepted the malformed identity %v", bad)
	}
	if _, err := f.root.IssueServer(identity.Identity{}, nil, nil, 0); err == nil {
		t.Error("Root.IssueServer accepted an empty identity")
	}
}

func TestLeafNeverOutlivesItsIssuer(t *testing.T) {
	f := newFixture(t)
	inter := parseCert(t, f.a.CertPEM())
	is, err := f.a.IssueServer(spu(f.a, "0"), nil, nil, 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if leaf := parseCert(t, is.ChainPEM); !leaf.NotAfter.Equal(inter.NotAfter) || !is.NotAfter.Equal(inter.NotAfter) {
		t.Errorf("leaf NotAfter %v, want the intermediate's %v", leaf.NotAfter, inter.NotAfter)
	}
	is, err = f.root.IssueServer(controlPlane, nil, nil, 20*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if root := parseCert(t, f.root.CertPEM()); !is.NotAfter.Equal(root.NotAfter) {
		t.Errorf("control plane NotAfter %v, want the root's %v", is.NotAfter, root.NotAfter)
	}
}

func TestExpiredIntermediateIssuesNothing(t *testing.T) {
	f := newFixture(t)
	ca.SetClock(f.a, func() time.Time { return time.Now().Add(6 * 365 * 24 * time.Hour) })
	if _, err := f.a.IssueServer(spu(f.a, "0"), nil, nil, 0); !errors.Is(err, ca.ErrIssuerExpired) {
		t.Fatalf("error %v, want ErrIssuerExpired", err)
	}
}

func TestPeerIdentityNeedsAVerifiedLeafNamingAnIdentity(t *testing.T) {
	f := newFixture(t)
	if _, err := ca.PeerIdentity(tls.ConnectionState{}); !errors.Is(err, ca.ErrNoVerifiedChain) {
		t.Errorf("no certificate: %v, want ErrNoVerifiedChain", err)
	}
	leaf := parseCert(t, mustIssue(t, f.a))
	if _, err := ca.PeerIdentity(tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); !errors.Is(err, ca.ErrNoVerifiedChain) {
		t.Errorf("unverified certificate: %v, want ErrNoVerifiedChain", err)
	}
	root := parseCert(t, f.root.CertPEM())
	if _, err := ca.PeerIdentity(tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{root}}}); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("certificate without identity: %v, want identity.ErrNoIdentity", err)
	}
}

func TestIssuedWithoutKeyIsNoTLSCertificate(t *testing.T) {
	f := newFixture(t)
	_, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	is, err := f.a.IssueClient(user(f.a, "u-alice00000"), csrPEM, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.TLSCertificate(); !errors.Is(err, ca.ErrNoKey) {
		t.Errorf("TLSCertificate: %v, want ErrNoKey", err)
	}
	if _, err := f.a.IssueClient(user(f.a, "u-alice00000"), csrPEM, -time.Hour); err == nil {
		t.Error("accepted a negative validity")
	}
}

func TestIntermediateIsSafeForConcurrentUse(t *testing.T) {
	f := newFixture(t)
	_, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for n := range 8 {
		wg.Go(func() {
			if _, err := f.a.IssueClient(user(f.a, "u-alice00000"), csrPEM, 0); err != nil {
				errs <- err
			}
			if _, err := f.a.IssueServer(spu(f.a, string(rune('0'+n))), nil, nil, 0); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func pemBlocks(t *testing.T, data []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, b.Bytes)
	}
}

func pemDER(t *testing.T, data []byte) []byte {
	t.Helper()
	blocks := pemBlocks(t, data)
	if len(blocks) == 0 {
		t.Fatal("no PEM block")
	}
	return blocks[0]
}

// parseCert parses the first certificate of data.
func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(pemDER(t, data))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
