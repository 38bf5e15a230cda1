// Package identity names who is calling: the tenant, the cluster, the kind
// of principal and its id. Certificates carry an Identity as a URI SAN, so
// an SPU or the control plane learns the caller's identity from the TLS
// handshake alone:
//
//	spate://<tenant>/<cluster>/<kind>/<principal>
//
// Tenant, cluster and principal ids are lowercase letters, digits and '-'
// (see ValidID); the cluster is "-" for identities that belong to no
// cluster (the control plane's own server certificate, the operator).
package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of identities in certificates.
const Scheme = "spate"

// NoCluster stands in the cluster position of identities that belong to no
// cluster.
const NoCluster = "-"

// Kind is the kind of a principal.
type Kind string

// The kinds of principal.
const (
	// User is a person, a member of a tenant.
	User Kind = "user"
	// ServiceAccount is a non-person principal of a tenant, with grants.
	ServiceAccount Kind = "service-account"
	// SPU is a streaming processing unit of a cluster.
	SPU Kind = "spu"
	// ControlPlane is the control plane itself.
	ControlPlane Kind = "control-plane"
	// Operator runs the service and may create tenants; it belongs to no
	// tenant.
	Operator Kind = "operator"
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case User, ServiceAccount, SPU, ControlPlane, Operator:
		return true
	}
	return false
}

// Identity is a principal of a tenant, seen from one cluster.
type Identity struct {
	Tenant    string
	Cluster   string // NoCluster when the identity belongs to no cluster
	Kind      Kind
	Principal string
}

// String returns the identity's URI.
func (id Identity) String() string { return id.URI().String() }

// URI returns spate://tenant/cluster/kind/principal.
func (id Identity) URI() *url.URL {
	cluster := id.Cluster
	if cluster == "" {
		cluster = NoCluster
	}
	return &url.URL{Scheme: Scheme, Host: id.Tenant, Path: "/" + cluster + "/" + string(id.Kind) + "/" + id.Principal}
}

// Validate reports the first malformed field.
func (id Identity) Validate() error {
	if err := ValidID(id.Tenant); err != nil {
		return fmt.Errorf("identity: tenant: %w", err)
	}
	if id.Cluster != NoCluster && id.Cluster != "" {
		if err := ValidID(id.Cluster); err != nil {
			return fmt.Errorf("identity: cluster: %w", err)
		}
	}
	if !id.Kind.Valid() {
		return fmt.Errorf("identity: unknown kind %q", id.Kind)
	}
	if err := ValidID(id.Principal); err != nil {
		return fmt.Errorf("identity: principal: %w", err)
	}
	return nil
}

// ErrNoIdentity is returned by FromCertificate for a certificate that
// carries no Spate identity.
var ErrNoIdentity = errors.New("identity: certificate names no spate:// identity")

// Parse reads an identity URI.
func Parse(u *url.URL) (Identity, error) {
	if u.Scheme != Scheme {
		return Identity{}, fmt.Errorf("identity: %q is not a %s:// URI", u, Scheme)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 3 || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" {
		return Identity{}, fmt.Errorf("identity: %q: want %s://tenant/cluster/kind/principal", u, Scheme)
	}
	id := Identity{Tenant: u.Host, Cluster: parts[0], Kind: Kind(parts[1]), Principal: parts[2]}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// FromCertificate returns the identity named by cert's only spate:// URI
// SAN. It does not verify the certificate: call it on a verified chain's
// leaf.
func FromCertificate(cert *x509.Certificate) (Identity, error) {
	var found []*url.URL
	for _, u := range cert.URIs {
		if u.Scheme == Scheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, ErrNoIdentity
	case 1:
		return Parse(found[0])
	default:
		return Identity{}, errors.New("identity: certificate names more than one spate:// identity")
	}
}

// ValidID reports whether s is a valid id: 1 to 63 lowercase letters,
// digits and '-', starting with a letter or digit.
func ValidID(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("id %q: must be 1 to 63 characters", s)
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return fmt.Errorf("id %q: use lowercase letters, digits and '-', starting with a letter or digit", s)
		}
	}
	return nil
}
