package cloud

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/spatehq/spate/api/gen/spate/controlplane/v1/controlplanev1connect"
	"github.com/spatehq/spate/client"
)

// RefreshBefore is how long before its expiry a Session refreshes its
// access token.
const RefreshBefore = time.Minute

// ErrLoginRequired is returned (wrapped in a Connect Unauthenticated error)
// by Session.Token when the login expired or was revoked: sign in again.
var ErrLoginRequired = errors.New("cloud: the login expired or was revoked; run `spate cloud login`")

// Session is a login on one control plane: its URL, an HTTP client that
// trusts its certificate, and the tokens. It is a client.TokenSource that
// refreshes the access token RefreshBefore its expiry, once for all callers
// at a time. A Session is safe for concurrent use.
type Session struct {
	url string
	hc  *http.Client

	// onRefresh is called, without locks held, after each refresh.
	onRefresh func(Tokens)
	store     TokenStore // nil: tokens live in this process only

	tenants  controlplanev1connect.TenantServiceClient
	clusters controlplanev1connect.ClusterServiceClient
	auth     controlplanev1connect.AuthServiceClient

	mu         sync.Mutex    // guards tokens and refreshing
	tokens     Tokens        // the newest tokens
	refreshing chan struct{} // non-nil while a refresh runs; closed when it ends
	refreshErr error         // the outcome of the last refresh
}

var _ client.TokenSource = (*Session)(nil)

// SessionOption configures a Session.
type SessionOption func(*Session)

// OnRefresh sets a function called with the new tokens after every
// refresh, so that the caller saves the rotated refresh token (the old one
// no longer works). It runs in the goroutine that asked for a token.
func OnRefresh(fn func(Tokens)) SessionOption {
	return func(s *Session) { s.onRefresh = fn }
}

// TokenStore keeps a login's tokens where several processes share them,
// such as the CLI's config file. A Session with a store refreshes under the
// store's lock, starting from the stored tokens: when another process has
// refreshed in the meantime, it takes that process's tokens instead of
// spending a refresh token that was already used (which would make the
// control plane revoke the login).
type TokenStore interface {
	// Lock waits for the store's lock, or until ctx ends, and returns the
	// stored tokens (zero if none) and the function that releases the lock.
	Lock(ctx context.Context) (stored Tokens, unlock func(), err error)
	// Save stores new tokens; it is called with the lock held. A failure
	// does not fail the refresh: the session goes on with the new tokens.
	Save(Tokens) error
}

// WithStore makes the Session refresh through a TokenStore.
func WithStore(st TokenStore) SessionOption {
	return func(s *Session) { s.store = st }
}

// NewSession returns a Session on the control plane at cpURL, reached with
// hc (nil: NewHTTPClient(nil)), starting from tokens (from DeviceLogin,
// APIKeyLogin or a saved profile.Login). Tokens with no access token, or
// an expired one, are refreshed on first use.
func NewSession(cpURL string, hc *http.Client, tokens Tokens, opts ...SessionOption) *Session {
	if hc == nil {
		hc, _ = NewHTTPClient(nil)
	}
	s := &Session{url: strings.TrimRight(cpURL, "/"), hc: hc, tokens: tokens}
	for _, o := range opts {
		o(s)
	}
	ops := []connect.ClientOption{connect.WithInterceptors(client.BearerInterceptor(s))}
	s.tenants = controlplanev1connect.NewTenantServiceClient(hc, s.url, ops...)
	s.clusters = controlplanev1connect.NewClusterServiceClient(hc, s.url, ops...)
	s.auth = controlplanev1connect.NewAuthServiceClient(hc, s.url, ops...)
	return s
}

// URL returns the control plane's URL.
func (s *Session) URL() string { return s.url }

// HTTPClient returns the HTTP client that reaches the control plane.
func (s *Session) HTTPClient() *http.Client { return s.hc }

