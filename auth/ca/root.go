package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
	"go.step.sm/crypto/x509util"

	"github.com/spatehq/spate/auth/identity"
)

// Root is the root CA, held by the control plane. It signs the
// intermediates of clusters and the control plane's own server
// certificate. It is safe for concurrent use.
type Root struct {
	cert *x509.Certificate
	iss  *issuer
}

// NewRoot creates a root CA: a new ECDSA P-256 key and a self-signed
// certificate named commonName, valid for 10 years (from one minute ago).
// It returns them PEM encoded, for LoadRoot.
func NewRoot(commonName string) (certPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, errors.New("ca: new root: empty common name")
	}
	key, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: new root: generate key: %w", err)
	}
	data := x509util.NewTemplateData()
	data.SetSubject(x509util.Subject{CommonName: commonName})
	now := time.Now()
	cert, err := createCA(x509util.DefaultRootTemplate, data, key.Public(), nil, key, now, now.Add(rootValidity))
	if err != nil {
		return nil, nil, fmt.Errorf("ca: new root: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(cert), keyPEM, nil
}

// createCA signs a CA certificate for pub from an x509util template. A nil
// parent makes it self-signed.
func createCA(tmpl string, data x509util.TemplateData, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer, now, notAfter time.Time) (*x509.Certificate, error) {
	c, err := x509util.NewCertificateFromX509(&x509.Certificate{PublicKey: pub}, x509util.WithTemplate(tmpl, data))
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	t := c.GetCertificate()
	t.NotBefore = now.Add(-Backdate).Truncate(time.Second)
	t.NotAfter = notAfter.Truncate(time.Second)
	if parent == nil {
		parent = t
	} else if t.NotAfter.After(parent.NotAfter) {
		t.NotAfter = parent.NotAfter
	}
	cert, err := x509util.CreateCertificate(t, parent, pub, signer)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return cert, nil
}

// LoadRoot reads a root CA written by NewRoot. It checks that the
// certificate is a self-signed CA and that the key is its key.
func LoadRoot(certPEM, keyPEM []byte) (*Root, error) {
	cert, key, err := loadPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: load root: %w", err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("ca: load root: certificate %q is not self-signed: %w", cert.Subject.CommonName, err)
	}
	iss, err := newIssuer(cert, cert, key, nil)
	if err != nil {
		return nil, err
	}
	return &Root{cert: cert, iss: iss}, nil
}

// loadPair parses a CA certificate and its private key and checks that
// they belong together.
func loadPair(certPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	cert, err := pemutil.ParseCertificate(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("certificate %q is not a CA", cert.Subject.CommonName)
	}
	k, err := pemutil.ParseKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("key: %w", err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("key: %T cannot sign", k)
	}
	if err := keyutil.VerifyPair(cert.PublicKey, key); err != nil {
		return nil, nil, fmt.Errorf("key does not match certificate %q: %w", cert.Subject.CommonName, err)
	}
	return cert, key, nil
}

// CertPEM returns the root certificate, PEM: what clients of the control
// plane and SPUs (--control-plane-ca) trust.
func (r *Root) CertPEM() []byte { return encodeCert(r.cert) }

// Pool returns a new pool holding only the root. It accepts the control
// plane's certificate and the leaves of every cluster (whose chains carry
// their intermediate): use it on the control plane, never on an SPU.
func (r *Root) Pool() *x509.CertPool { return poolOf(r.cert) }

// NewIntermediate creates the CA of one cluster of a tenant: a new ECDSA
// P-256 key and a certificate signed by r, valid for 5 years but never
// past the root, MaxPathLen 0, with O = tenant and OU = cluster. It
// returns them PEM encoded, for LoadIntermediate.
func (r *Root) NewIntermediate(tenant, cluster string) (certPEM, keyPEM []byte, err error) {
	if err := identity.ValidID(tenant); err != nil {
		return nil, nil, fmt.Errorf("ca: new intermediate: tenant: %w", err)
	}
	if err := identity.ValidID(cluster); err != nil {
		return nil, nil, fmt.Errorf("ca: new intermediate: cluster: %w", err)
	}
	now := r.iss.now()
	if !now.Before(r.cert.NotAfter) {
		return nil, nil, fmt.Errorf("ca: new intermediate: %w: root expired at %v", ErrIssuerExpired, r.cert.NotAfter)
	}
	key, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: new intermediate: generate key: %w", err)
	}
	data := x509util.NewTemplateData()
	data.SetSubject(x509util.Subject{
		CommonName:         "Spate cluster " + cluster,
		Organization:       []string{tenant},
		OrganizationalUnit: []string{cluster},
	})
	cert, err := createCA(x509util.DefaultIntermediateTemplate, data, key.Public(), r.cert, r.iss.key, now, now.Add(intermediateValidity))
	if err != nil {
		return nil, nil, fmt.Errorf("ca: new intermediate: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(cert), keyPEM, nil
}

// IssueServer issues the control plane's certificate, signed by the root,
// for server and client authentication: a new ECDSA P-256 key, URI SAN
// id, and the given DNS names and IP addresses. A zero validity means
// DefaultServerValidity. The chain is the leaf alone.
func (r *Root) IssueServer(id identity.Identity, dnsNames []string, ips []net.IP, validity time.Duration) (*Issued, error) {
	return r.iss.signNewKey(serverSpec(id, dnsNames, ips, validity))
}
