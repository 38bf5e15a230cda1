package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/control-plane/internal/provision"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// Certificate lifetimes.
const (
	// serverCertValidity is the life of the control plane's own server
	// certificate, issued again at every start and renewed at half life.
	serverCertValidity = 30 * 24 * time.Hour
	// spuCertValidity is the life of an SPU's certificate, issued again
	// whenever the provisioner (re)starts the SPU.
	spuCertValidity = 30 * 24 * time.Hour
	// DefaultClientCertValidity is the life of a client certificate.
	DefaultClientCertValidity = 12 * time.Hour
)

// pki holds the control plane's certificate authorities: the root, kept in
// etcd and created by the first replica to start, and the per-cluster
// intermediates, loaded from the clusters' records on first use.
type pki struct {
	root   *ca.Root
	hosts  []string
	mu     sync.Mutex
	server *tls.Certificate // guarded by mu
	expiry time.Time        // of server, guarded by mu
	inter  map[string]*ca.Intermediate
}

// loadPKI reads the root CA from etcd, creating it on the very first start.
func loadPKI(ctx context.Context, ts *tenancy.Store, hosts []string) (*pki, error) {
	certPEM, keyPEM, err := ts.RootCA(ctx)
	if errors.Is(err, tenancy.ErrNotFound) {
		c, k, gerr := ca.NewRoot("Spate root CA")
		if gerr != nil {
			return nil, fmt.Errorf("create the root CA: %w", gerr)
		}
		switch cerr := ts.CreateRootCA(ctx, c, k); {
		case cerr == nil:
			certPEM, keyPEM, err = c, k, nil
		case errors.Is(cerr, tenancy.ErrExists): // another replica won
			certPEM, keyPEM, err = ts.RootCA(ctx)
		default:
			return nil, fmt.Errorf("store the root CA: %w", cerr)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read the root CA: %w", err)
	}
	root, err := ca.LoadRoot(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &pki{root: root, hosts: hosts, inter: map[string]*ca.Intermediate{}}, nil
}

// serverCertificate returns the control plane's server certificate,
// issuing a new one when none is left with more than half its life.
func (p *pki) serverCertificate() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.server != nil && time.Until(p.expiry) > serverCertValidity/2 {
		return p.server, nil
	}
	var dns []string
	var ips []net.IP
	for _, h := range p.hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	id := identity.Identity{Tenant: "operator", Cluster: identity.NoCluster, Kind: identity.ControlPlane, Principal: "control-plane"}
	is, err := p.root.IssueServer(id, dns, ips, serverCertValidity)
	if err != nil {
		return nil, fmt.Errorf("issue the control plane's certificate: %w", err)
	}
	cert, err := is.TLSCertificate()
	if err != nil {
		return nil, err
	}
	p.server, p.expiry = &cert, is.NotAfter
	return p.server, nil
}

// intermediate returns the CA of a cluster.
func (p *pki) intermediate(c tenancy.Cluster) (*ca.Intermediate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i, ok := p.inter[c.ID]; ok {
		return i, nil
	}
	i, err := ca.LoadIntermediate(c.CACertPEM, c.CAKeyPEM, p.root)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: load its CA: %w", c.ID, err)
	}
	p.inter[c.ID] = i
	return i, nil
}

// forget drops a deleted cluster's CA.
func (p *pki) forget(cluster string) {
	p.mu.Lock()
	delete(p.inter, cluster)
	p.mu.Unlock()
}

// spuCredentials returns what provisioned SPUs need to serve over mTLS.
func (p *pki) spuCredentials(c tenancy.Cluster) func(id int32) (provision.Credentials, error) {
	return func(id int32) (provision.Credentials, error) {
		i, err := p.intermediate(c)
		if err != nil {
			return provision.Credentials{}, err
		}
		who := identity.Identity{Tenant: c.Tenant, Cluster: c.ID, Kind: identity.SPU, Principal: fmt.Sprintf("spu-%d", id)}
		is, err := i.IssueServer(who, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, spuCertValidity)
		if err != nil {
			return provision.Credentials{}, fmt.Errorf("cluster %s: issue the certificate of SPU %d: %w", c.ID, id, err)
		}
		return provision.Credentials{CertPEM: is.ChainPEM, KeyPEM: is.KeyPEM, ClusterCAPEM: i.CertPEM(), ControlPlaneCAPEM: p.root.CertPEM()}, nil
	}
}
