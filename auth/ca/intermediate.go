package ca

import (
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"github.com/spatehq/spate/auth/identity"
)

// Intermediate is the CA of one cluster of a tenant. It issues the
// cluster's SPU certificates and its clients' certificates, only for
// identities of its own tenant and cluster. It is safe for concurrent use.
type Intermediate struct {
	tenant, cluster string
	cert            *x509.Certificate
	iss             *issuer
}

// LoadIntermediate reads an intermediate written by Root.NewIntermediate
// and checks that it is a CA signed by root, that the key is its key and
// that its subject names a tenant (O) and a cluster (OU).
func LoadIntermediate(certPEM, keyPEM []byte, root *Root) (*Intermediate, error) {
	cert, key, err := loadPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("ca: load intermediate: %w", err)
	}
	if err := cert.CheckSignatureFrom(root.cert); err != nil {
		return nil, fmt.Errorf("ca: load intermediate: %q is not signed by root %q: %w", cert.Subject.CommonName, root.cert.Subject.CommonName, err)
	}
	if len(cert.Subject.Organization) != 1 || len(cert.Subject.OrganizationalUnit) != 1 {
		return nil, fmt.Errorf("ca: load intermediate: %q: subject must name one tenant (O) and one cluster (OU)", cert.Subject.CommonName)
	}
	tenant, cluster := cert.Subject.Organization[0], cert.Subject.OrganizationalUnit[0]
	if err := identity.ValidID(tenant); err != nil {
		return nil, fmt.Errorf("ca: load intermediate: tenant: %w", err)
	}
	if err := identity.ValidID(cluster); err != nil {
		return nil, fmt.Errorf("ca: load intermediate: cluster: %w", err)
	}
	iss, err := newIssuer(root.cert, cert, key, []*x509.Certificate{cert})
	if err != nil {
		return nil, err
	}
	return &Intermediate{tenant: tenant, cluster: cluster, cert: cert, iss: iss}, nil
}

// Tenant returns the id of the tenant whose cluster this CA serves.
func (i *Intermediate) Tenant() string { return i.tenant }

// Cluster returns the id of the cluster this CA serves.
func (i *Intermediate) Cluster() string { return i.cluster }

// CertPEM returns the intermediate certificate, PEM: the cluster CA that
// SPUs (--cluster-ca) and their clients trust.
func (i *Intermediate) CertPEM() []byte { return encodeCert(i.cert) }

// Pool returns a new pool holding only this intermediate, not the root:
// an SPU's tls.Config.ClientCAs and a client's RootCAs for the cluster's
// SPUs. It accepts no certificate of another cluster.
func (i *Intermediate) Pool() *x509.CertPool { return poolOf(i.cert) }

// IssueServer issues an SPU certificate for server and client
// authentication: a new ECDSA P-256 key, URI SAN id, DNS names
// "localhost" and dnsNames, IP addresses 127.0.0.1 and ips. A zero
// validity means DefaultServerValidity. id must belong to the
// intermediate's tenant and cluster (ErrWrongIdentity).
func (i *Intermediate) IssueServer(id identity.Identity, dnsNames []string, ips []net.IP, validity time.Duration) (*Issued, error) {
	if err := i.owns(id); err != nil {
		return nil, err
	}
	dnsNames = append([]string{"localhost"}, dnsNames...)
	ips = append([]net.IP{net.IPv4(127, 0, 0, 1)}, ips...)
	return i.iss.signNewKey(serverSpec(id, dnsNames, ips, validity))
}

// IssueClient issues a client certificate (client authentication only)
// for the public key of the PEM certificate request csrPEM, after checking
// the request's signature (ErrInvalidCSR) and key (ErrUnsupportedKey:
// ECDSA P-256, Ed25519 or RSA of 2048 to 8192 bits). Everything the
// request names (subject, SANs, extensions) is ignored: the certificate
// names id alone. A zero validity means DefaultClientValidity. id must
// belong to the intermediate's tenant and cluster (ErrWrongIdentity). The
// result's KeyPEM is nil.
func (i *Intermediate) IssueClient(id identity.Identity, csrPEM []byte, validity time.Duration) (*Issued, error) {
	if err := i.owns(id); err != nil {
		return nil, err
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if validity == 0 {
		validity = DefaultClientValidity
	}
	return i.iss.sign(csr, leafSpec{
		id:       id,
		extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		validity: validity,
	})
}

func (i *Intermediate) owns(id identity.Identity) error {
	if id.Tenant != i.tenant || id.Cluster != i.cluster {
		return fmt.Errorf("%w: %s is not in tenant %s, cluster %s", ErrWrongIdentity, id, i.tenant, i.cluster)
	}
	return nil
}
