// Package oauth serves the control plane's OAuth 2.0 endpoints: the
// device authorization grant (RFC 8628) with which `spate login` signs a
// person in through a web page, refresh tokens (RFC 6749 §6, rotated on
// every use), the exchange of an API key for an access token, token
// revocation (RFC 7009) and the public keys of the access tokens (JWKS).
//
//	POST /oauth/device/code    client_id=spate-cli → device_code, user_code, verification_uri[_complete], expires_in, interval
//	POST /oauth/token          grant_type=urn:ietf:params:oauth:grant-type:device_code  device_code, client_id
//	                           grant_type=refresh_token                                 refresh_token
//	                           grant_type=urn:spate:params:oauth:grant-type:api-key      api_key
//	POST /oauth/revoke         token=<refresh token>  (always 200)
//	GET  /.well-known/jwks.json
//	GET  /device[?user_code=]  the sign-in page; POST /device/sign-in, POST /device/approve
//
// Access tokens are ES256 JWTs (see package token) that live AccessTTL.
// Refresh tokens live RefreshTTL and are single use: each use returns a
// new one of the same family, and using one twice revokes the family.
// A refresh token got with an API key belongs to a family named after the
// key ("ak-<key id>-<random>"): refreshing checks the key again, so
// revoking the key, its expiry or its principal's removal ends the login
// within one access token's lifetime.
//
// Everything a request needs is in etcd (package tenancy) or signed with
// the shared signing keys, so any control-plane replica answers any step
// of a flow: the approval page carries a short-lived signed ticket, not a
// session.
//
// Each client IP may fail (a wrong password, an unknown user code, an
// invalid grant, a bad API key) MaxFailures times a minute; beyond that
// the page and the token endpoint answer 429 with Retry-After until the
// budget refills. The limit is per replica. Only the connection's remote
// address counts: X-Forwarded-For is ignored, since any client can set it.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/spatehq/spate/auth/identity"
	"github.com/spatehq/spate/auth/secret"
	"github.com/spatehq/spate/auth/token"
	"github.com/spatehq/spate/control-plane/internal/tenancy"
)

// Defaults of Config.
const (
	DefaultAccessTTL     = 15 * time.Minute
	DefaultRefreshTTL    = 30 * 24 * time.Hour
	DefaultDeviceCodeTTL = 10 * time.Minute
	DefaultPollInterval  = 5 * time.Second
)

// ClientID is the only OAuth client: the spate CLI.
const ClientID = "spate-cli"

// The grant types of the token endpoint.
const (
	GrantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
	GrantRefreshToken = "refresh_token"
	GrantAPIKey       = "urn:spate:params:oauth:grant-type:api-key"
)

// ApprovalAudience is the audience of the tickets of the approval page;
// access tokens have token.Audience, so neither passes for the other.
const ApprovalAudience = "spate-device-approval"

// MaxFailures is how many failed attempts a client IP may make per minute.
const MaxFailures = 10

// ticketTTL is how long the approval page's ticket lives.
const ticketTTL = 5 * time.Minute

// slowDownStep is how much a device code's polling interval grows each
// time its client polls too fast (RFC 8628 §3.5).
const slowDownStep = 5 * time.Second

// expiredGrace is how long a device code stays in etcd after it expires,
// so that its client's poll learns expired_token rather than
// invalid_grant. The stored DeviceCode.ExpiresAt is the real expiry plus
// expiredGrace (tenancy treats a code as absent from ExpiresAt on).
const expiredGrace = 5 * time.Minute

// deviceIssued marks an approved device code whose tokens were issued,
// between the poll that claims it and its deletion: a concurrent poll
// with the same code gets invalid_grant.
const deviceIssued tenancy.DeviceStatus = "issued"

// Config configures the OAuth endpoints.
type Config struct {
	// Issuer is the control plane's external URL, e.g.
	// https://127.0.0.1:9000: the "iss" of access tokens and the base of
	// the verification URIs. https, or http on a loopback address (tests,
	// local development). Required.
	Issuer string
	// Store holds users, API keys, refresh tokens and device codes.
	// Required.
	Store *tenancy.Store
	// Keys signs access tokens and approval tickets. Required.
	Keys *token.Keyring
	// AccessTTL is the lifetime of access tokens; default 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token; default 30 days.
	RefreshTTL time.Duration
	// DeviceCodeTTL is the lifetime of a device code; default 10 minutes.
	// The code stays in etcd 5 minutes longer, so that a late poll learns
	// expired_token rather than invalid_grant.
	DeviceCodeTTL time.Duration
	// PollInterval is the initial minimum time between two polls of the
	// token endpoint with one device code; default 5 s.
	PollInterval time.Duration
	// Logger receives refusals and errors; default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with zero durations and the logger defaulted and
// the issuer without a trailing slash.
func (c Config) withDefaults() Config {
	if c.AccessTTL == 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = DefaultRefreshTTL
	}
	if c.DeviceCodeTTL == 0 {
		c.DeviceCodeTTL = DefaultDeviceCodeTTL
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	return c
}

// Validate reports the first missing or malformed field, after defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("oauth: issuer %q: want an absolute URL like https://spate.example.com", c.Issuer)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("oauth: issuer %q: use https (plain http only on a loopback address)", c.Issuer)
		}
	default:
		return fmt.Errorf("oauth: issuer %q: use https", c.Issuer)
	}
	if c.Store == nil {
		return errors.New("oauth: a store is required")
	}
	if c.Keys == nil {
		return errors.New("oauth: a keyring is required")
	}
	for name, d := range map[string]time.Duration{"access TTL": c.AccessTTL, "refresh TTL": c.RefreshTTL, "device code TTL": c.DeviceCodeTTL, "poll interval": c.PollInterval} {
		if d < 0 {
			return fmt.Errorf("oauth: %s %v is negative", name, d)
		}
	}
	return nil
}

