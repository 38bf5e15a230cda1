package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/oauth"
	"github.com/spatehq/spate/control-plane/internal/store"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
	"github.com/spatehq/spate/internal/h2c"
)

// initCloud prepares what a secure control plane needs before it serves:
// the tenancy store, the certificate authorities and the operator's key.
func (s *Server) initCloud() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.tenancy = tenancy.New(s.client)
	p, err := loadPKI(ctx, s.tenancy, s.cfg.TLSHosts)
	if err != nil {
		return err
	}
	s.pki = p
	if _, err := p.serverCertificate(); err != nil {
		return err
	}
	s.keys = token.NewKeyring()
	if s.cfg.DataDir != "" {
		// Public: what clients on this machine trust the control plane by.
		if err := os.WriteFile(filepath.Join(s.cfg.DataDir, RootCAFile), p.root.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("write the root CA: %w", err)
		}
	}
	return s.writeOperatorKey(ctx)
}

// RootCAFile is the file in the data directory where the control plane
// writes its root CA certificate at every start.
const RootCAFile = "root-ca.pem"

// writeOperatorKey creates an operator API key and writes it to
// OperatorKeyFile, unless that file exists.
func (s *Server) writeOperatorKey(ctx context.Context) error {
	path := s.cfg.OperatorKeyFile
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	id, full, hash := secret.NewAPIKey()
	k := tenancy.APIKey{ID: id, Tenant: OperatorTenant, Kind: identity.Operator, Principal: "operator", Hash: hash, Description: "operator key written to " + path, CreatedAt: time.Now()}
	if err := s.tenancy.CreateAPIKey(ctx, k); err != nil {
		return fmt.Errorf("create the operator key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write the operator key: %w", err)
	}
	if err := os.WriteFile(path, []byte(full+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the operator key: %w", err)
	}
	s.logger.Info("operator key written", "file", path, "key", id)
	return nil
}

// loadKeys reads the token signing keys; the first replica ever to start
// creates one, so tokens can be issued at once.
func (s *Server) loadKeys(ctx context.Context) error {
	raw, rev, err := s.tenancy.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	if len(raw) == 0 {
		k, err := token.NewKey()
		if err != nil {
			return err
		}
		b, err := token.MarshalKey(k)
		if err != nil {
			return err
		}
		switch err := s.tenancy.PutSigningKeysIf(ctx, [][]byte{b}, rev); {
		case err == nil:
			raw = [][]byte{b}
		case errors.Is(err, tenancy.ErrConflict):
			if raw, _, err = s.tenancy.SigningKeys(ctx); err != nil {
				return fmt.Errorf("read signing keys: %w", err)
			}
		default:
			return fmt.Errorf("store signing key: %w", err)
		}
	}
	s.setKeys(raw)
	return nil
}

func (s *Server) setKeys(raw [][]byte) {
	keys := make([]token.Key, 0, len(raw))
	for _, b := range raw {
		k, err := token.UnmarshalKey(b)
		if err != nil {
			s.logger.Error("unreadable signing key skipped", "err", err)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) > 0 {
		s.keys.Set(keys...)
	}
}

// followKeys applies signing-key changes made by the leading replica.
func (s *Server) followKeys(ctx context.Context) {
	for raw := range s.tenancy.WatchSigningKeys(ctx) {
		s.setKeys(raw)
	}
}

// rotateKeys adds a new signing key when the newest is older than
// KeyRotation and drops keys that can have signed no live token, while
// this replica leads. Old keys keep verifying until the tokens they signed
// expire, so nobody is logged out.
func (s *Server) rotateKeys(ctx context.Context) {
	for {
		next := s.cfg.KeyRotation
		if err := s.rotateOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.logger.Error("rotate signing keys", "err", err)
			next = time.Minute
		}
		if signer := s.keys.Signer(); !signer.Created.IsZero() {
			next = min(next, max(time.Until(signer.Created.Add(s.cfg.KeyRotation)), time.Second))
		}
		store.Sleep(ctx, next)
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Server) rotateOnce(ctx context.Context, now time.Time) error {
	raw, rev, err := s.tenancy.SigningKeys(ctx)
	if err != nil {
		return err
	}
	var keys []token.Key
	for _, b := range raw {
		if k, err := token.UnmarshalKey(b); err == nil {
			keys = append(keys, k)
		}
	}
	newest := time.Time{}
	for _, k := range keys {
		if k.Created.After(newest) {
			newest = k.Created
		}
	}
	if now.Sub(newest) < s.cfg.KeyRotation {
		return nil
	}
	fresh, err := token.NewKey()
	if err != nil {
		return err
	}
	kept := []token.Key{fresh}
	for _, k := range keys {
		// A key stopped signing when the next one was made, at most
		// KeyRotation after it was created; tokens it signed expire
		// AccessTokenTTL later.
		if now.Sub(k.Created) < s.cfg.KeyRotation+s.cfg.AccessTokenTTL+time.Minute || k.Created.Equal(newest) {
			kept = append(kept, k)
		}
	}
	out := make([][]byte, 0, len(kept))
	for _, k := range kept {
		b, err := token.MarshalKey(k)
		if err != nil {
			return err
		}
		out = append(out, b)
	}
	if err := s.tenancy.PutSigningKeysIf(ctx, out, rev); err != nil {
		return err
	}
	s.logger.Info("signing key rotated", "kid", fresh.KID, "keys", len(out))
	return nil
}

// newOAuth returns the handler of the OAuth endpoints and the sign-in page.
func (s *Server) newOAuth(issuer string) http.Handler {
	s.verifier = token.NewVerifier(issuer, s.keys)
	s.oauthServer = oauth.New(oauth.Config{Issuer: issuer, Store: s.tenancy, Keys: s.keys, AccessTTL: s.cfg.AccessTokenTTL, Logger: s.logger.With("component", "oauth")})
	return s.oauthServer.Handler()
}

// tlsServer returns the HTTPS server: TLS 1.3, HTTP/2 and HTTP/1.1, a
// certificate from the root CA, and client certificates of any cluster
// verified when offered.
func (s *Server) tlsServer(ctx context.Context) *http.Server {
	tc := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.pki.serverCertificate() },
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      s.pki.root.Pool(),
		NextProtos:     []string{"h2", "http/1.1"},
	}
	return h2c.NewTLSServer(s.handler, ctx, s.logger, nil, tc)
}

// RootCA returns the PEM of the root CA that the control plane's
// certificate chains to, or nil on an insecure control plane.
func (s *Server) RootCA() []byte {
	if s.pki == nil {
		return nil
	}
	return s.pki.root.CertPEM()
}

// OperatorKeyFile returns where the operator's API key was written.
func (s *Server) OperatorKeyFile() string { return s.cfg.OperatorKeyFile }
