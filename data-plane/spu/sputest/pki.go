package sputest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/data-plane/spu"
)

// CA is a certificate authority for tests, shaped like Spate's: a root,
// and one intermediate per cluster (MaxPathLen 0) that issues the SPUs'
// and clients' leaves.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CertPEM is Cert in PEM.
	CertPEM []byte
	// Parent is the root for an intermediate, nil for the root.
	Parent *CA
}

// NewRootCA returns a new self-signed root CA valid for a day.
func NewRootCA(t testing.TB) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "spate test root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return newCA(t, tmpl, nil)
}

// NewIntermediate returns a cluster CA under the root ca.
func (ca *CA) NewIntermediate(t testing.TB, tenant, cluster string) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "spate cluster " + cluster, Organization: []string{tenant}, OrganizationalUnit: []string{cluster}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return newCA(t, tmpl, ca)
}

func newCA(t testing.TB, tmpl *x509.Certificate, parent *CA) *CA {
	t.Helper()
	key := newKey(t)
	tmpl.SerialNumber = serial(t)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der), Parent: parent}
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a leaf certificate to issue.
type Leaf struct {
	// ID is the identity in the URI SAN.
	ID identity.Identity
	// Server adds server auth, DNS localhost and IP 127.0.0.1 (as for an
	// SPU or the control plane); client auth is always allowed.
	Server bool
	// NotBefore and NotAfter default to an hour ago and an hour ahead.
	NotBefore, NotAfter time.Time
}

// Issued is a leaf with its chain (leaf, then the issuing intermediate).
type Issued struct {
	Cert     tls.Certificate
	ChainPEM []byte
	KeyPEM   []byte
}

// Issue signs a leaf.
func (ca *CA) Issue(t testing.TB, l Leaf) Issued {
	t.Helper()
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(time.Hour)
	}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: l.ID.Principal, Organization: []string{l.ID.Tenant}, OrganizationalUnit: []string{l.ID.Cluster}},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{l.ID.URI()},
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	chain := pemBlock("CERTIFICATE", der)
	if ca.Parent != nil {
		chain = append(chain, ca.CertPEM...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pemBlock("PRIVATE KEY", kder)
	cert, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return Issued{Cert: cert, ChainPEM: chain, KeyPEM: keyPEM}
}

// ClientTLS returns a client configuration presenting a fresh certificate
// for id from ca and trusting only ca for servers: what a client of the
// cluster uses to reach its SPUs.
func (ca *CA) ClientTLS(t testing.TB, id identity.Identity) *tls.Config {
	t.Helper()
	is := ca.Issue(t, Leaf{ID: id})
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool(), Certificates: []tls.Certificate{is.Cert}}
}

// SPUFiles issues the certificate of SPU id (identity
// spate://<tenant>/<cluster>/spu/spu-<id>, where tenant and cluster are
// the intermediate cluster's) and writes it, its key, the cluster CA and
// the root CA into dir (a new temporary directory when empty).
func SPUFiles(t testing.TB, cluster *CA, id int32, dir string) spu.TLS {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	is := cluster.Issue(t, Leaf{ID: SPUIdentity(cluster, id), Server: true})
	files := spu.TLS{
		CertFile:           filepath.Join(dir, "spu.pem"),
		KeyFile:            filepath.Join(dir, "spu.key"),
		ClusterCAFile:      filepath.Join(dir, "cluster-ca.pem"),
		ControlPlaneCAFile: filepath.Join(dir, "root-ca.pem"),
	}
	WriteKeyPair(t, files, is)
	root := cluster
	for root.Parent != nil {
		root = root.Parent
	}
	writeFile(t, files.ClusterCAFile, cluster.CertPEM)
	writeFile(t, files.ControlPlaneCAFile, root.CertPEM)
	return files
}

// SPUIdentity is the identity of SPU id of the cluster whose CA is
// cluster (its tenant and cluster are the certificate's O and OU).
func SPUIdentity(cluster *CA, id int32) identity.Identity {
	return identity.Identity{Tenant: cluster.Cert.Subject.Organization[0], Cluster: cluster.Cert.Subject.OrganizationalUnit[0], Kind: identity.SPU, Principal: "spu-" + strconv.Itoa(int(id))}
}

// WriteKeyPair writes is over the certificate and key files of files.
func WriteKeyPair(t testing.TB, files spu.TLS, is Issued) {
	t.Helper()
	writeFile(t, files.KeyFile, is.KeyPEM)
	writeFile(t, files.CertFile, is.ChainPEM)
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
