package cloud

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	controlplanev1 "github.com/spatehq/spate/api/gen/spate/controlplane/v1"
	"github.com/spatehq/spate/auth/ca"
	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/client"
	"github.com/spatehq/spate/client/profile"
)

// UseCluster gets a client certificate for the cluster named cluster of
// the session's tenant: it makes an ECDSA P-256 key and a certificate
// request, has the control plane sign it (ClusterService.
// IssueClientCertificate) and returns a profile with the control plane's
// URL, the cluster's id, endpoints and CAs, the certificate chain, the key
// and its expiry. The key never leaves this process but in the profile:
// save it only in a file of mode 0600 (profile.Config.Save).
func UseCluster(ctx context.Context, s *Session, cluster string) (profile.Profile, error) {
	keyPEM, csrPEM, err := ca.NewKeyAndCSR()
	if err != nil {
		return profile.Profile{}, fmt.Errorf("cloud: make client key: %w", err)
	}
	resp, err := s.Clusters().IssueClientCertificate(ctx, connect.NewRequest(&controlplanev1.IssueClientCertificateRequest{
		Cluster: cluster,
		CsrPem:  csrPEM,
	}))
	if err != nil {
		return profile.Profile{}, err
	}
	m := resp.Msg
	c := m.GetCluster()
	if len(m.GetCertificateChainPem()) == 0 || len(m.GetClusterCaPem()) == 0 {
		return profile.Profile{}, fmt.Errorf("cloud: the control plane issued no certificate or cluster CA for cluster %q", cluster)
	}
	// The chain must go with our key; its leaf names who we are.
	tc, err := tls.X509KeyPair(m.GetCertificateChainPem(), keyPEM)
	if err != nil {
		return profile.Profile{}, fmt.Errorf("cloud: certificate issued for cluster %q: %w", cluster, err)
	}
	leaf := tc.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(tc.Certificate[0]); err != nil {
			return profile.Profile{}, fmt.Errorf("cloud: certificate issued for cluster %q: %w", cluster, err)
		}
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return profile.Profile{}, fmt.Errorf("cloud: certificate issued for cluster %q: %w", cluster, err)
	}
	p := profile.Profile{
		ControlPlane:      s.URL(),
		Tenant:            id.Tenant,
		Cluster:           cluster,
		ClusterID:         id.Cluster,
		ClusterCA:         profile.PEM(m.GetClusterCaPem()),
		RootCA:            profile.PEM(m.GetRootCaPem()),
		ClientCert:        profile.PEM(m.GetCertificateChainPem()),
		ClientKey:         profile.PEM(keyPEM),
		ClientCertExpires: leaf.NotAfter,
	}
	if c != nil {
		if c.GetName() != "" {
			p.Cluster = c.GetName()
		}
		if c.GetId() != "" {
			p.ClusterID = c.GetId()
		}
		p.SPUs = c.GetSpuEndpoints()
	}
	if m.GetExpiresAt() != nil && m.GetExpiresAt().AsTime().Before(p.ClientCertExpires) {
		p.ClientCertExpires = m.GetExpiresAt().AsTime()
	}
	return p, nil
}