// Tokens returns the newest tokens.
func (s *Session) Tokens() Tokens {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// Tenants returns the TenantService client; its calls carry the access
// token.
func (s *Session) Tenants() controlplanev1connect.TenantServiceClient { return s.tenants }

// Clusters returns the ClusterService client.
func (s *Session) Clusters() controlplanev1connect.ClusterServiceClient { return s.clusters }

// Auth returns the AuthService client.
func (s *Session) Auth() controlplanev1connect.AuthServiceClient { return s.auth }

// Token returns an access token valid for at least RefreshBefore,
// refreshing it first if needed; concurrent callers share one refresh.
// When the refresh fails for a reason other than a dead login and the
// current token has not expired yet, it returns the current token. A dead
// login yields a Connect Unauthenticated error wrapping ErrLoginRequired.
func (s *Session) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	t := s.tokens
	if t.AccessToken != "" && (t.Expires.IsZero() || time.Now().Before(t.Expires.Add(-RefreshBefore))) {
		s.mu.Unlock()
		return t.AccessToken, nil
	}
	if ch := s.refreshing; ch != nil {
		// Another caller refreshes: wait for its outcome.
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		s.mu.Lock()
		err, t := s.refreshErr, s.tokens
		s.mu.Unlock()
		if err == nil {
			// The newest there is, even if the control plane's tokens
			// live shorter than RefreshBefore.
			return t.AccessToken, nil
		}
		return fallback(t, err)
	}
	ch := make(chan struct{})
	s.refreshing = ch
	s.mu.Unlock()

	nt, err := s.refresh(ctx, t)
	s.mu.Lock()
	if err == nil {
		s.tokens = nt
	}
	s.refreshErr = err
	s.refreshing = nil
	s.mu.Unlock()
	if err == nil && s.onRefresh != nil {
		s.onRefresh(nt)
	}
	close(ch)
	if err != nil {
		return fallback(t, err)
	}
	return nt.AccessToken, nil
}

// refresh gets new tokens for t, through the store if there is one.
func (s *Session) refresh(ctx context.Context, t Tokens) (Tokens, error) {
	// The refresh runs on even if this caller gives up: others may wait
	// for it, and a rotated refresh token must not be lost.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if s.store == nil {
		return Refresh(ctx, s.url, s.hc, t.RefreshToken)
	}
	stored, unlock, err := s.store.Lock(ctx)
	if err != nil {
		return Tokens{}, fmt.Errorf("cloud: lock stored tokens: %w", err)
	}
	defer unlock()
	if stored.RefreshToken != "" && stored.RefreshToken != t.RefreshToken {
		// Another process refreshed: its tokens are the newest.
		if stored.AccessToken != "" && time.Now().Before(stored.Expires.Add(-RefreshBefore)) {
			return stored, nil
		}
		t = stored
	}
	nt, err := Refresh(ctx, s.url, s.hc, t.RefreshToken)
	if err != nil {
		return Tokens{}, err
	}
	_ = s.store.Save(nt)
	return nt, nil
}

// fallback returns t's access token while it is valid, and otherwise err
// as a Connect error.
func fallback(t Tokens, err error) (string, error) {
	if errors.Is(err, ErrInvalidGrant) {
		return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%w (%v)", ErrLoginRequired, err))
	}
	if t.AccessToken != "" && time.Now().Before(t.Expires) {
		return t.AccessToken, nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "", err
	}
	return "", connect.NewError(connect.CodeUnavailable, fmt.Errorf("cloud: refresh access token: %w", err))
}

// NewHTTPClient returns an HTTP client for a control plane whose
// certificate chains to caPEM (nil or empty: the system's roots). It speaks
// HTTP/2 or HTTP/1.1 over TLS 1.2 or later, and HTTP/1.1 to http:// URLs.
func NewHTTPClient(caPEM []byte) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool, err := client.PoolFromPEM(caPEM)
		if err != nil {
			return nil, fmt.Errorf("cloud: control plane CA: %w", err)
		}
		tc.RootCAs = pool
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			Protocols:           &p,
			TLSClientConfig:     tc,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			Proxy:               http.ProxyFromEnvironment,
		},
	}, nil
}
