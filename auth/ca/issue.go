package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"

	"github.com/spatehq/spate/auth/identity"
)

const (
	// Backdate is how far before issuance a leaf becomes valid, to absorb
	// clock skew between the issuer and the verifier.
	Backdate = time.Minute

	// DefaultClientValidity is a client certificate's lifetime when
	// IssueClient is given a zero validity.
	DefaultClientValidity = 12 * time.Hour

	// DefaultServerValidity is a server certificate's lifetime when
	// IssueServer is given a zero validity.
	DefaultServerValidity = 30 * 24 * time.Hour

	rootValidity         = 10 * 365 * 24 * time.Hour
	intermediateValidity = 5 * 365 * 24 * time.Hour
	maxRSABits           = 8192
)

// Issued is a newly issued certificate.
type Issued struct {
	// ChainPEM is the leaf followed by its intermediate, if any (never the
	// root), as PEM CERTIFICATE blocks.
	ChainPEM []byte
	// KeyPEM is the leaf's private key (PEM PKCS #8), or nil when the
	// certificate was issued for a CSR and the requester holds the key.
	KeyPEM []byte
	// NotAfter is when the leaf expires.
	NotAfter time.Time
}

// TLSCertificate returns the chain and key as a tls.Certificate, ready for
// tls.Config.Certificates. It returns an error wrapping ErrNoKey when
// KeyPEM is nil.
func (is *Issued) TLSCertificate() (tls.Certificate, error) {
	if len(is.KeyPEM) == 0 {
		return tls.Certificate{}, ErrNoKey
	}
	c, err := tls.X509KeyPair(is.ChainPEM, is.KeyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca: load issued certificate: %w", err)
	}
	return c, nil
}

// NewKeyAndCSR generates an ECDSA P-256 key and a certificate request
// signed by it, both PEM: what a client sends to obtain a client
// certificate. The request names nothing; the issuer decides the names.
func NewKeyAndCSR() (keyPEM, csrPEM []byte, err error) {
	key, err := newLeafKey()
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create certificate request: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// issuer signs leaves with one CA certificate through an embedded
// smallstep authority. Its fields are set at construction and only read
// afterwards, so it is safe for concurrent use.
type issuer struct {
	cert  *x509.Certificate
	key   crypto.Signer
	auth  *authority.Authority
	chain []*x509.Certificate // appended after the leaf in ChainPEM
	now   func() time.Time    // time.Now; tests move it to issue in the past
}

func newIssuer(root, cert *x509.Certificate, key crypto.Signer, chain []*x509.Certificate) (*issuer, error) {
	auth, err := authority.NewEmbedded(
		authority.WithX509RootCerts(root),
		authority.WithX509Signer(cert, key),
	)
	if err != nil {
		return nil, fmt.Errorf("ca: start signing authority: %w", err)
	}
	return &issuer{cert: cert, key: key, auth: auth, chain: chain, now: time.Now}, nil
}

// leafSpec is what a leaf says besides its key.
type leafSpec struct {
	id       identity.Identity
	dnsNames []string
	ips      []net.IP
	extUsage []x509.ExtKeyUsage
	validity time.Duration
}

// sign issues a leaf for csr's public key, with everything else taken from
// spec. csr's signature must have been checked.
func (s *issuer) sign(csr *x509.CertificateRequest, spec leafSpec) (*Issued, error) {
	if err := spec.id.Validate(); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if spec.validity < 0 {
		return nil, fmt.Errorf("ca: negative validity %v", spec.validity)
	}
	now := s.now()
	if now.Before(s.cert.NotBefore) || !now.Before(s.cert.NotAfter) {
		return nil, fmt.Errorf("%w: %q valid from %v to %v", ErrIssuerExpired, s.cert.Subject.CommonName, s.cert.NotBefore, s.cert.NotAfter)
	}
	notBefore := now.Add(-Backdate).Truncate(time.Second)
	notAfter := now.Add(spec.validity).Truncate(time.Second)
	if notAfter.After(s.cert.NotAfter) {
		notAfter = s.cert.NotAfter
	}
	if !notAfter.After(notBefore) {
		return nil, fmt.Errorf("ca: validity %v is too short", spec.validity)
	}
	cluster := spec.id.Cluster
	if cluster == "" {
		cluster = identity.NoCluster
	}
	keyUsage := x509.KeyUsageDigitalSignature
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		keyUsage |= x509.KeyUsageKeyEncipherment // TLS 1.2 RSA key exchange
	}
	// Replace the whole template: nothing of the request but its key
	// reaches the certificate (no subject, SANs or extensions).
	build := provisioner.CertificateModifierFunc(func(c *x509.Certificate, _ provisioner.SignOptions) error {
		*c = x509.Certificate{
			PublicKey:          c.PublicKey,
			PublicKeyAlgorithm: c.PublicKeyAlgorithm,
			Subject: pkix.Name{
				CommonName:         spec.id.Principal,
				Organization:       []string{spec.id.Tenant},
				OrganizationalUnit: []string{cluster},
			},
			URIs:                  []*url.URL{spec.id.URI()},
			DNSNames:              spec.dnsNames,
			IPAddresses:           spec.ips,
			KeyUsage:              keyUsage,
			ExtKeyUsage:           spec.extUsage,
			BasicConstraintsValid: true,
			NotBefore:             notBefore,
			NotAfter:              notAfter,
		}
		return nil
	})
	opts := provisioner.SignOptions{
		NotBefore: provisioner.NewTimeDuration(notBefore),
		NotAfter:  provisioner.NewTimeDuration(notAfter),
	}
	// No I/O happens here (no webhooks, no database), so no context to
	// pass down.
	certs, err := s.auth.SignWithContext(context.Background(), csr, opts, build)
	if err != nil {
		return nil, fmt.Errorf("ca: sign certificate for %s: %w", spec.id, err)
	}
	leaf := certs[0]
	var chain []byte
	for _, c := range append([]*x509.Certificate{leaf}, s.chain...) {
		chain = append(chain, encodeCert(c)...)
	}
	return &Issued{ChainPEM: chain, NotAfter: leaf.NotAfter}, nil
}

