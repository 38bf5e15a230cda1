// Package certs loads an SPU's certificate, key and trust anchors from PEM
// files and keeps the certificate current: a KeyPair re-reads its files
// when they change on disk, so that a re-issued certificate takes effect
// on new connections without a restart.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/spatehq/spate/auth/identity"
)

// DefaultCheckInterval is how often, at most, a KeyPair looks at its files.
const DefaultCheckInterval = 10 * time.Second

// KeyPair is a certificate chain and its key read from two PEM files. It
// is safe for concurrent use: GetCertificate and GetClientCertificate go
// in a tls.Config of a server and of a client.
type KeyPair struct {
	certFile, keyFile string
	logger            *slog.Logger

	// id is the identity of the first certificate; a reloaded one must
	// name the same.
	id identity.Identity

	mu sync.Mutex // guards the fields below
	// interval bounds how often the files are looked at.
	interval time.Duration
	cert     *tls.Certificate
	stamp    [2]fileStamp
	checked  time.Time
}

// fileStamp is what tells a changed file from an unchanged one.
type fileStamp struct {
	mod  time.Time
	size int64
}

// LoadKeyPair reads a PEM certificate chain (leaf first) and its PEM key.
// The leaf must name a spate:// identity.
func LoadKeyPair(certFile, keyFile string, logger *slog.Logger) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile, interval: DefaultCheckInterval, logger: logger}
	cert, stamp, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cert, k.stamp, k.checked = cert, stamp, time.Now()
	k.id, _ = identity.FromCertificate(cert.Leaf) // checked by load
	return k, nil
}

func (k *KeyPair) load() (*tls.Certificate, [2]fileStamp, error) {
	var stamp [2]fileStamp
	for i, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, stamp, fmt.Errorf("certs: %w", err)
		}
		stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("certs: load %s and %s: %w", k.certFile, k.keyFile, err)
	}
	id, err := identity.FromCertificate(cert.Leaf)
	if err != nil {
		return nil, stamp, fmt.Errorf("certs: %s: %w", k.certFile, err)
	}
	if k.id != (identity.Identity{}) && id != k.id {
		return nil, stamp, fmt.Errorf("certs: %s now names %s, not %s; restart to change identity", k.certFile, id, k.id)
	}
	return &cert, stamp, nil
}

// SetCheckInterval changes how often, at most, the files are looked at
// (DefaultCheckInterval).
func (k *KeyPair) SetCheckInterval(d time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.interval = d
}

// Certificate returns the current certificate, reloading it first when the
// files changed and the last look is at least the check interval old. A reload
// that fails is logged and the previous certificate kept.
func (k *KeyPair) Certificate() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	if now.Sub(k.checked) < k.interval {
		return k.cert
	}
	k.checked = now
	var stamp [2]fileStamp
	for i, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			k.logger.Warn("cannot read the TLS certificate files; keeping the loaded certificate", "err", err)
			return k.cert
		}
		stamp[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	if stamp == k.stamp {
		return k.cert
	}
	cert, stamp, err := k.load()
	if err != nil {
		// Possibly half written: look again at the next check.
		k.logger.Warn("cannot reload the TLS certificate; keeping the loaded certificate", "err", err)
		return k.cert
	}
	k.cert, k.stamp = cert, stamp
	k.logger.Info("reloaded the TLS certificate", "cert", k.certFile, "not_after", cert.Leaf.NotAfter)
	return k.cert
}

// Identity returns the identity the certificate names; a reloaded
// certificate must name the same one.
func (k *KeyPair) Identity() identity.Identity {
	return k.id
}

// GetCertificate is for tls.Config.GetCertificate.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// LoadPool reads a PEM file of one or more CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ErrNoClientCertificate means a TLS connection carried no verified client
// certificate.
var ErrNoClientCertificate = errors.New("certs: no verified client certificate")

// PeerIdentity returns the identity of a verified client certificate.
func PeerIdentity(state *tls.ConnectionState) (identity.Identity, error) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return identity.Identity{}, ErrNoClientCertificate
	}
	return identity.FromCertificate(state.VerifiedChains[0][0])
}