// Server serves the OAuth endpoints and issues tokens. It is safe for
// concurrent use.
type Server struct {
	cfg     Config
	store   *tenancy.Store
	keys    *token.Keyring
	log     *slog.Logger
	now     func() time.Time // the clock; replaced in tests
	limiter *limiter

	// dummyHash is checked against when an email is unknown, so that a
	// wrong email costs the time of a wrong password.
	dummyOnce sync.Once
	dummyHash string
}

// New returns a Server. It panics if cfg.Validate fails: call Validate
// first to report a configuration error.
func New(cfg Config) *Server {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, store: cfg.Store, keys: cfg.Keys, log: cfg.Logger, now: time.Now}
	s.limiter = newLimiter(MaxFailures, time.Minute, func() time.Time { return s.now() })
	return s
}

// Handler returns the handler of /oauth/device/code, /oauth/token,
// /oauth/revoke, /.well-known/jwks.json, /device and /device/....
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/device/code", s.deviceAuthorization)
	mux.HandleFunc("POST /oauth/token", s.token)
	mux.HandleFunc("POST /oauth/revoke", s.revoke)
	mux.Handle("GET /.well-known/jwks.json", s.keys.JWKSHandler())
	mux.HandleFunc("GET /device", s.devicePage)
	mux.HandleFunc("POST /device/sign-in", s.signIn)
	mux.HandleFunc("POST /device/approve", s.approve)
	return mux
}

// Subject is who a token is issued to.
type Subject struct {
	Tenant string
	Kind   identity.Kind
	// ID is the principal's id, the tokens' "sub".
	ID string
	// Name is the user's email or the service account's name.
	Name string
}

// TokenResponse is a successful answer of the token endpoint (RFC 6749
// §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int64 `json:"expires_in"`
}

// Errors of AuthenticateAPIKey, each wrapped with details.
var (
	// ErrMalformedAPIKey: the text is not an API key (spk_<id>_<secret>).
	ErrMalformedAPIKey = errors.New("oauth: malformed API key")
	// ErrUnknownAPIKey: no key has this id, or its secret does not match.
	ErrUnknownAPIKey = errors.New("oauth: unknown API key")
	// ErrRevokedAPIKey: the key was revoked.
	ErrRevokedAPIKey = errors.New("oauth: API key revoked")
	// ErrExpiredAPIKey: the key expired.
	ErrExpiredAPIKey = errors.New("oauth: API key expired")
	// ErrPrincipalGone: the user or service account a credential belongs
	// to no longer exists.
	ErrPrincipalGone = errors.New("oauth: principal no longer exists")
)

// principalName returns the name of a principal that must still exist:
// a user's email or a service account's name. ErrPrincipalGone if it does
// not.
func (s *Server) principalName(ctx context.Context, tenant string, kind identity.Kind, id string) (string, error) {
	switch kind {
	case identity.User:
		u, err := s.store.GetUser(ctx, tenant, id)
		if errors.Is(err, tenancy.ErrNotFound) {
			return "", fmt.Errorf("%w: user %s of tenant %s", ErrPrincipalGone, id, tenant)
		}
		return u.Email, err
	case identity.ServiceAccount:
		sa, err := s.store.GetServiceAccount(ctx, tenant, id)
		if errors.Is(err, tenancy.ErrNotFound) {
			return "", fmt.Errorf("%w: service account %s of tenant %s", ErrPrincipalGone, id, tenant)
		}
		return sa.Name, err
	}
	return "", fmt.Errorf("%w: kind %q cannot hold tokens", ErrPrincipalGone, kind)
}

// dummyPasswordHash returns a password hash nobody knows the password of.
func (s *Server) dummyPasswordHash() string {
	s.dummyOnce.Do(func() {
		h, err := secret.HashPassword(secret.NewPassword())
		if err == nil {
			s.dummyHash = h
		}
	})
	return s.dummyHash
}

// remoteIP is the address of the connection's peer; X-Forwarded-For is
// not trusted.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