// signNewKey generates a P-256 key and issues a leaf for it.
func (s *issuer) signNewKey(spec leafSpec) (*Issued, error) {
	key, err := newLeafKey()
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create certificate request: %w", err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse certificate request: %w", err)
	}
	is, err := s.sign(csr, spec)
	if err != nil {
		return nil, err
	}
	if is.KeyPEM, err = marshalKey(key); err != nil {
		return nil, err
	}
	return is, nil
}

// serverSpec is a server certificate's spec (server and client auth).
func serverSpec(id identity.Identity, dnsNames []string, ips []net.IP, validity time.Duration) leafSpec {
	if validity == 0 {
		validity = DefaultServerValidity
	}
	return leafSpec{
		id:       id,
		dnsNames: dedup(dnsNames),
		ips:      dedupIPs(ips),
		extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		validity: validity,
	}
}

func dedup(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func dedupIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}

// parseCSR reads a PEM certificate request, checks its signature and its
// key type.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	csr, err := pemutil.ParseCertificateRequest(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidCSR, err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// checkKey accepts ECDSA P-256, Ed25519 and RSA of 2048 to 8192 bits.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w (got ECDSA %s)", ErrUnsupportedKey, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > maxRSABits {
			return fmt.Errorf("%w (got RSA %d bits)", ErrUnsupportedKey, bits)
		}
	default:
		return fmt.Errorf("%w (got %T)", ErrUnsupportedKey, pub)
	}
	return nil
}

func newLeafKey() (crypto.Signer, error) {
	key, err := keyutil.GenerateSigner("EC", "P-256", 0)
	if err != nil {
		return nil, fmt.Errorf("ca: generate key: %w", err)
	}
	return key, nil
}

func marshalKey(key crypto.Signer) ([]byte, error) {
	block, err := pemutil.Serialize(key, pemutil.WithPKCS8(true))
	if err != nil {
		return nil, fmt.Errorf("ca: encode key: %w", err)
	}
	return pem.EncodeToMemory(block), nil
}

func encodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}