// NeedsRenewal reports whether the profile's client certificate has less
// than a third of its lifetime left at now, or there is none, or it does
// not parse.
func NeedsRenewal(p profile.Profile, now time.Time) bool {
	leaf, err := leafOf(p)
	if err != nil {
		return true
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Sub(now) < life/3
}

// RenewIfNeeded renews the client certificate of *p through s when it has
// less than a third of its lifetime left (or there is none), replacing the
// profile's certificate, key, CAs and endpoints and keeping its control
// plane. It reports whether it renewed; the caller saves the profile.
func RenewIfNeeded(ctx context.Context, s *Session, p *profile.Profile) (bool, error) {
	if !NeedsRenewal(*p, time.Now()) {
		return false, nil
	}
	if p.Cluster == "" {
		return false, errors.New("cloud: the profile names no cluster: run `spate cloud cluster use NAME`")
	}
	np, err := UseCluster(ctx, s, p.Cluster)
	if err != nil {
		return false, fmt.Errorf("renew client certificate for cluster %q: %w", p.Cluster, err)
	}
	np.ControlPlane = p.ControlPlane
	*p = np
	return true, nil
}

// leafOf parses the first certificate of the profile's chain.
func leafOf(p profile.Profile) (*x509.Certificate, error) {
	if !p.HasTLS() {
		return nil, errors.New("cloud: profile has no client certificate")
	}
	tc, err := tls.X509KeyPair(p.ClientCert.Bytes(), p.ClientKey.Bytes())
	if err != nil {
		return nil, err
	}
	if tc.Leaf != nil {
		return tc.Leaf, nil
	}
	return x509.ParseCertificate(tc.Certificate[0])
}

// CertRenewer keeps the client certificate of a long-running Client fresh:
// its TLS configurations hand out the current certificate at each
// handshake, and a goroutine renews it through a Session at two thirds of
// its lifetime (retrying with a backoff on failure). Connections made
// before a renewal keep their certificate; SPUs check it at the handshake
// only. Close stops the goroutine.
//
//	r, err := cloud.NewCertRenewer(session, prof, nil)
//	c, err := client.FromProfile(prof, r.ClientOptions()...)
//	defer r.Close()
type CertRenewer struct {
	s       *Session
	onRenew func(profile.Profile, error)
	spuTLS  *tls.Config
	cpTLS   *tls.Config

	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu   sync.Mutex       // guards p, cert and leaf
	p    profile.Profile  // the newest profile
	cert *tls.Certificate // its certificate
	leaf *x509.Certificate
}

// minRenewWait bounds how often a CertRenewer renews, even when the
// control plane issues certificates already past two thirds of their life.
var minRenewWait = time.Second

// NewCertRenewer starts renewing the client certificate of p (which must
// have one, from UseCluster) through s. onRenew, if not nil, is called
// after each renewal attempt with the new profile (save it) or the error;
// it must not block for long.
func NewCertRenewer(s *Session, p profile.Profile, onRenew func(profile.Profile, error)) (*CertRenewer, error) {
	r := &CertRenewer{s: s, onRenew: onRenew, done: make(chan struct{})}
	if err := r.set(p); err != nil {
		return nil, err
	}
	spuTLS, cpTLS, err := client.ProfileTLS(p)
	if err != nil {
		return nil, err
	}
	for _, tc := range []*tls.Config{spuTLS, cpTLS} {
		tc.Certificates = nil
		tc.GetClientCertificate = r.GetClientCertificate
	}
	r.spuTLS, r.cpTLS = spuTLS, cpTLS
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(ctx)
	return r, nil
}

// set makes p current.
func (r *CertRenewer) set(p profile.Profile) error {
	cert, err := tls.X509KeyPair(p.ClientCert.Bytes(), p.ClientKey.Bytes())
	if err != nil {
		return fmt.Errorf("cloud: profile's client certificate: %w", err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("cloud: profile's client certificate: %w", err)
		}
	}
	r.mu.Lock()
	r.p, r.cert, r.leaf = p, &cert, leaf
	r.mu.Unlock()
	return nil
}

// GetClientCertificate returns the current certificate, for
// tls.Config.GetClientCertificate.
func (r *CertRenewer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// Profile returns the profile with the newest certificate.
func (r *CertRenewer) Profile() profile.Profile {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// SPUTLS returns the TLS configuration for the SPUs: the cluster CA as
// the only root, and the current certificate.
func (r *CertRenewer) SPUTLS() *tls.Config { return r.spuTLS.Clone() }

// ControlPlaneTLS returns the TLS configuration for the control plane.
func (r *CertRenewer) ControlPlaneTLS() *tls.Config { return r.cpTLS.Clone() }

// ClientOptions returns the client options that use the renewer's
// certificates, for client.FromProfile or client.New.
func (r *CertRenewer) ClientOptions() []client.Option {
	return []client.Option{client.WithSPUTLS(r.SPUTLS()), client.WithControlPlaneTLS(r.ControlPlaneTLS())}
}

// Close stops the renewals and waits for the goroutine. It returns nil.
func (r *CertRenewer) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// run renews at two thirds of each certificate's lifetime until ctx ends.
func (r *CertRenewer) run(ctx context.Context) {
	defer close(r.done)
	retry := minRenewWait
	for {
		r.mu.Lock()
		leaf, p := r.leaf, r.p
		r.mu.Unlock()
		at := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
		if err := sleep(ctx, max(time.Until(at), minRenewWait)); err != nil {
			return
		}
		for {
			np, err := UseCluster(ctx, r.s, p.Cluster)
			if err == nil {
				np.ControlPlane = p.ControlPlane
				err = r.set(np)
			}
			if ctx.Err() != nil {
				return
			}
			if r.onRenew != nil {
				r.onRenew(np, err)
			}
			if err == nil {
				retry = minRenewWait
				break
			}
			// Try again, more slowly, while the old certificate lasts.
			if err := sleep(ctx, retry); err != nil {
				return
			}
			retry = min(retry*2, time.Minute)
		}
	}
}
